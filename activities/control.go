package activities

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/stamp"
)

// CatchUpInput lets replication drain while writes still flow, so that the
// fenced window that follows is short (Vitess's planned reparent does the
// same before it demotes the primary).
type CatchUpInput struct {
	Account    string
	FromURL    string
	ToURL      string
	Partitions int
	// MaxLagOps: caught up once unacknowledged + unreplayed ops, summed over
	// all partitions, are at most this.
	MaxLagOps uint64
	// Timeout: give up waiting (and fence anyway) after this long.
	Timeout time.Duration
	// Poll is the pause between status polls; 0 means 100ms.
	Poll time.Duration
}

// CatchUpResult reports how far replication got.
type CatchUpResult struct {
	CaughtUp     bool
	SendLagOps   uint64
	ReplayLagOps uint64
	Polls        int
}

// CatchUp polls both stamps until the lag is at most MaxLagOps or Timeout
// passes. It changes nothing, so it is trivially idempotent.
func (a *Activities) CatchUp(ctx context.Context, in CatchUpInput) (CatchUpResult, error) {
	defer keepAlive(ctx)()
	src, dst := a.stamp(in.FromURL), a.stamp(in.ToURL)
	poll := in.Poll
	if poll <= 0 {
		poll = 100 * time.Millisecond
	}
	deadline := time.Now().Add(in.Timeout)
	var res CatchUpResult
	for {
		res.Polls++
		send, replay, err := lag(ctx, src, dst, in.Account)
		if err != nil {
			return res, classify(fmt.Sprintf("catch up %s", in.Account), err)
		}
		res.SendLagOps, res.ReplayLagOps = send, replay
		activity.RecordHeartbeat(ctx, res)
		if send+replay <= in.MaxLagOps {
			res.CaughtUp = true
			return res, nil
		}
		if !time.Now().Before(deadline) {
			return res, nil
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(poll):
		}
	}
}

// lag sums the send lag on src and the replay lag on dst.
func lag(ctx context.Context, src, dst *stamp.Client, account string) (send, replay uint64, err error) {
	var (
		wg         sync.WaitGroup
		ss, ds     stamp.AccountStatus
		serr, derr error
	)
	wg.Add(2)
	go func() { defer wg.Done(); ss, serr = src.Status(ctx, account, nil) }()
	go func() { defer wg.Done(); ds, derr = dst.Status(ctx, account, nil) }()
	wg.Wait()
	if serr != nil {
		return 0, 0, fmt.Errorf("status on source: %w", serr)
	}
	if derr != nil {
		return 0, 0, fmt.Errorf("status on destination: %w", derr)
	}
	for _, p := range ss.Partitions {
		send += p.LastWritten - min(p.LastAcked, p.LastWritten)
	}
	for _, p := range ds.Partitions {
		replay += p.LastReceived - min(p.LastReplayed, p.LastReceived)
	}
	return send, replay, nil
}

// FenceInput fences every partition of an account on the source.
type FenceInput struct {
	Account    string
	FromURL    string
	Partitions int
	// Epoch the partitions must be at (the precheck's); a mismatch means
	// someone else moved the account, and fencing is refused.
	Epoch uint64
	// Only these partitions (nil = all).
	Only []int
	// BestEffort (unplanned failover): partitions that do not answer are
	// reported in Unreachable instead of failing the activity.
	BestEffort bool
}

// FenceResult gives each partition's final LSN, indexed by partition, and
// (best effort) the partitions that could not be fenced.
type FenceResult struct {
	FinalLSN    []uint64
	Fenced      []bool
	Unreachable []int
	LastError   string
}

// Fence stops writes on the source partitions and returns their final LSNs.
func (a *Activities) Fence(ctx context.Context, in FenceInput) (FenceResult, error) {
	defer keepAlive(ctx)()
	src := a.stamp(in.FromURL)
	res := FenceResult{FinalLSN: make([]uint64, in.Partitions), Fenced: make([]bool, in.Partitions)}
	ps := in.Only
	if ps == nil {
		ps = AllPartitions(in.Partitions)
	}
	var mu sync.Mutex
	record := func(r stamp.ControlResponse) {
		mu.Lock()
		defer mu.Unlock()
		for _, pr := range r.Results {
			res.FinalLSN[pr.Partition], res.Fenced[pr.Partition] = pr.LSN, true
		}
	}
	err := forChunks(ctx, ps, func(ctx context.Context, _ int, chunk []int) error {
		r, err := src.Fence(ctx, in.Account, stamp.ControlRequest{Partitions: chunk, Epoch: in.Epoch})
		if err == nil {
			record(r)
			return nil
		}
		what := fmt.Sprintf("fence %s partitions %d-%d", in.Account, chunk[0], chunk[len(chunk)-1])
		if !in.BestEffort || !retryable(err) {
			return classify(what, err)
		}
		failed, last := perPartition(ctx, chunk, func(ctx context.Context, p int) error {
			r, err := src.Fence(ctx, in.Account, stamp.ControlRequest{Partitions: []int{p}, Epoch: in.Epoch})
			if err == nil {
				record(r)
			}
			return err
		})
		mu.Lock()
		res.Unreachable = append(res.Unreachable, failed...)
		if last != "" {
			res.LastError = last
		}
		mu.Unlock()
		return nil
	})
	slices.Sort(res.Unreachable)
	return res, err
}

