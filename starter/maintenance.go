package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/batonhq/baton/location"
)

// maintenanceNote is what the maintenance switches are, for the help of
// baton maintenance and its subcommands.
const maintenanceNote = `A maintenance switch, global or per stamp, is recorded in the location
service with who set it, when and why. While one is on, Baton's automatic
triggers hold off what it covers: a scheduled drill of an account whose
primary or secondary it covers is skipped, saying which switch; the alert
webhook's receiver (baton webhook, asking --location) answers a firing
alert whose failover, reprotect or evacuation it covers as held, starting
nothing. A failover, reprotect, drill or
evacuation started by hand is never held. Set one before planned work, so
that alerts raised by the work itself start nothing. baton status ACCOUNT
shows the switches on that apply to the account's stamps.`

// newMaintenanceCmd builds baton maintenance (show the switches) and its
// on and off subcommands.
func newMaintenanceCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "maintenance",
		Short: "Show the maintenance switches (global and per stamp); on and off set them",
		Long:  "Show every maintenance switch: the global one and each stamp's.\n\n" + maintenanceNote,
		Example: `  baton maintenance
  baton maintenance on --stamp stamp-a --reason "rack 7 power work"
  baton maintenance off --stamp stamp-a`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{cmd: cmd, err: fmt.Errorf("unknown command %q for %q: use on or off, or nothing to show the switches",
					args[0], cmd.CommandPath())}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
			defer cancel()
			loc, err := g.loc()
			if err != nil {
				return err
			}
			m, err := loc.Maintenance(ctx)
			if err != nil {
				return fmt.Errorf("read the maintenance switches from the location service at %s: %w", loc.Base(), err)
			}
			// Every registered stamp is listed, with its switch or off.
			stamps, _ := loc.Stamps(ctx)
			return printMaintenance(cmd.OutOrStdout(), g, m, stamps)
		},
	}
	cmd.AddCommand(newSwitchCmd(g, true), newSwitchCmd(g, false))
	return cmd
}

