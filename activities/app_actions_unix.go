//go:build unix

package activities

import (
	osexec "os/exec"
	"syscall"
)

// killProcessGroup runs the command in its own process group and, when the
// step's context ends, kills the whole group (a shell's children too).
func killProcessGroup(cmd *osexec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}
