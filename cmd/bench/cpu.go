package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/batonhq/baton/testsuite"
)

// clockTicks is the kernel's USER_HZ: /proc/PID/stat counts CPU time in
// these.
const clockTicks = 100

// cpuTimes is the CPU time each of a cluster's processes has used.
type cpuTimes map[string]time.Duration

// cpuOf reads the CPU time (user + system) of the cluster's processes from
// /proc (Linux).
func cpuOf(c *testsuite.Cluster) cpuTimes {
	procs := []*testsuite.Process{c.Temporal.Process, c.Location, c.Stamps[testsuite.StampA], c.Stamps[testsuite.StampB]}
	procs = append(procs, c.Workers...)
	out := cpuTimes{}
	for _, p := range procs {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.PID()))
		if err != nil {
			continue
		}
		// Fields after the command name (which may hold spaces): utime is
		// the 14th field of the line, stime the 15th.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		name := p.Name
		if strings.HasPrefix(name, "stamp") {
			name = "stamps"
		}
		out[name] += time.Duration(u+s) * time.Second / clockTicks
	}
	return out
}

// perAccount says how much CPU each kind of process spent per account
// between two readings.
func (after cpuTimes) perAccount(before cpuTimes, accounts int, wall time.Duration) string {
	var parts []string
	var total time.Duration
	for _, name := range []string{"temporal", "worker", "stamps", "location"} {
		d := after[name] - before[name]
		total += d
		parts = append(parts, fmt.Sprintf("%s %.1f ms", name, float64(d.Microseconds())/1000/float64(max(1, accounts))))
	}
	return fmt.Sprintf("CPU per account: %s (the processes used %.2f of the machine's cores on average)",
		strings.Join(parts, ", "), total.Seconds()/wall.Seconds())
}

// emptyWorkflowCeiling runs n workflows that do nothing, k at a time,
// through a worker in this process, on the cluster's Temporal server: the
// rate no workflow per account can beat there.
func emptyWorkflowCeiling(ctx context.Context, c *testsuite.Cluster, n, k int) (float64, time.Duration, error) {
	const queue = "bench-empty"
	w := worker.New(c.Client, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(func(workflow.Context) error { return nil }, workflow.RegisterOptions{Name: "Empty"})
	if err := w.Start(); err != nil {
		return 0, 0, err
	}
	defer w.Stop()
	before := cpuOf(c)
	t0 := time.Now()
	sem := make(chan struct{}, k)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			run, err := c.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
				ID: fmt.Sprintf("bench-empty-%d", i), TaskQueue: queue}, "Empty")
			if err == nil {
				err = run.Get(ctx, nil)
			}
			if err != nil {
				mu.Lock()
				first = cmpErr(first, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	wall := time.Since(t0)
	if first != nil {
		return 0, 0, fmt.Errorf("empty workflows: %w", first)
	}
	spent := cpuOf(c)["temporal"] - before["temporal"]
	return float64(n) / wall.Seconds(), spent / time.Duration(n), nil
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}
