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

// replayQuiet is how long a standby's replay must stand still, short of
// what it received and with no primary streaming to it, to count as having
// replayed everything it can: the last record received was cut short by
// the primary's end and will never be whole.
const replayQuiet = time.Second

// replayReceived waits until the standby at addr replayed what it had
// received at the first look, and answers where its replay stands.
func (d *Driver) replayReceived(ctx context.Context, db *pgxpool.Pool, addr string) (uint64, error) {
	var last, target uint64
	still := time.Now()
	for look := 0; ; look++ {
		var replayed, received int64
		var streaming bool
		err := db.QueryRow(ctx, `SELECT coalesce(pg_last_wal_replay_lsn() - '0/0', 0)::bigint,
			coalesce(pg_last_wal_receive_lsn() - '0/0', 0)::bigint,
			EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming')`).Scan(&replayed, &received, &streaming)
		if err != nil {
			return 0, classify("flush-replay "+addr+": what it received", err)
		}
		at := uint64(replayed)
		if look == 0 {
			target = uint64(received)
		}
		if at != last || streaming {
			last, still = at, time.Now()
		}
		if at >= target || time.Since(still) >= replayQuiet {
			return at, nil
		}
		if !clock.Sleep(ctx, d.opts.Poll) {
			return 0, fmt.Errorf("flush-replay %s: replayed %s of the %s it received: %w", addr, LSN(at), LSN(target), ctx.Err())
		}
	}
}

// Losses reads, on each standby, where its replay stopped, what it
// received, and when it last heard from its primary.
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
		if err := d.mustBe(ctx, db, addr, false, "data-loss ledger"); err != nil {
			out[i].Err = err
			return
		}
		var replayed, received int64
		var heard *time.Time
		err = db.QueryRow(ctx, `SELECT coalesce(pg_last_wal_replay_lsn() - '0/0', 0)::bigint,
			coalesce(pg_last_wal_receive_lsn() - '0/0', 0)::bigint,
			(SELECT last_msg_receipt_time FROM pg_stat_wal_receiver)`).Scan(&replayed, &received, &heard)
		if err != nil {
			out[i].Err = classify("data-loss ledger on "+addr, err)
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
