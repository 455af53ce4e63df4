package pgdriver

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

// waldump is pg_waldump's output (PostgreSQL 15) over a diverged WAL: a
// transaction inserting two rows into kv (and its index) that committed,
// one that aborted, one into another table that committed, one whose two
// inserts were made in savepoints (subtransactions), and an insert whose
// transaction never committed before the end.
const waldump = `rmgr: Heap        len (rec/tot):     63/    63, tx:        735, lsn: 0/030215F8, prev 0/030215B8, desc: INSERT off 5 flags 0x08, blkref #0: rel 1663/5/16389 blk 0
rmgr: Btree       len (rec/tot):     64/    64, tx:        735, lsn: 0/03021638, prev 0/030215F8, desc: INSERT_LEAF off 5, blkref #0: rel 1663/5/16391 blk 1
rmgr: Heap        len (rec/tot):     63/    63, tx:        735, lsn: 0/03021678, prev 0/03021638, desc: INSERT off 6 flags 0x08, blkref #0: rel 1663/5/16389 blk 0
rmgr: Transaction len (rec/tot):     34/    34, tx:        735, lsn: 0/030216B8, prev 0/03021678, desc: COMMIT 2026-12-02 08:47:01.123456 UTC
rmgr: Heap        len (rec/tot):     63/    63, tx:        736, lsn: 0/030216E0, prev 0/030216B8, desc: INSERT+INIT off 1 flags 0x00, blkref #0: rel 1663/5/16389 blk 1
rmgr: Transaction len (rec/tot):     34/    34, tx:        736, lsn: 0/03021720, prev 0/030216E0, desc: ABORT 2026-12-02 08:47:01.223456 UTC
rmgr: Heap        len (rec/tot):     63/    63, tx:        737, lsn: 0/03021748, prev 0/03021720, desc: INSERT off 2 flags 0x00, blkref #0: rel 1663/5/16400 blk 0
rmgr: Transaction len (rec/tot):     82/    82, tx:        737, lsn: 0/03021788, prev 0/03021748, desc: COMMIT 2026-12-02 08:47:01.323456 UTC; inval msgs: catcache 55
rmgr: Standby     len (rec/tot):     50/    50, tx:          0, lsn: 0/030217E0, prev 0/03021788, desc: RUNNING_XACTS nextXid 738 latestCompletedXid 737 oldestRunningXid 738
rmgr: Heap        len (rec/tot):     63/    63, tx:        740, lsn: 0/030217E0, prev 0/03021788, desc: INSERT off 8 flags 0x08, blkref #0: rel 1663/5/16389 blk 0
rmgr: Heap        len (rec/tot):     63/    63, tx:        741, lsn: 0/030217E0, prev 0/03021788, desc: INSERT off 9 flags 0x08, blkref #0: rel 1663/5/16389 blk 0
rmgr: Transaction len (rec/tot):     42/    42, tx:        739, lsn: 0/030217E0, prev 0/03021788, desc: COMMIT 2026-12-02 08:47:01.423456 UTC; subxacts: 740 741
rmgr: Heap        len (rec/tot):     63/    63, tx:        738, lsn: 0/03021818, prev 0/030217E0, desc: INSERT off 7 flags 0x08, blkref #0: rel 1663/5/16389 blk 0
`

func TestDivergedReadsCommittedInserts(t *testing.T) {
	from, _ := ParseLSN("0/030215F8")
	d := Diverged{Timeline: 1, From: from, Tables: map[string]string{"1663/5/16389": "kv", "1663/5/16400": "other"}}
	why := "pg_waldump: error: error in WAL record at 0/3021818: invalid record length at 0/3021858: wanted 24, got 0"
	require.NoError(t, d.read(bytes.NewBufferString(waldump), why))
	require.Len(t, d.Committed, 3)
	require.Equal(t, 1, d.Aborted)
	require.Equal(t, 4, d.InsertedInto("kv"), "the aborted insert and the one never committed are not counted")
	require.Equal(t, 1, d.InsertedInto("other"))
	require.Equal(t, "2026-12-02 08:47:01.323456 UTC", d.Committed[1].Committed)
	require.Equal(t, "0/3021858", LSN(d.To))
	require.Equal(t, uint64(0x260), d.Bytes())
	require.Equal(t, "diverged WAL 0/30215F8..0/3021858 on timeline 1 (608 bytes): 3 transactions committed, 1 aborted; "+
		"4 rows inserted into kv, 1 rows inserted into other", d.String())

	// Without the reason it stopped, the end is the last record's.
	d = Diverged{From: from}
	require.NoError(t, d.read(bytes.NewBufferString(waldump), ""))
	require.Equal(t, "0/3021857", LSN(d.To))
}

func TestLSNRoundTrips(t *testing.T) {
	for _, s := range []string{"0/0", "0/30215F8", "1A/FF000028"} {
		n, err := ParseLSN(s)
		require.NoError(t, err)
		require.Equal(t, s, LSN(n))
	}
	_, err := ParseLSN("3021858")
	require.ErrorContains(t, err, "X/Y")
}
