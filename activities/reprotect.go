package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"

	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/stamp"
)

// Activity type names of a reprotect (see NamePrecheck).
const (
	NameReprotectPrecheck = "ReprotectPrecheck"
	NameDemote            = "Demote"
	NameRestoreDiverged   = "RestoreDiverged"
	NameSeed              = "Seed"
	NameProtect           = "Protect"
	NameMarkProtected     = "MarkProtected"
)

// FailoverWorkflowIDOf names an account's failover workflow; the activities
// ask Temporal whether one runs. (The workflows package says the same, and
// cannot be imported here.)
func FailoverWorkflowIDOf(account string) string { return "failover-" + account }

// ReprotectPrecheckInput asks whether an account can be reprotected.
type ReprotectPrecheckInput struct {
	Account string
}

// Secondary states a reprotect finds its old primary in.
const (
	// SecondaryOldPrimary: its partitions are still the old primary's:
	// demote them.
	SecondaryOldPrimary = "old-primary"
	// SecondaryDemoted: already secondaries at the new epoch (an earlier
	// attempt demoted them).
	SecondaryDemoted = "demoted"
	// SecondaryMissing: the stamp does not hold the account (its data was
	// lost): create it and seed it.
	SecondaryMissing = "missing"
)

// ReprotectPrecheckResult is what a reprotect needs to know before it
// touches anything.
type ReprotectPrecheckResult struct {
	Account      string
	Partitions   int
	Epoch        uint64
	Primary      string
	PrimaryURL   string
	Secondary    string
	SecondaryURL string
	// Protected: the account is protected already (nothing to do).
	Protected bool
	// Targets[p] is where the new primary's partition p started: the LSN
	// it continued from at promote, what the secondary must stand at.
	Targets []uint64
	// Shipping[p]: the new primary already ships partition p (an earlier
	// attempt got past protect).
	Shipping []bool
	// SecondaryState is one of the Secondary* states; Behind lists
	// partitions the secondary holds less of than Targets (to seed).
	SecondaryState string
	Behind         []int
	// OldWritten[p] is the last LSN the old primary's partition p holds.
	OldWritten []uint64
	// The last failover of the account, if Temporal still has it: its
	// mode, and (unplanned) the data-loss ledger's known and estimated ops.
	LastFailoverMode      string
	LedgerLostOps         uint64
	LedgerUnseenEstimate  uint64
	LastFailoverCompleted bool
}

// ReprotectPrecheck checks, changing nothing, that the account failed over
// and can be reprotected: the location service names its new primary, whose
// partitions are promoted primaries; its old primary (the secondary) answers;
// no failover of it runs. It says in what state the old primary is.
func (a *Activities) ReprotectPrecheck(ctx context.Context, in ReprotectPrecheckInput) (ReprotectPrecheckResult, error) {
	defer keepAlive(ctx)()
	until := budget(ctx, time.Time{})
	acct, err := retryFor(ctx, until, func(ctx context.Context) (location.Account, error) {
		return a.Location.Lookup(ctx, in.Account)
	})
	switch {
	case location.IsNotFound(err):
		return ReprotectPrecheckResult{}, precheckFailed("account %s is not known to the location service: check the name", in.Account)
	case err != nil:
		return ReprotectPrecheckResult{}, classify("reprotect precheck: look up "+in.Account, err)
	}
	res := ReprotectPrecheckResult{Account: in.Account, Partitions: acct.Partitions, Epoch: acct.Epoch,
		Primary: acct.Primary, PrimaryURL: acct.PrimaryURL, Secondary: acct.Secondary, SecondaryURL: acct.SecondaryURL,
		Protected: !acct.Unprotected}
	if err := a.noFailoverRunning(ctx, in.Account); err != nil {
		return res, err
	}
	if acct.Kind != "" {
		return a.reprotectStore(ctx, acct, res)
	}
	if err := a.readNewPrimary(ctx, until, &res); err != nil {
		return res, err
	}
	if err := a.readOldPrimary(ctx, until, &res); err != nil {
		return res, err
	}
	a.readLastFailover(ctx, &res)
	return res, nil
}

