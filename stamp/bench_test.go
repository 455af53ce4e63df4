package stamp

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/batonhq/baton/internal/auth"
	"github.com/batonhq/baton/internal/auth/authtest"
)

// The benchmarks run on a durable DataDir (real fsync) unless noted.
// Numbers for this repository's reference machine are in BENCHMARKS.md.

var benchValue = strings.Repeat("v", 100)

// BenchmarkWrite measures acknowledged writes/s through HTTP on one durable
// stamp: single PUTs from many concurrent clients, and batches of 100 ops
// ("batching on").
func BenchmarkWrite(b *testing.B) { benchWrites(b, false) }

// BenchmarkWriteTLS is BenchmarkWrite over mutual TLS with authentication
// (the default since issue 15).
func BenchmarkWriteTLS(b *testing.B) { benchWrites(b, true) }

func benchWrites(b *testing.B, secure bool) {
	for _, parts := range []int{1, 1000} {
		for _, batch := range []int{1, 100} {
			b.Run(fmt.Sprintf("partitions=%d/batch=%d", parts, batch), func(b *testing.B) {
				benchWrite(b, parts, batch, secure)
			})
		}
	}
}

// benchServer serves a durable-or-not stamp for a benchmark, over mutual
// TLS with authentication when secure, and returns it with a client that
// holds every role.
func benchServer(b *testing.B, cfg Config, secure bool) (*Server, *Client) {
	b.Helper()
	if !secure {
		l := startLocal(b, cfg)
		return l.Server, NewClient(l.URL(), nil)
	}
	f := authtest.New(b)
	f.AddNode(cfg.Name)
	f.AddClient("bench", auth.Roles...)
	cfg.Auth = f.Authenticator()
	srv, err := Open(cfg)
	must(b, err)
	b.Cleanup(func() { srv.Close() }) // runs after the listener's cleanup, registered next
	url := f.Serve(cfg.Name, srv.Handler())
	return srv, NewClient(url, HTTPClient(f.TLS("bench")))
}

func benchWrite(b *testing.B, parts, batch int, secure bool) {
	_, c := benchServer(b, Config{Name: "bench", DataDir: b.TempDir()}, secure)
	ctx := context.Background()
	// The peer does not exist: this measures the stamp alone; the shipper
	// backs off in the background.
	must(b, c.CreateAccount(ctx, AccountSpec{Account: "bench", Partitions: parts, Role: RolePrimary, Epoch: 1, Peer: "http://127.0.0.1:1"}))
	var seq atomic.Int64
	b.SetParallelism(32) // 64 concurrent clients on 2 cores
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		ops := make([]BatchOp, batch)
		for pb.Next() {
			n := seq.Add(1)
			if batch == 1 {
				if _, err := c.Put(ctx, "bench", fmt.Sprintf("k%d", n), benchValue, 0); err != nil {
					b.Error(err)
					return
				}
				continue
			}
			for i := range ops {
				ops[i] = BatchOp{Op: OpPut, Key: fmt.Sprintf("k%d-%d", n, i), Value: benchValue}
			}
			if _, err := c.Batch(ctx, "bench", ops, 0); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*batch)/time.Since(start).Seconds(), "writes/s")
}

