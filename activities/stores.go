package activities

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/batonhq/baton/driver"
	"github.com/batonhq/baton/driver/stampdriver"
	"github.com/batonhq/baton/internal/clock"
	"github.com/batonhq/baton/location"
)

// Every account is served through its store's driver (package driver):
// the reference stamp's (stampdriver) for a site registered with an
// http(s) URL, else the driver of the store the URL names, redis://site-a,
// whose shards' servers are the account's endpoints. The activities take
// the same inputs and give the same results whatever the store: the
// workflows do not know the difference.

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
	// primaries of a replica side. A stamp's is not known (its partitions
	// know their peers): no call of the stamp's needs it.
	other driver.Side
}

// storeFor answers the driver and the side of siteURL: a stamp's URL is
// the stamp; another's names the store and the site, whose endpoints the
// location service holds.
func (a *Activities) storeFor(ctx context.Context, account, siteURL string) (ss storeSide, err error) {
	scheme, site, ok := strings.Cut(siteURL, "://")
	scheme = strings.ToLower(scheme)
	if !ok || scheme == "http" || scheme == "https" {
		return storeSide{st: a.stampStore(), side: driver.Side{Account: account, Endpoints: []string{siteURL}}}, nil
	}
	st := a.Stores[driver.Kind(scheme)]
	if st == nil {
		return ss, driver.Finalf("account %s lives in %s (site %s) and this worker has no %s driver: "+
			"start it with %s", account, scheme, site, scheme, PasswordFlag(driver.Kind(scheme)))
	}
	acct, err := retryFor(ctx, budget(ctx, time.Time{}), func(ctx context.Context) (location.Account, error) {
		return a.Location.Lookup(ctx, account)
	})
	if err != nil {
		return ss, fmt.Errorf("look up %s: %w", account, err)
	}
	if acct.Kind != scheme {
		return ss, driver.Finalf("account %s is of kind %q but its site %s is registered as %s: "+
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
		return ss, driver.Finalf("account %s is on %s and %s, not on site %s", account, acct.Primary, acct.Secondary, site)
	}
	if len(ss.side.Endpoints) != acct.Partitions || len(ss.other.Endpoints) != acct.Partitions {
		return ss, driver.Finalf("account %s of kind %q has no endpoints for its %d shards on %s", account,
			acct.Kind, acct.Partitions, site)
	}
	return ss, nil
}

// stampStore is the reference stamp's driver, over the cached clients.
func (a *Activities) stampStore() *stampdriver.Driver {
	a.stampOnce.Do(func() { a.stampd = stampdriver.New(a.stamp) })
	return a.stampd
}

// untilDone calls step on the partitions still failing until none is or
// until passes, so that a partition that blips does not fail the whole
// call; a final answer ends it at once. answer reads a result's partition
// and error. It returns the results that succeeded and the last failure
// of each partition that never did.
func untilDone[R any](ctx context.Context, until time.Time, ps []int, step func(ctx context.Context, ps []int) []R,
	answer func(R) (int, error)) (done []R, failed []PartitionFailure, final error) {
	todo := ps
	for backoff := firstBackoff; ; backoff = min(2*backoff, maxBackoff) {
		var again []int
		failed = failed[:0]
		for _, r := range step(ctx, todo) {
			switch p, err := answer(r); {
			case err == nil:
				done = append(done, r)
			case driver.IsFinal(err):
				return done, nil, refusal(p, err)
			default:
				again = append(again, p)
				failed = append(failed, PartitionFailure{Partition: p, Error: err.Error()})
			}
		}
		if len(again) == 0 || !time.Now().Add(backoff).Before(until) || !clock.Sleep(ctx, backoff) {
			return done, failed, nil
		}
		todo = again
	}
}

// untilAll is untilDone for a driver's results.
func untilAll(ctx context.Context, until time.Time, ps []int,
	step func(ctx context.Context, ps []int) []driver.Result) ([]driver.Result, []PartitionFailure, error) {
	return untilDone(ctx, until, ps, step, func(r driver.Result) (int, error) { return r.Partition, r.Err })
}

// storeLag sums, over every partition, what each primary wrote that its
// replica has not received (send) and what each replica received but has
// not replayed
// (replay); both sides are read at once. A partition already promoted
// (its primary on dst, a resumed failover's) has no lag left to drain.
func storeLag(ctx context.Context, st driver.Store, src, dst driver.Side, partitions int) (send, replay uint64, err error) {
	ps := AllPartitions(partitions)
	var sp, dp []driver.Positions
	var wg sync.WaitGroup
	wg.Go(func() { sp = st.Positions(ctx, src, ps) })
	wg.Go(func() { dp = st.Positions(ctx, dst, ps) })
	wg.Wait()
	for i := range ps {
		if err := sp[i].Err; err != nil {
			return 0, 0, fmt.Errorf("source: %w", err)
		}
		if err := dp[i].Err; err != nil {
			return 0, 0, fmt.Errorf("destination: %w", err)
		}
		if !sp[i].Primary || dp[i].Primary {
			continue
		}
		send += sp[i].Written - min(dp[i].Written, sp[i].Written)
		replay += dp[i].Written - min(dp[i].Replayed, dp[i].Written)
	}
	return send, replay, nil
}

// precheckStore checks a driven account: the kind's driver is there,
// every shard of the destination is its source's replica (or, resuming,
// already promoted), and every shard of the source a primary, whose lag it
// measures. Unplanned (a store whose driver reads losses), a source that
// does not answer within a few seconds is expected: its shards are given up
// on by the fence, and the ledger says what they lost.
func (pc *precheck) precheckStore(ctx context.Context) error {
	in, res := pc.in, &pc.res
	ss, err := pc.a.storeFor(ctx, in.Account, res.FromURL)
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
	ss, err := a.storeFor(ctx, acct.Account, acct.PrimaryURL)
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