// noFailoverRunning refuses while a failover of the account runs: it owns
// the account until it ends.
func (a *Activities) noFailoverRunning(ctx context.Context, account string) error {
	if a.Temporal == nil {
		return nil
	}
	d, err := a.Temporal.DescribeWorkflowExecution(ctx, FailoverWorkflowIDOf(account), "")
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		return nil
	case err != nil:
		return fmt.Errorf("reprotect precheck: is a failover of %s running? %w", account, err)
	case d.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		return precheckFailed("a failover of %s is running (workflow %s): reprotect once it ended", account, FailoverWorkflowIDOf(account))
	}
	return nil
}

// readNewPrimary reads where each of the new primary's partitions started:
// the LSN it continued from (LastReplayed, kept after promote).
func (a *Activities) readNewPrimary(ctx context.Context, until time.Time, res *ReprotectPrecheckResult) error {
	var st stamp.AccountStatus
	err := retryUntil(ctx, until, func(ctx context.Context) (err error) {
		st, err = a.stamp(res.PrimaryURL).Status(ctx, res.Account, nil)
		return err
	})
	if err != nil {
		return classify(fmt.Sprintf("reprotect precheck: status of %s on its primary %s", res.Account, res.Primary), err)
	}
	res.Targets, res.Shipping = make([]uint64, res.Partitions), make([]bool, res.Partitions)
	for _, p := range st.Partitions {
		if p.Role != stamp.RolePrimary || p.Epoch != res.Epoch {
			return precheckFailed("account %s partition %d on %s is %s at epoch %d, not the primary at epoch %d: "+
				"re-check where it is (baton status)", res.Account, p.Partition, res.Primary, p.Role, p.Epoch, res.Epoch)
		}
		res.Targets[p.Partition], res.Shipping[p.Partition] = p.LastReplayed, p.Shipping
	}
	return nil
}

// readOldPrimary says in what state the old primary (the secondary to be)
// holds the account.
func (a *Activities) readOldPrimary(ctx context.Context, until time.Time, res *ReprotectPrecheckResult) error {
	var st stamp.AccountStatus
	err := retryUntil(ctx, until, func(ctx context.Context) (err error) {
		st, err = a.stamp(res.SecondaryURL).Status(ctx, res.Account, nil)
		return err
	})
	switch {
	case stamp.IsCode(err, stamp.CodeNotFound):
		res.SecondaryState = SecondaryMissing
		return nil
	case err != nil && retryable(err):
		return precheckFailed("reprotect of %s: its old primary %s does not answer (%v): it must answer to become the replica; "+
			"retry once it is back", res.Account, res.Secondary, err)
	case err != nil:
		return classify(fmt.Sprintf("reprotect precheck: status of %s on %s", res.Account, res.Secondary), err)
	}
	res.SecondaryState = SecondaryDemoted
	res.OldWritten = make([]uint64, res.Partitions)
	for _, p := range st.Partitions {
		res.OldWritten[p.Partition] = max(p.LastWritten, p.LastReceived)
		switch {
		case p.Role == stamp.RolePrimary:
			res.SecondaryState = SecondaryOldPrimary
			if p.LastWritten < res.Targets[p.Partition] {
				res.Behind = append(res.Behind, p.Partition)
			}
		case p.Epoch != res.Epoch:
			return precheckFailed("account %s partition %d on %s is a secondary at epoch %d, not %d: it replicates another "+
				"primary; fix that first", res.Account, p.Partition, res.Secondary, p.Epoch, res.Epoch)
		case !res.Shipping[p.Partition] && p.LastReceived < res.Targets[p.Partition]:
			res.Behind = append(res.Behind, p.Partition)
		}
	}
	return nil
}

// readLastFailover fills in what the account's last failover reported of
// its losses, if Temporal still has it (best effort: a reprotect does not
// need it, its report compares with it).
func (a *Activities) readLastFailover(ctx context.Context, res *ReprotectPrecheckResult) {
	if a.Temporal == nil {
		return
	}
	var last struct {
		Mode              string
		Outcome           string
		LostOps           uint64
		UnseenOpsEstimate uint64
	}
	if err := a.Temporal.GetWorkflow(ctx, FailoverWorkflowIDOf(res.Account), "").Get(ctx, &last); err != nil {
		return
	}
	res.LastFailoverMode, res.LastFailoverCompleted = last.Mode, last.Outcome == "completed"
	res.LedgerLostOps, res.LedgerUnseenEstimate = last.LostOps, last.UnseenOpsEstimate
}

