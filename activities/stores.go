package activities

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/batonhq/baton/driver"
	"github.com/batonhq/baton/internal/clock"
	"github.com/batonhq/baton/location"
)

// An account of another store than the reference stamps (location.Account
// Kind) has its sites registered with a URL naming the store and the site,
// redis://site-a; its shards' servers are the account's endpoints. The
// activities below take the same inputs and give the same results as for
// stamps, through that store's driver (package driver): the workflows do
// not know the difference.

// fenceLease bounds a fence nobody lifts (the orchestrator lost for good)
// in a store whose fence has a lease (Redis: the pause ends by itself). A
// failover's promote renews it and its rejoin ends it long before; the
// flush deadline (2 minutes by default) bounds the steps in between.
const fenceLease = 10 * time.Minute

// storeSide is one site of an account served by a driver.
type storeSide struct {
	st   driver.Store
	side driver.Side
	// other is the other site: the replicas of a primary side, the
	// primaries of a replica side.
	other driver.Side
}

// storeFor answers the driver and the side of siteURL when the account
// lives in a driven store; ok is false for a stamp's URL (the stamp client
// serves it).
func (a *Activities) storeFor(ctx context.Context, account, siteURL string) (ss storeSide, ok bool, err error) {
	scheme, site, ok := strings.Cut(siteURL, "://")
	scheme = strings.ToLower(scheme)
	if !ok || scheme == "http" || scheme == "https" {
		return ss, false, nil
	}
	st := a.Stores[driver.Kind(scheme)]
	if st == nil {
		return ss, true, driver.Finalf("account %s lives in %s (site %s) and this worker has no %s driver: "+
			"start it with %s", account, scheme, site, scheme, PasswordFlag(driver.Kind(scheme)))
	}
	acct, err := retryFor(ctx, budget(ctx, time.Time{}), func(ctx context.Context) (location.Account, error) {
		return a.Location.Lookup(ctx, account)
	})
	if err != nil {
		return ss, true, fmt.Errorf("look up %s: %w", account, err)
	}
	if acct.Kind != scheme {
		return ss, true, driver.Finalf("account %s is of kind %q but its site %s is registered as %s: "+
			"re-register the site with a %s:// URL", account, acct.Kind, site, siteURL, acct.Kind)
	}
	ss = storeSide{st: st}
	primary := driver.Side{Account: account, Endpoints: acct.PrimaryEndpoints}
	secondary := driver.Side{Account: account, Endpoints: acct.SecondaryEndpoints}
	switch site {
	case acct.Primary:
		ss.side, ss.other = primary, secondary
	case acct.Secondary:
		ss.side, ss.other = secondary, primary
	default:
		return ss, true, driver.Finalf("account %s is on %s and %s, not on site %s", account, acct.Primary, acct.Secondary, site)
	}
	if len(ss.side.Endpoints) != acct.Partitions || len(ss.other.Endpoints) != acct.Partitions {
		return ss, true, driver.Finalf("account %s of kind %q has no endpoints for its %d shards on %s", account,
			acct.Kind, acct.Partitions, site)
	}
	return ss, true, nil
}

// untilDone calls step on the partitions still failing until none is or
// until passes, so that a partition that blips does not fail the whole
// call; a final answer ends it at once. It returns the results that
// succeeded and the last failure of each partition that never did.
func untilDone(ctx context.Context, until time.Time, ps []int,
	step func(ctx context.Context, ps []int) []driver.Result) (done []driver.Result, failed []PartitionFailure, final error) {
	todo := ps
	for backoff := firstBackoff; ; backoff = min(2*backoff, maxBackoff) {
		var again []int
		failed = failed[:0]
		for _, r := range step(ctx, todo) {
			switch {
			case r.Err == nil:
				done = append(done, r)
			case driver.IsFinal(r.Err):
				return done, nil, &Refusal{Partition: r.Partition, Err: r.Err}
			default:
				again = append(again, r.Partition)
				failed = append(failed, PartitionFailure{Partition: r.Partition, Error: r.Err.Error()})
			}
		}
		if len(again) == 0 || !time.Now().Add(backoff).Before(until) || !clock.Sleep(ctx, backoff) {
			return done, failed, nil
		}
		todo = again
	}
}

