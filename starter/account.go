package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// One grammar for every command about one account: the account is the
// command's positional argument, `baton <command> ACCOUNT [flags]`.
// --account ACCOUNT is kept as an alias (scripts written for the older
// `status --account A` go on working); giving both is fine if they agree,
// an error if they differ.

// accountArg is the account a command is about, from its positional
// argument or --account.
type accountArg struct {
	flag     string // --account's value
	value    string // the account, once the arguments are checked
	optional bool   // e.g. list: all accounts when none is named
	// evacuation: --evacuation was given (commands that take it): the
	// argument, value, is a stamp and the command is about its
	// evacuation, as --reprotect makes baton result about the account's
	// reprotect.
	evacuation bool
}

// addAccountArg registers --account on cmd and makes cmd's argument
// validator take the account as its one positional argument. what is the
// help text of --account.
func addAccountArg(cmd *cobra.Command, what string, optional bool) *accountArg {
	a := &accountArg{optional: optional}
	cmd.Flags().StringVar(&a.flag, "account", "", what+" (same as the ACCOUNT argument)")
	cmd.Args = a.validate
	return a
}

// validate is the command's cobra.PositionalArgs: at most one positional
// argument, the account, agreeing with --account if both are given.
func (a *accountArg) validate(cmd *cobra.Command, args []string) error {
	if a.evacuation {
		return a.validateStamp(cmd, args)
	}
	switch {
	case len(args) > 1:
		return usageError{cmd: cmd, err: fmt.Errorf("%d arguments %q where one account was expected: %s",
			len(args), strings.Join(args, " "), useLine(cmd))}
	case len(args) == 1 && a.flag != "" && args[0] != a.flag:
		return usageError{cmd: cmd, err: fmt.Errorf(
			"the account is given twice, as %q and as --account %q: give it once", args[0], a.flag)}
	case len(args) == 1:
		a.value = args[0]
	default:
		a.value = a.flag
	}
	if a.value == "" && !a.optional {
		return usageError{cmd: cmd, err: fmt.Errorf("no account: name it, %s", useLine(cmd))}
	}
	return nil
}

// oneArg is cobra.ExactArgs(1), its error a usage error (the hint is the
// command's help).
func oneArg(cmd *cobra.Command, args []string) error {
	if err := cobra.ExactArgs(1)(cmd, args); err != nil {
		return usageError{cmd: cmd, err: err}
	}
	return nil
}

// useLine is how the command is called, e.g. "baton status ACCOUNT".
func useLine(cmd *cobra.Command) string { return strings.TrimSuffix(cmd.UseLine(), " [flags]") }

// addEvacuationFlag registers --evacuation on a command about one
// account: with it, the argument is a stamp and the command is about that
// stamp's evacuation (workflow evacuate-STAMP). what is its help text.
func (a *accountArg) addEvacuationFlag(cmd *cobra.Command, what string) {
	cmd.Flags().BoolVar(&a.evacuation, "evacuation", false, what+
		": the argument is then a stamp, not an account")
}

// validateStamp is validate under --evacuation: one positional argument,
// the stamp; --account has nothing to name.
func (a *accountArg) validateStamp(cmd *cobra.Command, args []string) error {
	use := stampUseLine(cmd)
	switch {
	case a.flag != "":
		return usageError{cmd: cmd, err: fmt.Errorf(
			"--account names an account; with --evacuation the argument is the stamp: %s", use)}
	case len(args) > 1:
		return usageError{cmd: cmd, err: fmt.Errorf("%d arguments %q where one stamp was expected: %s",
			len(args), strings.Join(args, " "), use)}
	case len(args) == 0:
		return usageError{cmd: cmd, err: fmt.Errorf("no stamp: name it, %s", use)}
	}
	a.value = args[0]
	return nil
}

// stampUseLine is how a command about an account is called about an
// evacuation, e.g. "baton abort --evacuation STAMP --reason WHY".
func stampUseLine(cmd *cobra.Command) string {
	return strings.Replace(useLine(cmd), "ACCOUNT", "--evacuation STAMP", 1)
}

// stampArg is the stamp a command about an evacuation only (pause, resume,
// limits) takes as its one argument; --evacuation may be given, as with
// the commands about an account or an evacuation, and changes nothing.
type stampArg struct {
	value      string
	evacuation bool
}

// addStampArg makes cmd take the stamp as its one positional argument.
func addStampArg(cmd *cobra.Command) *stampArg {
	s := &stampArg{}
	cmd.Flags().BoolVar(&s.evacuation, "evacuation", true,
		"the stamp's evacuation (the only thing "+cmd.Name()+" applies to: may be left out)")
	cmd.Args = func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) > 1:
			return usageError{cmd: cmd, err: fmt.Errorf("%d arguments %q where one stamp was expected: %s",
				len(args), strings.Join(args, " "), useLine(cmd))}
		case len(args) == 0:
			return usageError{cmd: cmd, err: fmt.Errorf("no stamp: name it, %s", useLine(cmd))}
		case !s.evacuation:
			return usageError{cmd: cmd, err: fmt.Errorf("%s applies to evacuations only: %s",
				cmd.Name(), useLine(cmd))}
		}
		s.value = args[0]
		return nil
	}
	return s
}