// perPartition calls fn for each partition (8 at a time) and returns those
// that failed, with the last error, so one bad partition does not stall the
// rest.
func perPartition(ctx context.Context, ps []int, fn func(ctx context.Context, p int) error) (failed []int, lastErr string) {
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	sem := make(chan struct{}, 8)
	for _, p := range ps {
		wg.Add(1)
		sem <- struct{}{}
		go func(p int) {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(ctx, p); err != nil {
				mu.Lock()
				failed = append(failed, p)
				lastErr = fmt.Sprintf("partition %d: %v", p, err)
				mu.Unlock()
			}
		}(p)
	}
	wg.Wait()
	slices.Sort(failed)
	return failed, lastErr
}

// retryable reports whether err may go away by itself (network, 5xx).
func retryable(err error) bool {
	var se *stamp.APIError
	return !errors.As(err, &se) || se.Retryable()
}

// UnfenceInput rolls a fence back.
type UnfenceInput struct {
	Account    string
	FromURL    string
	Partitions int
	Epoch      uint64
}

// Unfence lets the source take writes again: the rollback of a failover that
// stopped before promote.
func (a *Activities) Unfence(ctx context.Context, in UnfenceInput) error {
	defer keepAlive(ctx)()
	src := a.stamp(in.FromURL)
	return forChunks(ctx, AllPartitions(in.Partitions), func(ctx context.Context, _ int, chunk []int) error {
		_, err := src.Unfence(ctx, in.Account, stamp.ControlRequest{Partitions: chunk, Epoch: in.Epoch})
		return classify(fmt.Sprintf("unfence %s partitions %d-%d", in.Account, chunk[0], chunk[len(chunk)-1]), err)
	})
}

// PartitionLSN is one partition's LSN and how long the step took for it.
type PartitionLSN struct {
	Partition int
	LSN       uint64
	Millis    int64
}

// FlushSendInput flush-sends a group of partitions.
type FlushSendInput struct {
	Account    string
	FromURL    string
	Partitions []int
}

// FlushSendResult: Sent partitions are on their way to replay; Failed ones
// (with the last error) are for the caller to retry, so a partition that
// fails does not hold back its group.
type FlushSendResult struct {
	Sent      []PartitionLSN
	Failed    []int
	LastError string
}

// FlushSend ships everything pending on the partitions as one group. If the
// group call fails it retries partition by partition, so one bad partition
// cannot stall the rest; it returns an error only if nothing was sent.
func (a *Activities) FlushSend(ctx context.Context, in FlushSendInput) (FlushSendResult, error) {
	defer keepAlive(ctx)()
	src := a.stamp(in.FromURL)
	var res FlushSendResult
	r, err := src.FlushSend(ctx, in.Account, stamp.ControlRequest{Partitions: in.Partitions})
	if err == nil {
		res.Sent = sendResults(r.Results)
		return res, nil
	}
	what := fmt.Sprintf("flush-send %s (%d partitions from %d)", in.Account, len(in.Partitions), in.Partitions[0])
	if len(in.Partitions) == 1 || !retryable(err) {
		return res, classify(what, err)
	}
	var mu sync.Mutex
	res.Failed, res.LastError = perPartition(ctx, in.Partitions, func(ctx context.Context, p int) error {
		r, err := src.FlushSend(ctx, in.Account, stamp.ControlRequest{Partitions: []int{p}})
		if err == nil {
			mu.Lock()
			res.Sent = append(res.Sent, sendResults(r.Results)...)
			mu.Unlock()
		}
		return err
	})
	if len(res.Sent) == 0 {
		return FlushSendResult{}, classify(what, err)
	}
	slices.SortFunc(res.Sent, func(x, y PartitionLSN) int { return x.Partition - y.Partition })
	return res, nil
}

func sendResults(rs []stamp.ControlResult) []PartitionLSN {
	out := make([]PartitionLSN, len(rs))
	for i, r := range rs {
		out[i] = PartitionLSN{Partition: r.Partition, LSN: r.LSN, Millis: millis(r.Status.SendStartedAt, r.Status.SendDoneAt)}
	}
	return out
}

