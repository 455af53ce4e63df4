// Package cli holds what Baton's programs share on the command line: one
// way to end (exit status and the error's one line) and flag sets for
// subcommands that refuse stray arguments.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit ends a program whose run returned err: status 0 for nil or a help
// request, otherwise "name: err" on stderr and status 1.
func Exit(name string, err error) { ExitWith(name, err, 1) }

// ExitWith is Exit with the status of a failure chosen by the caller.
func ExitWith(name string, err error, status int) {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	fmt.Fprintln(os.Stderr, name+":", err)
	os.Exit(status)
}

// NewFlagSet returns the flag set of subcommand name of program prog,
// printing "Usage: prog synopsis" and the options on stderr.
func NewFlagSet(prog, name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(prog+" "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s %s\n\nOptions:\n", prog, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// Parse parses flags and refuses stray positional arguments, which are
// almost always a mistyped flag.
func Parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
}

// Subcommands maps a program's subcommand names to what runs them.
type Subcommands map[string]func(ctx context.Context, args []string) error

// Dispatch runs the subcommand args[0] names with the rest of args, under
// a context that Ctrl-C and SIGTERM cancel. No subcommand, an unknown one
// or a help request print usage.
func Dispatch(args []string, usage string, stdout, stderr io.Writer, cmds Subcommands) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch name, rest := args[0], args[1:]; name {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		cmd, ok := cmds[name]
		if !ok {
			fmt.Fprint(stderr, usage)
			return fmt.Errorf("unknown command %q", name)
		}
		return cmd(ctx, rest)
	}
}

// Warner is a program's loud line on stderr (e.g. --insecure at start).
func Warner(prog string, stderr io.Writer) func(string) {
	return func(msg string) { fmt.Fprintf(stderr, "%s: WARNING: %s\n", prog, msg) }
}