// DemoteInput demotes the old primary's partitions.
type DemoteInput struct {
	Account string
	URL     string // the old primary
	Epoch   uint64 // the new primary's
	Targets []uint64
	Only    []int // nil = every partition
}

// DemoteResult counts, per partition, the writes set aside in the
// recovered area (indexed by partition).
type DemoteResult struct {
	Recovered []int
}

// Demote turns the old primary's partitions into secondaries at the new
// epoch; what each holds past its target moves to the recovered area.
// Idempotent: a repeat moves nothing twice.
func (a *Activities) Demote(ctx context.Context, in DemoteInput) (DemoteResult, error) {
	defer keepAlive(ctx)()
	res := DemoteResult{Recovered: make([]int, len(in.Targets))}
	ps := in.Only
	if ps == nil {
		ps = AllPartitions(len(in.Targets))
	}
	done, failed, err := controlAll(ctx, budget(ctx, time.Time{}), ps, func(ctx context.Context, chunk []int) (stamp.ControlResponse, error) {
		targets := make(map[int]uint64, len(chunk))
		for _, p := range chunk {
			targets[p] = in.Targets[p]
		}
		return a.stamp(in.URL).Demote(ctx, in.Account, stamp.ControlRequest{Partitions: chunk, Epoch: in.Epoch, Targets: targets})
	})
	what := "demote " + in.Account
	if err != nil {
		return res, classify(what, err)
	}
	if len(failed) > 0 {
		return res, stillFailing(what, failed)
	}
	for _, r := range done {
		res.Recovered[r.Partition] = r.Recovered
	}
	return res, nil
}

// RestoreDivergedInput rewinds the keys the old primary wrote past the new
// primary's start: those recovered at OldEpoch past Targets.
type RestoreDivergedInput struct {
	Account      string
	SecondaryURL string // the old primary, demoted
	PrimaryURL   string
	OldEpoch     uint64
	Targets      []uint64
}

// RestoreDivergedResult counts the diverged writes and the keys rewound.
type RestoreDivergedResult struct {
	Diverged int
	Keys     int
}

// restoreBatch bounds the keys of one read from the new primary and one
// restore on the old.
const restoreBatch = 5000

// RestoreDiverged sets every key the old primary wrote past the new
// primary's start to what the new primary holds now (or deletes it where the
// new primary has none), so the demoted stamp holds the new primary's data
// before reverse replication streams the rest. Idempotent.
func (a *Activities) RestoreDiverged(ctx context.Context, in RestoreDivergedInput) (RestoreDivergedResult, error) {
	defer keepAlive(ctx)()
	var res RestoreDivergedResult
	seen := map[string]bool{}
	var keys []string
	err := a.stamp(in.SecondaryURL).Recovered(ctx, in.Account, func(e stamp.RecoveredEntry) error {
		if e.Epoch != in.OldEpoch || e.Partition >= len(in.Targets) || e.LSN <= in.Targets[e.Partition] {
			return nil // set aside by an earlier cycle
		}
		res.Diverged++
		if !seen[e.Key] {
			seen[e.Key] = true
			keys = append(keys, e.Key)
		}
		return nil
	})
	if err != nil {
		return res, classify("list the recovered writes of "+in.Account, err)
	}
	for lo := 0; lo < len(keys); lo += restoreBatch {
		if err := a.restoreKeys(ctx, in, keys[lo:min(lo+restoreBatch, len(keys))]); err != nil {
			return res, err
		}
	}
	res.Keys = len(keys)
	return res, nil
}

