// Command baton is the operator CLI: start an account failover, see where an
// account lives, and read a failover's report.
package main

import (
	"io"
	"os"
	"strings"
)

func main() {
	os.Exit(execute(os.Args[1:], os.Stdout, os.Stderr))
}

// execute runs the command line and returns the exit code; a failure is
// printed as one line (see describeError), with the whole error chain
// under -v or --output json.
func execute(args []string, stdout, stderr io.Writer) int {
	root, g := newRootWithGlobals()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteC()
	if err == nil {
		return 0
	}
	if strings.HasPrefix(err.Error(), "unknown command") {
		err = usageError{cmd: cmd, err: err}
	}
	printFailure(stderr, err, g)
	return 1
}
