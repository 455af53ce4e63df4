package activities

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/temporal"

	"github.com/batonhq/baton/location"
)

// Activity type names of a stamp evacuation (see NamePrecheck).
const (
	NameEvacuationPage = "EvacuationPage"
	NameLookUpAccounts = "LookUpAccounts"
	NameAwaitFailover  = "AwaitFailover"
)

// NoTier is the tier of an account without a valid LabelTier: it goes last.
const NoTier = 4

// TierOf reads an account's LabelTier: 0 (first) to 3, NoTier otherwise.
func TierOf(a location.Account) int {
	t, err := strconv.Atoi(a.Labels[location.LabelTier])
	if err != nil || t < 0 || t >= NoTier {
		return NoTier
	}
	return t
}

// EvacuationKey orders the accounts of an evacuation: lower tiers first,
// then smaller accounts (more customers back sooner), then by name. The
// zero key comes before every account.
type EvacuationKey struct {
	Tier       int
	Partitions int
	Account    string
}

// Compare orders keys; the zero key is the lowest (an account has at
// least one partition).
func (k EvacuationKey) Compare(o EvacuationKey) int {
	return cmp.Or(cmp.Compare(k.Tier, o.Tier), cmp.Compare(k.Partitions, o.Partitions),
		cmp.Compare(k.Account, o.Account))
}

// EvacuationAccount is one account of an evacuation plan.
type EvacuationAccount struct {
	EvacuationKey
	// To is the account's secondary: where it fails over to.
	To string
	// Unprotected: it has no replica to fail over to (reprotect pending).
	Unprotected bool
}

// EvacuationPageInput asks for the accounts whose primary is Stamp that
// come after After in evacuation order.
type EvacuationPageInput struct {
	Stamp string
	After EvacuationKey
	Limit int
}

// EvacuationPageResult is one page of an evacuation plan, in order.
type EvacuationPageResult struct {
	Accounts []EvacuationAccount
	// Last: nothing on the stamp comes after this page.
	Last bool
	// OnStamp is how many accounts the stamp is primary for, all told.
	OnStamp int
}

// locationPage is how many accounts one call to the location service lists.
const locationPage = 1000

// EvacuationPage lists every account whose primary is the stamp (the
// location service, page by page), orders them for an evacuation and
// returns the first Limit after the key. It reads only, so it is
// idempotent; an account that moved meanwhile is simply no longer listed.
func (a *Activities) EvacuationPage(ctx context.Context, in EvacuationPageInput) (EvacuationPageResult, error) {
	defer keepAlive(ctx)()
	var all []EvacuationAccount
	after := ""
	for {
		page, err := a.Location.StampAccounts(ctx, in.Stamp, after, locationPage)
		if err != nil {
			return EvacuationPageResult{}, classify("list the accounts of stamp "+in.Stamp, err)
		}
		for _, acct := range page.Accounts {
			all = append(all, EvacuationAccount{
				EvacuationKey: EvacuationKey{Tier: TierOf(acct), Partitions: acct.Partitions, Account: acct.Account},
				To:            acct.Secondary, Unprotected: acct.Unprotected,
			})
		}
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	slices.SortFunc(all, func(x, y EvacuationAccount) int { return x.Compare(y.EvacuationKey) })
	res := EvacuationPageResult{OnStamp: len(all)}
	i, _ := slices.BinarySearchFunc(all, in.After, func(x EvacuationAccount, k EvacuationKey) int {
		return x.Compare(k)
	})
	if i < len(all) && all[i].EvacuationKey == in.After {
		i++
	}
	end := min(len(all), i+max(in.Limit, 1))
	res.Accounts, res.Last = all[i:end], end == len(all)
	return res, nil
}

// LookUpAccountsInput names accounts to look up.
type LookUpAccountsInput struct {
	Accounts []string
}

// AccountWhere is where an account lives now (Missing: not registered).
type AccountWhere struct {
	Account     string
	Primary     string
	Epoch       uint64
	Unprotected bool
	Missing     bool
}

// LookUpAccounts asks the location service where each account lives now
// (an evacuation, before it retries an account, checks it is still there).
func (a *Activities) LookUpAccounts(ctx context.Context, in LookUpAccountsInput) ([]AccountWhere, error) {
	defer keepAlive(ctx)()
	out := make([]AccountWhere, 0, len(in.Accounts))
	for _, name := range in.Accounts {
		acct, err := a.Location.Lookup(ctx, name)
		switch {
		case location.IsNotFound(err):
			out = append(out, AccountWhere{Account: name, Missing: true})
		case err != nil:
			return nil, classify("look up account "+name, err)
		default:
			out = append(out, AccountWhere{Account: name, Primary: acct.Primary, Epoch: acct.Epoch,
				Unprotected: acct.Unprotected})
		}
	}
	return out, nil
}

// AwaitFailoverInput names a running failover to wait for.
type AwaitFailoverInput struct {
	WorkflowID string
}

// AwaitedFailover is how a failover ended: its report (JSON, as the
// workflow returned it or attached it to its error) and, if it failed, its
// error's type and message.
type AwaitedFailover struct {
	RunID     string
	Report    json.RawMessage
	ErrorType string
	Error     string
}

// AwaitFailover waits for the running workflow WorkflowID (a failover an
// evacuation found already started) to end and returns how it ended. It
// heartbeats while it waits; the caller bounds the wait with its
// timeouts. A failover that ended before the call is read all the same.
func (a *Activities) AwaitFailover(ctx context.Context, in AwaitFailoverInput) (AwaitedFailover, error) {
	defer keepAlive(ctx)()
	if a.Temporal == nil {
		return AwaitedFailover{}, temporal.NewNonRetryableApplicationError(
			"await "+in.WorkflowID+": this worker has no Temporal client", ErrTypeRefused, nil)
	}
	run := a.Temporal.GetWorkflow(ctx, in.WorkflowID, "")
	out := AwaitedFailover{RunID: run.GetRunID()}
	err := run.Get(ctx, &out.Report)
	var nf *serviceerror.NotFound
	var ae *temporal.ApplicationError
	switch {
	case err == nil:
		return out, nil
	case errors.As(err, &nf):
		return AwaitedFailover{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("await %s: Temporal does not know it", in.WorkflowID), ErrTypeRefused, err)
	case errors.As(err, &ae):
		out.ErrorType, out.Error = ae.Type(), ae.Error()
		if ae.HasDetails() {
			_ = ae.Details(&out.Report)
		}
		return out, nil
	case ctx.Err() != nil:
		return AwaitedFailover{}, fmt.Errorf("await %s: %w", in.WorkflowID, ctx.Err())
	}
	// Terminated, timed out, cancelled: no report, the error says how.
	out.ErrorType, out.Error = "", err.Error()
	return out, nil
}
