// Command baton is the operator CLI: start an account failover, see where an
// account lives, and read a failover's report.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "baton:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	root := newRoot()
	root.SetArgs(args)
	return root.Execute()
}