// restoreKeys reads keys from the new primary and restores them on the
// old.
func (a *Activities) restoreKeys(ctx context.Context, in RestoreDivergedInput, keys []string) error {
	rr, err := a.stamp(in.PrimaryURL).Read(ctx, in.Account, keys)
	if err != nil {
		return classify("read the diverged keys of "+in.Account+" on the new primary", err)
	}
	values := make([]stamp.RestoreValue, len(keys))
	for i, k := range keys {
		v, ok := rr.Values[k]
		values[i] = stamp.RestoreValue{Key: k, Value: v.Value, LSN: v.LSN, Deleted: !ok}
	}
	return classify("restore the diverged keys of "+in.Account, a.stamp(in.SecondaryURL).Restore(ctx, in.Account, values))
}

// SeedInput seeds the old primary from a snapshot of the new one:
// partitions Only (nil = all), creating the account first if the stamp
// does not hold it.
type SeedInput struct {
	Account      string
	Partitions   int
	Epoch        uint64
	PrimaryURL   string
	SecondaryURL string
	// PrimaryName is the new primary's stamp name: the only stamp a
	// created account accepts shipments from.
	PrimaryName string
	Create      bool
	Only        []int
}

// SeedResult gives each seeded partition's snapshot LSN and bytes copied.
type SeedResult struct {
	LSN   []uint64
	Bytes []int64
}

// Seed copies the new primary's data to the old one, partition by
// partition, each from a consistent snapshot. A repeat seeds again.
func (a *Activities) Seed(ctx context.Context, in SeedInput) (SeedResult, error) {
	defer keepAlive(ctx)()
	res := SeedResult{LSN: make([]uint64, in.Partitions), Bytes: make([]int64, in.Partitions)}
	sec := a.stamp(in.SecondaryURL)
	if in.Create {
		err := sec.CreateAccount(ctx, stamp.AccountSpec{Account: in.Account, Partitions: in.Partitions,
			Role: stamp.RoleSecondary, Epoch: in.Epoch, Peer: in.PrimaryURL, PeerName: in.PrimaryName})
		if err != nil {
			return res, classify("create "+in.Account+" on the stamp to seed", err)
		}
	}
	ps := in.Only
	if ps == nil {
		ps = AllPartitions(in.Partitions)
	}
	done, failed, err := controlAll(ctx, budget(ctx, time.Time{}), ps, func(ctx context.Context, chunk []int) (stamp.ControlResponse, error) {
		return sec.Seed(ctx, in.Account, stamp.ControlRequest{Partitions: chunk})
	})
	what := "seed " + in.Account
	if err != nil {
		return res, classify(what, err)
	}
	if len(failed) > 0 {
		return res, stillFailing(what, failed)
	}
	for _, r := range done {
		res.LSN[r.Partition], res.Bytes[r.Partition] = r.LSN, r.SeededBytes
	}
	return res, nil
}

// ProtectInput makes the new primary ship to its peer from Targets.
type ProtectInput struct {
	Account    string
	PrimaryURL string
	Targets    []uint64
}

// Protect starts reverse replication: the new primary's partitions ship to
// the demoted (or seeded) stamp from what it holds. Idempotent.
func (a *Activities) Protect(ctx context.Context, in ProtectInput) error {
	defer keepAlive(ctx)()
	_, failed, err := controlAll(ctx, budget(ctx, time.Time{}), AllPartitions(len(in.Targets)),
		func(ctx context.Context, chunk []int) (stamp.ControlResponse, error) {
			targets := make(map[int]uint64, len(chunk))
			for _, p := range chunk {
				targets[p] = in.Targets[p]
			}
			return a.stamp(in.PrimaryURL).Protect(ctx, in.Account, stamp.ControlRequest{Partitions: chunk, Targets: targets})
		})
	what := "protect " + in.Account
	if err != nil {
		return classify(what, err)
	}
	if len(failed) > 0 {
		return stillFailing(what, failed)
	}
	return nil
}

// MarkProtectedInput records in the location service that the account is
// protected again at Epoch.
type MarkProtectedInput struct {
	Account string
	Epoch   uint64
}

// MarkProtected records the account as protected: it may fail over again.
// Idempotent (a compare-and-set on the epoch).
func (a *Activities) MarkProtected(ctx context.Context, in MarkProtectedInput) error {
	_, err := a.Location.Protect(ctx, in.Account, in.Epoch)
	return classify("mark "+in.Account+" protected", err)
}