// newSwitchCmd builds baton maintenance on (on) or off.
func newSwitchCmd(g *globals, on bool) *cobra.Command {
	var req location.SwitchRequest
	name, short, use := "off", "Turn a maintenance switch off (global, or a stamp's with --stamp)", "off [--stamp STAMP]"
	example := "  baton maintenance off --stamp stamp-a\n  baton maintenance off --reason \"upgrade done\""
	if on {
		name, short, use = "on", "Turn a maintenance switch on (global, or a stamp's with --stamp)",
			"on [--stamp STAMP] --reason WHY"
		example = "  baton maintenance on --stamp stamp-a --reason \"rack 7 power work\"\n" +
			"  baton maintenance on --reason \"Temporal upgrade\" --requested-by alice"
	}
	cmd := &cobra.Command{
		Use:     use,
		Short:   short,
		Long:    short + ". Prints the switches as they are then.\n\n" + maintenanceNote,
		Example: example,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{cmd: cmd, err: fmt.Errorf("%q: a stamp is named with --stamp: %s",
					strings.Join(args, " "), useLine(cmd))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			req.On = on
			switch {
			case on && strings.TrimSpace(req.Reason) == "":
				return errors.New("--reason is required: say why the switch goes on")
			case strings.TrimSpace(req.By) == "":
				return errors.New("--requested-by is empty: say who you are")
			case cmd.Flags().Changed("stamp") && req.Stamp == "":
				return errors.New("--stamp is empty: name the stamp, or leave --stamp out for the global switch")
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
			defer cancel()
			loc, err := g.loc()
			if err != nil {
				return err
			}
			// A stamp's switch is for a registered stamp (a mistyped name
			// would hold nothing); the list also names the stamps printed.
			stamps, err := loc.Stamps(ctx)
			switch {
			case err != nil && req.Stamp != "":
				return fmt.Errorf("check that %s is a registered stamp (location service at %s): %w",
					req.Stamp, loc.Base(), err)
			case req.Stamp != "" && !slices.ContainsFunc(stamps, func(s location.Stamp) bool { return s.Name == req.Stamp }):
				return fmt.Errorf("no stamp %q is registered with the location service at %s (it knows %s): check the name",
					req.Stamp, loc.Base(), orPlaceholder(stampNames(stamps), "none"))
			}
			m, err := loc.SetSwitch(ctx, req)
			if err != nil {
				return fmt.Errorf("set the %s maintenance switch %s: %w", scopeOf(req.Stamp), name, err)
			}
			return printMaintenance(cmd.OutOrStdout(), g, m, stamps)
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Stamp, "stamp", "", "the stamp's switch (default: the global one, for every stamp)")
	f.StringVar(&req.Reason, "reason", "", map[bool]string{
		true:  "why (required, recorded with the switch)",
		false: "why, recorded with the switch",
	}[on])
	f.StringVar(&req.By, "requested-by", currentUser(), "who sets it, recorded with the switch")
	return cmd
}

// scopeOf names a switch: "global" or the stamp's.
func scopeOf(stamp string) string {
	if stamp == "" {
		return "global"
	}
	return stamp + "'s"
}

func stampNames(stamps []location.Stamp) string {
	var names []string
	for _, s := range stamps {
		names = append(names, s.Name)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// printMaintenance writes every switch: the global one, then each stamp's
// (the registered stamps, and any other with a switch recorded).
func printMaintenance(w io.Writer, g *globals, m location.Maintenance, stamps []location.Stamp) error {
	if g.json() {
		return printJSON(w, m)
	}
	names := map[string]bool{}
	for _, s := range stamps {
		names[s.Name] = true
	}
	for s := range m.Stamps {
		names[s] = true
	}
	sorted := slices.Sorted(maps.Keys(names))
	width := len("global")
	for _, n := range sorted {
		width = max(width, len(n))
	}
	fmt.Fprintf(w, "%-*s  %s\n", width, "global", switchText(m.Global))
	var held []string
	for _, n := range sorted {
		s := m.Stamps[n]
		fmt.Fprintf(w, "%-*s  %s\n", width, n, switchText(s))
		if _, on := m.Holds(n); on {
			held = append(held, n)
		}
	}
	switch {
	case m.Global.On:
		fmt.Fprintln(w, "automatic triggers hold off every stamp (the global switch is on)")
	case len(held) > 0:
		fmt.Fprintf(w, "automatic triggers hold off %s\n", strings.Join(held, ", "))
	default:
		fmt.Fprintln(w, "no switch is on")
	}
	return nil
}

// switchText is one switch: "ON since ..., by alice: why", or "off".
func switchText(s location.Switch) string {
	state := "off"
	if s.On {
		state = "ON"
	}
	if s.At.IsZero() {
		return state
	}
	text := fmt.Sprintf("%s since %s, by %s", state, s.At.UTC().Format(time.RFC3339), s.By)
	if s.Reason != "" {
		text += ": " + s.Reason
	}
	return text
}

// maintenanceOf returns the switches on that apply to an account's
// stamps: the global one, then its primary's and its secondary's.
func maintenanceOf(m location.Maintenance, stamps ...string) []location.Hold {
	var on []location.Hold
	if m.Global.On {
		on = append(on, location.Hold{Switch: m.Global})
	}
	for _, s := range stamps {
		if sw := m.Stamps[s]; sw.On {
			on = append(on, location.Hold{Stamp: s, Switch: sw})
		}
	}
	return on
}

// printMaintenanceOf writes baton status's maintenance line(s).
func printMaintenanceOf(w io.Writer, on []location.Hold, stamps ...string) {
	if len(on) == 0 {
		fmt.Fprintf(w, "  maintenance: no switch on (global, %s)\n", strings.Join(stamps, ", "))
		return
	}
	for _, h := range on {
		fmt.Fprintf(w, "  maintenance: %s: automatic triggers hold off; a failover by hand still runs\n", h)
	}
}