// fenceStore is Fence through the account's driver.
func (a *Activities) fenceStore(ctx context.Context, ss storeSide, in FenceInput, ps []int) (FenceResult, error) {
	res := FenceResult{FinalLSN: make([]uint64, in.Partitions), Fenced: make([]bool, in.Partitions)}
	what := fmt.Sprintf("fence %s", in.Account)
	done, failed, final := untilDone(ctx, budget(ctx, in.Until), ps, func(ctx context.Context, ps []int) []driver.Result {
		return ss.st.Fence(ctx, ss.side, ps, fenceLease)
	})
	if final != nil {
		return res, classify(what, final)
	}
	for _, r := range done {
		res.FinalLSN[r.Partition], res.Fenced[r.Partition] = r.Position, true
	}
	return res, res.unreachable(what, in.BestEffort, failed)
}

// unfenceStore is Unfence through the account's driver.
func (a *Activities) unfenceStore(ctx context.Context, ss storeSide, in UnfenceInput) error {
	what := fmt.Sprintf("unfence %s", in.Account)
	_, failed, final := untilDone(ctx, budget(ctx, time.Time{}), AllPartitions(in.Partitions),
		func(ctx context.Context, ps []int) []driver.Result { return ss.st.Unfence(ctx, ss.side, ps) })
	if final != nil {
		return classify(what, final)
	}
	if len(failed) > 0 {
		return stillFailing(what, failed)
	}
	return nil
}

// flushSendStore is FlushSend through the account's driver: each shard's
// replica confirms it received its fenced primary's final position.
func (a *Activities) flushSendStore(ctx context.Context, ss storeSide, in FlushSendInput) (FlushSendResult, error) {
	var res FlushSendResult
	for _, r := range ss.st.FlushSend(ctx, ss.side, ss.other, in.Partitions) {
		switch {
		case r.Err == nil:
			res.Sent = append(res.Sent, PartitionLSN{Partition: r.Partition, LSN: r.Position})
		case driver.IsFinal(r.Err):
			return FlushSendResult{}, classify(fmt.Sprintf("flush-send %s", in.Account), &Refusal{Partition: r.Partition, Err: r.Err})
		default:
			res.fail(r.Partition, r.Err)
		}
	}
	if len(res.Sent) == 0 {
		return res, fmt.Errorf("flush-send %s: nothing sent: %s", in.Account, res.LastError)
	}
	return res, nil
}

// flushReplayStore is FlushReplay through the account's driver, a
// heartbeat for each shard replayed.
func (a *Activities) flushReplayStore(ctx context.Context, ss storeSide, in FlushReplayInput) (FlushReplayResult, error) {
	targets := make(map[int]uint64, len(in.Targets))
	for _, t := range in.Targets {
		targets[t.Partition] = t.LSN
	}
	var res FlushReplayResult
	var replayed atomic.Int64 // progress is told from each shard's goroutine
	progress := func(int) {
		if n := replayed.Add(1); activity.IsActivity(ctx) {
			activity.RecordHeartbeat(ctx, n)
		}
	}
	for _, r := range ss.st.FlushReplay(ctx, ss.side, targets, progress) {
		switch {
		case r.Err == nil:
			res.Replayed = append(res.Replayed, PartitionLSN{Partition: r.Partition, LSN: r.Position})
		case driver.IsFinal(r.Err) || !in.ReportFailed:
			return FlushReplayResult{}, classify(fmt.Sprintf("flush-replay %s", in.Account), &Refusal{Partition: r.Partition, Err: r.Err})
		default:
			res.Failed = append(res.Failed, r.Partition)
			res.Errors = append(res.Errors, r.Err.Error())
		}
	}
	res.Timing = timing(ctx)
	return res, nil
}