func millis(from, to time.Time) int64 {
	if from.IsZero() || to.IsZero() || to.Before(from) {
		return 0
	}
	return to.Sub(from).Milliseconds()
}

// FlushReplayInput replays a group of partitions on the destination up to
// exactly what was sent (a target LSN of 0 means everything received: the
// unplanned case of a partition whose source was given up on).
type FlushReplayInput struct {
	Account string
	ToURL   string
	Targets []PartitionLSN
	// Wait is the long-poll per call; 0 means 1s. Each answer is a heartbeat.
	Wait time.Duration
}

// FlushReplayResult gives each partition's replayed LSN and replay time.
type FlushReplayResult struct {
	Replayed []PartitionLSN
}

// FlushReplay waits, long-polling the destination, until every partition has
// replayed up to its target, heartbeating its progress. A retry simply asks
// again: the stamp keeps replaying from its durable LSN.
func (a *Activities) FlushReplay(ctx context.Context, in FlushReplayInput) (FlushReplayResult, error) {
	// A slow answer must not look like a dead worker.
	defer keepAlive(ctx)()
	dst := a.stamp(in.ToURL)
	wait := in.Wait
	if wait <= 0 {
		wait = time.Second
	}
	targets := make(map[int]uint64, len(in.Targets))
	parts := make([]int, len(in.Targets))
	for i, t := range in.Targets {
		if t.LSN > 0 {
			targets[t.Partition] = t.LSN
		}
		parts[i] = t.Partition
	}
	for {
		r, err := dst.FlushReplay(ctx, in.Account, stamp.ControlRequest{
			Partitions: parts, Targets: targets, WaitMillis: int(wait.Milliseconds()),
		})
		if err != nil {
			return FlushReplayResult{}, classify(fmt.Sprintf("flush-replay %s (%d partitions from %d)", in.Account, len(parts), parts[0]), err)
		}
		done := 0
		var behind uint64
		for _, pr := range r.Results {
			if pr.Done {
				done++
			} else {
				behind += pr.Status.ReplayTarget - min(pr.LSN, pr.Status.ReplayTarget)
			}
		}
		activity.RecordHeartbeat(ctx, fmt.Sprintf("%d/%d partitions replayed, %d ops to go", done, len(parts), behind))
		if done == len(parts) {
			out := FlushReplayResult{Replayed: make([]PartitionLSN, len(r.Results))}
			for i, pr := range r.Results {
				out.Replayed[i] = PartitionLSN{Partition: pr.Partition, LSN: pr.LSN, Millis: millis(pr.Status.ReplayStartedAt, pr.Status.ReplayDoneAt)}
			}
			return out, nil
		}
		if err := ctx.Err(); err != nil {
			return FlushReplayResult{}, err
		}
	}
}

// PromoteInput promotes every partition on the destination and moves the
// account there.
type PromoteInput struct {
	Account    string
	From       string // stamp names, for the location service
	To         string
	ToURL      string
	Partitions int
	OldEpoch   uint64 // the epoch the account must still be at
	Epoch      uint64 // the new epoch
}

// PromoteResult gives the LSN each new primary partition continues from and
// where the location service now points.
type PromoteResult struct {
	StartLSN []uint64
	Location location.Account
}

// Promote is the patent's promote step: the destination partitions take
// writes under the new epoch, then the location service points the account
// at them (a compare-and-set on the epoch), which moves live traffic. Both
// halves are idempotent, so a retry after either one is safe.
func (a *Activities) Promote(ctx context.Context, in PromoteInput) (PromoteResult, error) {
	defer keepAlive(ctx)()
	dst := a.stamp(in.ToURL)
	res := PromoteResult{StartLSN: make([]uint64, in.Partitions)}
	err := forChunks(ctx, AllPartitions(in.Partitions), func(ctx context.Context, _ int, chunk []int) error {
		r, err := dst.Promote(ctx, in.Account, stamp.ControlRequest{Partitions: chunk, Epoch: in.Epoch})
		if err != nil {
			return classify(fmt.Sprintf("promote %s partitions %d-%d at epoch %d", in.Account, chunk[0], chunk[len(chunk)-1], in.Epoch), err)
		}
		for _, pr := range r.Results {
			res.StartLSN[pr.Partition] = pr.LSN
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	res.Location, err = a.Location.Move(ctx, in.Account, location.MoveRequest{
		From: in.From, To: in.To, ExpectedEpoch: in.OldEpoch, Epoch: in.Epoch,
	})
	return res, classify(fmt.Sprintf("repoint %s from %s to %s at epoch %d", in.Account, in.From, in.To, in.Epoch), err)
}
