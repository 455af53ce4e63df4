//go:build !unix

package activities

import osexec "os/exec"

// killProcessGroup: elsewhere only the process itself is killed.
func killProcessGroup(*osexec.Cmd) {}