// promoteStore is Promote through the account's driver: the old
// primaries are confirmed fenced (refence), the replicas become primaries,
// the location service points the account at them, and the old primaries
// rejoin as their replicas, which ends their fence (the writes it held are
// refused). Rejoined, the account is protected again. A driver that cannot
// rejoin (PostgreSQL: by hand) leaves it unprotected and its old primaries
// fenced; an old primary that does not answer the rejoin fails the
// activity, to be retried (every step is idempotent), rather than leave a
// fence to lapse on a server that is still a primary.
func (a *Activities) promoteStore(ctx context.Context, ss storeSide, in PromoteInput) (PromoteResult, error) {
	res := PromoteResult{StartLSN: make([]uint64, in.Partitions)}
	what := fmt.Sprintf("promote %s at epoch %d", in.Account, in.Epoch)
	until := budget(ctx, time.Time{})
	all := AllPartitions(in.Partitions)
	gone, err := refence(ctx, ss, all, in.Unplanned)
	if err != nil {
		return res, classify(what, err)
	}
	done, failed, final := untilDone(ctx, until, all,
		func(ctx context.Context, ps []int) []driver.Result { return ss.st.Promote(ctx, ss.side, ps) })
	if final != nil {
		return res, classify(what, final)
	}
	if len(failed) > 0 {
		return res, stillFailing(what, failed)
	}
	for _, r := range done {
		res.StartLSN[r.Partition] = r.Position
	}
	res.Location, err = a.Location.Move(ctx, in.Account, location.MoveRequest{
		From: in.From, To: in.To, ExpectedEpoch: in.OldEpoch, Epoch: in.Epoch, Operation: in.Operation,
	})
	if err != nil {
		return res, classify(fmt.Sprintf("repoint %s from %s to %s at epoch %d", in.Account, in.From, in.To, in.Epoch), err)
	}
	res.Timing = timing(ctx)
	return res, a.rejoinOld(ctx, ss, in, without(without(all, in.GivenUp), gone), until)
}

// rejoinOld rejoins the old primaries of ps as replicas of the new ones
// and, when that is every shard, records the account protected. A driver
// that cannot rejoin (PostgreSQL: by hand), or old primaries given up on or
// gone, leave it unprotected, their fences held, until an operator rejoins
// them and runs baton reprotect.
func (a *Activities) rejoinOld(ctx context.Context, ss storeSide, in PromoteInput, ps []int, until time.Time) error {
	_, failed, final := untilDone(ctx, until, ps,
		func(ctx context.Context, ps []int) []driver.Result { return ss.st.Rejoin(ctx, ss.other, ss.side, ps) })
	switch {
	case final != nil:
		activity.GetLogger(ctx).Warn("old primaries not rejoined: the account stays unprotected, its old primaries fenced, "+
			"until they rejoin by hand and baton reprotect", "account", in.Account, "why", final.Error())
		return nil
	case len(failed) > 0:
		return stillFailing(fmt.Sprintf("rejoin the old primaries of %s", in.Account), failed)
	case len(ps) < in.Partitions:
		activity.GetLogger(ctx).Warn("old primaries given up on or gone are not rejoined: the account stays unprotected "+
			"until they rejoin by hand and baton reprotect", "account", in.Account, "rejoined", ps)
		return nil
	}
	if _, err := a.Location.Protect(ctx, in.Account, in.Epoch); err != nil {
		activity.GetLogger(ctx).Warn("rejoined, but not recorded protected: baton reprotect records it",
			"account", in.Account, "error", err)
	}
	return nil
}

// without is ps less those in drop.
func without(ps, drop []int) []int {
	out := make([]int, 0, len(ps))
	for _, p := range ps {
		if !slices.Contains(drop, p) {
			out = append(out, p)
		}
	}
	return out
}

