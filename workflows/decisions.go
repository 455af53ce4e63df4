package workflows

import (
	"fmt"

	"go.temporal.io/sdk/workflow"
)

// decision is an operator's decision (approve, reject, abort) as a workflow
// takes it: as an update, which is validated and answered, and as a signal
// of the same name, for the Web UI's "Send Signal", which cannot answer.
type decision struct {
	// name is the update's and the signal's.
	name string
	// validate says why the decision does not apply now (nil: it does).
	// Who decides (Decision.By) is checked first, for every decision.
	validate func(workflow.Context, Decision) error
	// apply records the decision.
	apply func(workflow.Context, Decision)
}

// check is the decision's validation: a decision names who takes it, then
// its own rule.
func (d decision) check(ctx workflow.Context, dec Decision) error {
	if dec.By == "" {
		return errNoWho
	}
	return d.validate(ctx, dec)
}

// update is the update handler: it checks the decision again, then applies
// it. The handler does not rely on the validator, which the SDK skips when
// it replays a history; the validator runs just before the handler with
// nothing in between, so the second check refuses nothing the first let
// through.
func (d decision) update(ctx workflow.Context, dec Decision) error {
	if err := d.check(ctx, dec); err != nil {
		return err
	}
	d.apply(ctx, dec)
	return nil
}

// registerDecisions registers every decision's update, then every one's
// same-named signal, in the order given (the order handlers waiting in the
// first workflow task run in). A signal that its check refuses is appended
// to refusals, for the record, since a signal cannot answer.
func registerDecisions(ctx workflow.Context, refusals *[]string, decisions ...decision) error {
	for _, d := range decisions {
		opts := workflow.UpdateHandlerOptions{Validator: d.check}
		if err := workflow.SetUpdateHandlerWithOptions(ctx, d.name, d.update, opts); err != nil {
			return fmt.Errorf("register update %s: %w", d.name, err)
		}
	}
	for _, d := range decisions {
		ch := workflow.GetSignalChannel(ctx, d.name)
		workflow.Go(ctx, func(ctx workflow.Context) {
			for {
				var dec Decision
				ch.Receive(ctx, &dec)
				if err := d.check(ctx, dec); err != nil {
					*refusals = append(*refusals, fmt.Sprintf("%s signal from %q refused: %v", d.name, dec.By, err))
					continue
				}
				d.apply(ctx, dec)
			}
		})
	}
	return nil
}
