package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/batonhq/baton/internal/launch"
	"github.com/batonhq/baton/stamp"
	"github.com/batonhq/baton/testsuite"
	"github.com/batonhq/baton/workflows"
)

// Targets of the reprotect scenarios.
const (
	reprotect1000Target = 10 * time.Second
	// seed1MTarget bounds the reprotect that seeds a wiped stamp from an
	// account of a million keys.
	seed1MTarget = 30 * time.Second
)

// reprotectScenarios runs on a durable cluster of its own (the seeding one
// wipes a stamp): a reprotect of 1,000 partitions after a planned failover,
// with nothing to reconcile, and the seeding of a wiped stamp from an
// account of seedKeys keys, against the cost of copying those bytes.
func reprotectScenarios(ctx context.Context, out io.Writer, dir string, seedKeys int, t *targets) error {
	c, err := testsuite.Start(ctx, testsuite.Options{Dir: filepath.Join(dir, "reprotect"), Durable: true, Progress: io.Discard})
	if err != nil {
		return err
	}
	defer c.Close()

	const acct1, p1 = "rp-1000", 1000
	if _, err := failover(ctx, c, acct1, p1, workflows.FailoverOptions{}); err != nil {
		return err
	}
	r, wall, err := reprotectAccount(ctx, c, acct1)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nreprotect of %d partitions after a planned failover (nothing to reconcile, nothing to seed):\n", p1)
	fmt.Fprintf(out, "  total %.2f s (in workflow %.2f s, catch-up %.2f s): %s\n", wall.Seconds(), float64(r.TotalMillis)/1000,
		float64(r.CatchUpMillis)/1000, t.check(fmt.Sprintf("reprotect of %d partitions <= %s", p1, reprotect1000Target), wall <= reprotect1000Target))

	const acct2, p2 = "seed-1m", 64
	if _, err := c.Provision(ctx, acct2, p2); err != nil {
		return err
	}
	t0 := time.Now()
	if err := writeKeys(ctx, c.StampClient(testsuite.StampA), acct2, seedKeys); err != nil {
		return err
	}
	ingest := time.Since(t0)
	if _, err := failover(ctx, c, acct2, p2, workflows.FailoverOptions{}); err != nil {
		return err
	}
	if err := c.WipeStamp(ctx, testsuite.StampA); err != nil {
		return err
	}
	r, wall, err = reprotectAccount(ctx, c, acct2)
	if err != nil {
		return err
	}
	size, copyTime, err := copyFile(c.StampDataFile(testsuite.StampB), filepath.Join(dir, "copy-of-stamp-b.db"))
	if err != nil {
		return err
	}
	seedRate := float64(r.SeededBytes) / wall.Seconds()
	copyRate := float64(size) / copyTime.Seconds()
	fmt.Fprintf(out, "\nseeding a wiped stamp: %d keys in %d partitions, %.1f MB of keys and values:\n", seedKeys, p2, float64(r.SeededBytes)/1e6)
	fmt.Fprintf(out, "  reprotect total %.2f s (%.1f MB/s of keys and values; catch-up after it %.2f s): %s\n",
		wall.Seconds(), seedRate/1e6, float64(r.CatchUpMillis)/1000,
		t.check(fmt.Sprintf("seeding %d keys <= %s", seedKeys, seed1MTarget), seedKeys != 1_000_000 || wall <= seed1MTarget))
	fmt.Fprintf(out, "  for comparison: writing those keys through the primary's batch API took %.2f s; copying stamp-b's whole data file "+
		"(%.1f MB, bbolt pages included, just written so read from the page cache; written and fsynced) took %.2f s (%.0f MB/s), "+
		"which at that rate moves the seeded bytes in %.3f s\n",
		ingest.Seconds(), float64(size)/1e6, copyTime.Seconds(), copyRate/1e6, float64(r.SeededBytes)/copyRate)
	return nil
}

// reprotectAccount reprotects the account and returns its report and the
// client's wall time.
func reprotectAccount(ctx context.Context, c *testsuite.Cluster, account string) (workflows.ReprotectResult, time.Duration, error) {
	var r workflows.ReprotectResult
	t0 := time.Now()
	run, err := launch.Reprotect(ctx, c.Client, workflows.TaskQueue, workflows.ReprotectRequest{Account: account, RequestedBy: "bench"})
	if err != nil {
		return r, 0, err
	}
	if err := run.Get(ctx, &r); err != nil {
		return r, 0, fmt.Errorf("reprotect of %s: %w", account, err)
	}
	return r, time.Since(t0), nil
}

// writeKeys writes n keys to the account in batches.
func writeKeys(ctx context.Context, sc *stamp.Client, account string, n int) error {
	const batch = 2000
	ops := make([]stamp.BatchOp, 0, batch)
	for i := range n {
		ops = append(ops, stamp.BatchOp{Op: stamp.OpPut, Key: fmt.Sprintf("seed-%08d", i), Value: "value-of-a-seeded-key"})
		if len(ops) == batch || i == n-1 {
			if _, err := sc.Batch(ctx, account, ops, 0); err != nil {
				return fmt.Errorf("write %d keys: %w", n, err)
			}
			ops = ops[:0]
		}
	}
	return nil
}

// copyFile copies src to dst and syncs it: what moving those bytes costs
// on this disk.
func copyFile(src, dst string) (int64, time.Duration, error) {
	t0 := time.Now()
	in, err := os.Open(src)
	if err != nil {
		return 0, 0, err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return 0, 0, err
	}
	defer os.Remove(dst)
	defer out.Close()
	n, err := io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	return n, time.Since(t0), err
}
