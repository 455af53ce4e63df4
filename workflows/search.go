package workflows

import (
	"fmt"

	"go.temporal.io/sdk/temporal"
)

// SearchStamp is the stamp an evacuation empties (BatonStamp = "stamp-a"
// finds its runs).
var SearchStamp = temporal.NewSearchAttributeKeyKeyword("BatonStamp")

// FailoverSearchAttributes are the search attributes an account's failover
// starts with, however it is started (the CLI, the webhook, an
// evacuation's child).
func FailoverSearchAttributes(req FailoverRequest) temporal.SearchAttributes {
	req = req.WithDefaults()
	return temporal.NewSearchAttributes(
		SearchAccount.ValueSet(req.Account),
		SearchMode.ValueSet(string(req.Mode)),
		SearchTrigger.ValueSet(string(req.Trigger)),
		SearchPhase.ValueSet(string(PhasePrecheck)),
		SearchOperation.ValueSet(OperationFailover),
	)
}

// FailoverSummary is the Web UI's one-line summary of an account's
// failover.
func FailoverSummary(req FailoverRequest) string {
	req = req.WithDefaults()
	return fmt.Sprintf("%s failover of %s to %s (%s)", req.Mode, req.Account, req.ToStamp, req.Trigger)
}