// refence confirms, before a promote, that the old primaries take no
// writes: those still primaries are fenced again (which renews a Redis
// fence's lease), those already replicas (a promote that rejoined them) are
// safe. One that does not answer holds a planned promote: it may have come
// back without its fence. Unplanned, it is gone (given up on, or down
// since): it is answered in gone, and the promote goes on; one that came
// back is fenced like the others.
func refence(ctx context.Context, ss storeSide, ps []int, unplanned bool) (gone []int, err error) {
	var still []int
	for _, p := range ss.st.Positions(ctx, ss.other, ps) {
		switch {
		case p.Err != nil && unplanned:
			gone = append(gone, p.Partition)
		case p.Err != nil:
			return nil, fmt.Errorf("the old primary of shard %d (%s) does not answer, so its fence is not confirmed: %w",
				p.Partition, ss.other.Endpoint(p.Partition), p.Err)
		case p.Primary:
			still = append(still, p.Partition)
		}
	}
	for _, r := range ss.st.Fence(ctx, ss.other, still, fenceLease) {
		if r.Err != nil {
			return nil, &Refusal{Partition: r.Partition, Err: r.Err}
		}
	}
	return gone, nil
}

// storeLag sums, over ps, what each primary wrote that its replica has not
// replayed.
func storeLag(ctx context.Context, ss storeSide, ps []int) (uint64, error) {
	src := ss.st.Positions(ctx, ss.side, ps)
	dst := ss.st.Positions(ctx, ss.other, ps)
	var lag uint64
	for i := range ps {
		if err := src[i].Err; err != nil {
			return 0, err
		}
		if err := dst[i].Err; err != nil {
			return 0, err
		}
		if src[i].Written > dst[i].Replayed {
			lag += src[i].Written - dst[i].Replayed
		}
	}
	return lag, nil
}

// precheckStore checks a driven account: the kind's driver is there,
// every shard of the destination is its source's replica (or, resuming,
// already promoted), and every shard of the source a primary, whose lag it
// measures. Unplanned (a store whose driver reads losses), a source that
// does not answer within a few seconds is expected: its shards are given up
// on by the fence, and the ledger says what they lost.
func (pc *precheck) precheckStore(ctx context.Context) error {
	in, res := pc.in, &pc.res
	ss, _, err := pc.a.storeFor(ctx, in.Account, res.FromURL)
	if err != nil {
		return precheckFailed("precheck of %s: %v", in.Account, err)
	}
	if _, ok := ss.st.(driver.LossReader); in.Unplanned && !ok {
		return precheckFailed("account %s is a %s account, whose driver cannot fail over unplanned (it reads no data-loss "+
			"ledger): fail it over planned", in.Account, pc.acct.Kind)
	}
	ps := AllPartitions(res.Partitions)
	// Both sides at once, each with its own bound: neither waits for the
	// other's retries (unplanned, the source gets a few seconds).
	srcUntil := pc.until
	if probe := time.Now().Add(unplannedSourceProbe); in.Unplanned && probe.Before(srcUntil) {
		srcUntil = probe
	}
	var dst, src []driver.Positions
	var dstErr, srcErr error
	var wg sync.WaitGroup
	wg.Go(func() { dst, dstErr = storePositions(ctx, ss.st, ss.other, ps, pc.until) })
	wg.Go(func() { src, srcErr = storePositions(ctx, ss.st, ss.side, ps, srcUntil) })
	wg.Wait()
	switch {
	case dstErr != nil:
		return pc.spent(fmt.Sprintf("the shards of %s on %s", in.Account, res.To), dstErr)
	case srcErr != nil && !in.Unplanned:
		return pc.spent(fmt.Sprintf("the shards of %s on %s", in.Account, res.From), srcErr)
	case srcErr != nil:
		res.SourceError = srcErr.Error()
	}
	for i, p := range ps {
		if err := pc.checkShard(ss, p, dst[i], src[i]); err != nil {
			return err
		}
	}
	res.SourceReachable, res.DestinationHealthy = srcErr == nil, true
	res.EstimatedLossOps, res.KnownAsOf = res.SendLagOps, time.Now().UTC()
	return nil
}

// storePositions reads the positions of ps on side until every shard
// answers or until passes: then the last answers (Err set on the shards
// that did not answer) and the first shard's error.
func storePositions(ctx context.Context, st driver.Store, side driver.Side, ps []int, until time.Time) ([]driver.Positions, error) {
	var out []driver.Positions
	err := retryUntil(ctx, until, func(ctx context.Context) error {
		out = st.Positions(ctx, side, ps)
		for _, p := range out {
			if p.Err != nil {
				return fmt.Errorf("shard %d: %w", p.Partition, p.Err)
			}
		}
		return nil
	})
	return out, err
}