// BenchmarkReplication measures log shipping: b.N committed entries spread
// over the partitions are shipped to a durable secondary and acknowledged.
// Shipping is held back while the log is loaded so only shipping is timed.
func BenchmarkReplication(b *testing.B) {
	for _, parts := range []int{1, 1000} {
		b.Run(fmt.Sprintf("partitions=%d", parts), func(b *testing.B) {
			p := newPair(b, parts, Config{DataDir: b.TempDir()}, Config{DataDir: b.TempDir()})
			s := p.a.Server
			a, err := s.account(p.acct)
			must(b, err)
			setShipping(a, false)
			loadWrites(b, p.ca, p.acct, b.N)
			b.ResetTimer()
			start := time.Now()
			setShipping(a, true)
			a.markShipDirty(allPartitions(a))
			eventually(b, 10*time.Minute, "all entries acknowledged", func() bool {
				for _, pt := range a.parts {
					pt.mu.Lock()
					behind := pt.lastAcked < pt.durable.Load()
					pt.mu.Unlock()
					if behind {
						return false
					}
				}
				return true
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
		})
	}
}

func setShipping(a *account, on bool) {
	for _, p := range a.parts {
		p.mu.Lock()
		p.shipping = on
		p.mu.Unlock()
	}
}

// loadWrites writes n ops in batches of 1000 from 8 clients.
func loadWrites(b *testing.B, c *Client, acct string, n int) {
	b.Helper()
	var next atomic.Int64
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			for {
				from := int(next.Add(1000)) - 1000
				if from >= n {
					errs <- nil
					return
				}
				ops := make([]BatchOp, 0, 1000)
				for i := from; i < min(from+1000, n); i++ {
					ops = append(ops, BatchOp{Op: OpPut, Key: fmt.Sprintf("k%d", i), Value: benchValue})
				}
				if _, err := c.Batch(context.Background(), acct, ops, 0); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for range 8 {
		must(b, <-errs)
	}
}

// BenchmarkFlushReplay measures a flush-replay of 100,000 received but
// unreplayed entries on a durable, unthrottled secondary: from the call
// until its long poll answers done. The entries are put straight into the
// secondary's log, as a shipment would, without waking the replayer.
func BenchmarkFlushReplay(b *testing.B) { benchFlushReplays(b, false) }

// BenchmarkFlushReplayTLS is BenchmarkFlushReplay called over mutual TLS
// with authentication.
func BenchmarkFlushReplayTLS(b *testing.B) { benchFlushReplays(b, true) }

func benchFlushReplays(b *testing.B, secure bool) {
	const pending = 100000
	for _, parts := range []int{1, 1000} {
		b.Run(fmt.Sprintf("ops=100000/partitions=%d", parts), func(b *testing.B) {
			var total time.Duration
			for range b.N {
				b.StopTimer()
				srv, c := benchServer(b, Config{Name: "replay", DataDir: b.TempDir()}, secure)
				ctx := context.Background()
				must(b, c.CreateAccount(ctx, AccountSpec{Account: "r", Partitions: parts, Role: RoleSecondary, Epoch: 1}))
				a, err := srv.account("r")
				must(b, err)
				preloadReceived(b, srv, a, pending)
				b.StartTimer()
				start := time.Now()
				res, err := c.FlushReplay(ctx, "r", ControlRequest{All: true, WaitMillis: 600000})
				must(b, err)
				total += time.Since(start)
				b.StopTimer()
				for _, r := range res.Results {
					if !r.Done {
						b.Fatalf("partition %d not replayed: %+v", r.Partition, r)
					}
				}
				must(b, srv.Close()) // the cleanup closes it again, harmlessly
			}
			b.ReportMetric(total.Seconds()/float64(b.N), "s/flush")
		})
	}
}

// preloadReceived appends n entries with random keys to the log of a's
// secondary partitions and records them as received.
func preloadReceived(b *testing.B, s *Server, a *account, n int) {
	b.Helper()
	perPart := make([][]Entry, len(a.parts))
	for i := range n {
		k := fmt.Sprintf("key-%016x-%d", rand.Uint64(), i)
		p := PartitionOf(k, len(a.parts))
		perPart[p] = append(perPart[p], Entry{LSN: uint64(len(perPart[p]) + 1), Epoch: 1, Op: OpPut, Key: k, Value: benchValue})
	}
	must(b, s.db.Update(func(tx *bbolt.Tx) error {
		ab, err := openAcctBuckets(tx, a.spec.Account)
		if err != nil {
			return err
		}
		for p, es := range perPart {
			for i := range es {
				if err := ab.log.Put(logKey(p, es[i].LSN), encodeEntry(&es[i])); err != nil {
					return err
				}
			}
			if err := putU64(ab.state, p, kindReceived, uint64(len(es))); err != nil {
				return err
			}
		}
		return nil
	}))
	for p, es := range perPart {
		pt := a.parts[p]
		pt.mu.Lock()
		pt.lastReceived = uint64(len(es))
		pt.mu.Unlock()
	}
}
