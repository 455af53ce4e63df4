package pgdriver

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/batonhq/baton/driver"
	"github.com/batonhq/baton/internal/clock"
)

// An unplanned failover gives up on primaries that do not answer: each
// standby replays everything it received (FlushReplay to 0), Losses says
// where it stopped, and the promote starts the new timeline there. What the
// old primary acknowledged past that point is in its own WAL only; Diverged
// reads it from there when it rejoins (diverged.go).

var _ driver.LossReader = (*Driver)(nil)

// replayReceived waits until the standby at addr replayed what it had
// received at the first look, or replayed all it can: its startup process
// waits for more WAL (its walreceiver gone with the primary) and its replay
// is not paused; a last record the primary's end cut short is never whole.
// It answers where its replay stands.
func (d *Driver) replayReceived(ctx context.Context, db *pgxpool.Pool, addr string) (uint64, error) {
	var target uint64
	for look := 0; ; look++ {
		var replayed, received int64
		var starved bool
		var paused string
		err := db.QueryRow(ctx, `SELECT coalesce(pg_last_wal_replay_lsn() - '0/0', 0)::bigint,
			coalesce(pg_last_wal_receive_lsn() - '0/0', 0)::bigint,
			NOT EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming') AND
			  EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'startup'
			          AND wait_event IN ('RecoveryWalStream', 'RecoveryRetrieveRetryInterval')),
			pg_get_wal_replay_pause_state()`).Scan(&replayed, &received, &starved, &paused)
		if err != nil {
			return 0, classify("flush-replay "+addr+": what it received", err)
		}
		at := uint64(replayed)
		if look == 0 {
			target = uint64(received)
		}
		if at >= target || (starved && paused == "not paused") {
			return at, nil
		}
		if !clock.Sleep(ctx, d.opts.Poll) {
			return 0, fmt.Errorf("flush-replay %s: replayed %s of the %s it received (replay %s): %w", addr, LSN(at),
				LSN(target), paused, ctx.Err())
		}
	}
}

// Losses reads, on each standby, where its replay stopped, what it
// received, and when it last heard from its primary: its WAL receiver's
// last message while it still has one, else the commit time (the
// primary's clock) of the last transaction it replayed.
func (d *Driver) Losses(ctx context.Context, replica driver.Side, ps []int) []driver.Loss {
	out := make([]driver.Loss, len(ps))
	driver.Each(ps, func(i, p int) {
		addr := replica.Endpoint(p)
		out[i] = driver.Loss{Partition: p, Unit: "WAL bytes"}
		db, err := d.pool(addr)
		if err != nil {
			out[i].Err = err
			return
		}
		if err := d.mustBe(ctx, db, addr, false, "losses on"); err != nil {
			out[i].Err = err
			return
		}
		var replayed, received int64
		var heard *time.Time
		err = db.QueryRow(ctx, `SELECT coalesce(pg_last_wal_replay_lsn() - '0/0', 0)::bigint,
			coalesce(pg_last_wal_receive_lsn() - '0/0', 0)::bigint,
			coalesce((SELECT last_msg_receipt_time FROM pg_stat_wal_receiver WHERE pid IS NOT NULL),
			         pg_last_xact_replay_timestamp())`).Scan(&replayed, &received, &heard)
		if err != nil {
			out[i].Err = classify("losses on "+addr, err)
			return
		}
		l := &out[i]
		l.Replayed, l.Received = uint64(replayed), max(uint64(received), uint64(replayed))
		if heard != nil {
			l.LastHeard = heard.UTC()
		}
		l.FromText = LSN(l.Replayed)
		l.Pending = fmt.Sprintf("what the old primary of shard %d acknowledged from WAL %s on is in its own WAL only: "+
			"its rejoin reports it (docs/STORES.md)", p, l.FromText)
	})
	return out
}

// LSN writes a WAL position as PostgreSQL does (X/Y, hexadecimal).
func LSN(n uint64) string { return fmt.Sprintf("%X/%X", n>>32, uint32(n)) }

// ParseLSN reads a WAL position written X/Y.
func ParseLSN(s string) (uint64, error) {
	var hi, lo uint32
	if _, err := fmt.Sscanf(s, "%X/%X", &hi, &lo); err != nil {
		return 0, fmt.Errorf("WAL position %q is not X/Y in hexadecimal", s)
	}
	return uint64(hi)<<32 | uint64(lo), nil
}