// checkShard checks shard p: its replica dst, and its primary src (Err
// set: it does not answer, unplanned).
func (pc *precheck) checkShard(ss storeSide, p int, dst, src driver.Positions) error {
	in, res := pc.in, &pc.res
	switch {
	case src.Err != nil && dst.Primary:
		res.PromotedAhead++ // a promote that began, its old primary gone
	case src.Err != nil:
	case dst.Primary && !src.Primary:
		res.PromotedAhead++ // a promote that began: the old primary rejoined already
		res.AlreadyFenced++
	case !src.Primary:
		return precheckFailed("account %s shard %d on %s (%s) is not a primary", in.Account, p, res.From, ss.side.Endpoint(p))
	case dst.Primary:
		return precheckFailed("account %s shard %d on %s (%s) is a primary, expected a replica of %s", in.Account, p,
			res.To, ss.other.Endpoint(p), ss.side.Endpoint(p))
	default:
		lag := src.Written - min(src.Written, dst.Replayed)
		res.SendLagOps += lag
		res.LagOps[p] = lag
	}
	return nil
}

// PasswordFlag is the worker flag that gives it the driver of kind.
func PasswordFlag(kind driver.Kind) string {
	if kind == driver.KindPostgres {
		return "--pg-password-file"
	}
	return "--" + string(kind) + "-password-file"
}

// reprotectStore is the reprotect of a driven account (baton reprotect):
// the old primaries rejoin as replicas in the failover itself (Redis) or
// by the operator's hand on their hosts (PostgreSQL: pg_rewind, then a
// start as a standby, docs/STORES.md); this checks that every shard of the
// primary site has its replica online, and records the account protected
// (Protected: the workflow has nothing left to do). A shard whose replica
// is not there refuses, naming it and what to do.
func (a *Activities) reprotectStore(ctx context.Context, acct location.Account, res ReprotectPrecheckResult) (ReprotectPrecheckResult, error) {
	ss, _, err := a.storeFor(ctx, acct.Account, acct.PrimaryURL)
	if err != nil {
		return res, precheckFailed("reprotect of %s: %v", acct.Account, err)
	}
	if res.Protected {
		return res, nil
	}
	for _, p := range ss.st.Positions(ctx, ss.side, AllPartitions(acct.Partitions)) {
		switch {
		case p.Err != nil:
			return res, precheckFailed("reprotect of %s: shard %d on %s (%s): %v", acct.Account, p.Partition, acct.Primary,
				ss.side.Endpoint(p.Partition), p.Err)
		case !p.Primary:
			return res, precheckFailed("reprotect of %s: shard %d on %s (%s) is not a primary", acct.Account, p.Partition,
				acct.Primary, ss.side.Endpoint(p.Partition))
		case p.Acked == 0:
			return res, precheckFailed("reprotect of %s: shard %d's old primary on %s (%s) does not replicate the new one "+
				"(%s) yet: %s, then baton reprotect %s again", acct.Account, p.Partition, acct.Secondary,
				ss.other.Endpoint(p.Partition), ss.side.Endpoint(p.Partition), rejoinHint(acct.Kind), acct.Account)
		}
	}
	if _, err := a.Location.Protect(ctx, acct.Account, acct.Epoch); err != nil {
		return res, classify("mark "+acct.Account+" protected", err)
	}
	res.Protected = true
	return res, nil
}

// rejoinHint says how an old primary of kind rejoins by hand.
func rejoinHint(kind string) string {
	if kind == location.KindPostgres {
		return "on its host, stop it, rewind it against the new primary (pgrejoin --pgdata DIR --new-primary HOST:PORT: " +
			"the diverged WAL reported, then pg_rewind -R), and start it"
	}
	return "REPLICAOF the new primary on it"
}
