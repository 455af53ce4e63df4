package stamp

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/bbolt"
)

// seedBatch is how many keys one commit of a seed writes.
const seedBatch = 20000

// snapshot serves GET /v1/accounts/{a}/snapshot?partitions=...: the data of
// primary partitions as of one consistent read, as JSON lines: a
// SnapshotHeader with each partition's LSN, then a SnapshotValue a key.
func (s *Server) snapshot(w http.ResponseWriter, r *http.Request) error {
	a, err := s.account(r.PathValue("account"))
	if err != nil {
		return err
	}
	ps := allPartitions(a)
	if q := r.URL.Query().Get("partitions"); q != "" {
		if ps, err = parsePartitionList(a, q); err != nil {
			return err
		}
	}
	for _, pi := range ps {
		if st := a.parts[pi].status(); st.Role != RolePrimary {
			return errConflict("a snapshot is taken of a primary; partition %d of account %q is %s on stamp %s",
				pi, a.spec.Account, st.Role, s.cfg.Name)
		}
	}
	if err := s.injectFault(w, r, scopeControl, CtlSeed, a.spec.Account, inSorted(ps)); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	bw := bufio.NewWriterSize(w, 1<<16)
	err = s.db.View(func(tx *bbolt.Tx) error { return writeSnapshot(tx, a.spec.Account, ps, json.NewEncoder(bw)) })
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	return err
}

// writeSnapshot writes, inside one read transaction, the header and every
// key of partitions ps.
func writeSnapshot(tx *bbolt.Tx, account string, ps []int, enc *json.Encoder) error {
	b := tx.Bucket(accountBucketName(account))
	if b == nil {
		return fmt.Errorf("account %q has no bucket", account)
	}
	state := b.Bucket(bucketState)
	h := SnapshotHeader{LSNs: make(map[int]uint64, len(ps))}
	for _, pi := range ps {
		var lsn uint64
		if v := state.Get(stateKey(pi, kindWritten)); len(v) == 8 {
			lsn = binary.BigEndian.Uint64(v)
		}
		h.LSNs[pi] = lsn
	}
	if err := enc.Encode(h); err != nil {
		return err
	}
	want := inSorted(ps)
	return b.Bucket(bucketData).ForEach(func(k, v []byte) error {
		val, err := decodeValue(v)
		if err != nil {
			return err
		}
		if !want(val.Partition) {
			return nil
		}
		return enc.Encode(SnapshotValue{Partition: val.Partition, Key: string(k), Value: val.Value, LSN: val.LSN})
	})
}

// seed replaces the data of secondary partitions ps with a snapshot of the
// peer's (their primary's) and stands them at the snapshot's LSN, from
// which the primary then ships (protect). A repeat seeds again.
func (s *Server) seed(ctx context.Context, a *account, ps []int) ([]ControlResult, error) {
	for _, pi := range ps {
		if st := a.parts[pi].status(); st.Role != RoleSecondary {
			return nil, errConflict("seed runs on a secondary; partition %d of account %q is %s on stamp %s",
				pi, a.spec.Account, st.Role, s.cfg.Name)
		}
	}
	a.replayMu.Lock()
	defer a.replayMu.Unlock()
	a.recvMu.Lock()
	defer a.recvMu.Unlock()
	if err := s.clearPartitions(a, ps); err != nil {
		return nil, err
	}
	lsns, bytes, err := s.copySnapshot(ctx, a, ps)
	if err != nil {
		return nil, err
	}
	if err := s.standAt(a, lsns); err != nil {
		return nil, err
	}
	out := results(a, ps, func(p *partition) (uint64, bool) { return p.lastReceived, true })
	for i := range out {
		out[i].SeededBytes = bytes[out[i].Partition]
	}
	return out, nil
}

// clearPartitions deletes the data and log of ps and zeroes their
// replication counters, in one commit.
func (s *Server) clearPartitions(a *account, ps []int) error {
	name, want := a.spec.Account, inSorted(ps)
	err := s.commit(newItem(len(ps), func(tx *bbolt.Tx) error {
		b, err := openAcctBuckets(tx, name)
		if err != nil {
			return err
		}
		if err := deleteWhere(b.data, func(_, v []byte) bool {
			val, err := decodeValue(v)
			return err == nil && want(val.Partition)
		}); err != nil {
			return err
		}
		if err := deleteWhere(b.log, func(k, _ []byte) bool { return want(int(binary.BigEndian.Uint32(k))) }); err != nil {
			return err
		}
		for _, pi := range ps {
			for _, kind := range []byte{kindWritten, kindReceived, kindReplayed} {
				if err := putU64(b.state, pi, kind, 0); err != nil {
					return err
				}
			}
		}
		return nil
	}, nil))
	if err != nil {
		return fmt.Errorf("seed %q: clear partitions: %w", name, err)
	}
	for _, pi := range ps {
		p := a.parts[pi]
		p.mu.Lock()
		p.next, p.lastReceived, p.lastReplayed, p.sourceWritten, p.pruned = 0, 0, 0, 0, 0
		p.durable.Store(0)
		p.mu.Unlock()
	}
	return nil
}

// deleteWhere deletes the keys of b that match.
func deleteWhere(b *bbolt.Bucket, match func(k, v []byte) bool) error {
	var doomed [][]byte
	if err := b.ForEach(func(k, v []byte) error {
		if match(k, v) {
			doomed = append(doomed, append([]byte(nil), k...))
		}
		return nil
	}); err != nil {
		return err
	}
	for _, k := range doomed {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// copySnapshot reads the peer's snapshot of ps and writes its keys, in
// commits of seedBatch. It returns each partition's snapshot LSN and the
// bytes of keys and values copied.
func (s *Server) copySnapshot(ctx context.Context, a *account, ps []int) (map[int]uint64, map[int]int64, error) {
	body, err := s.openSnapshot(ctx, a, ps)
	if err != nil {
		return nil, nil, err
	}
	defer body.Close()
	dec := json.NewDecoder(bufio.NewReaderSize(body, 1<<16))
	var h SnapshotHeader
	if err := dec.Decode(&h); err != nil {
		return nil, nil, errUnavailable("seed %q: read the snapshot from peer %s: %v; retry the seed", a.spec.Account, a.spec.Peer, err)
	}
	want := inSorted(ps)
	bytes := map[int]int64{}
	batch := make([]SnapshotValue, 0, seedBatch)
	for {
		var v SnapshotValue
		err := dec.Decode(&v)
		if err == nil && !want(v.Partition) {
			err = fmt.Errorf("the snapshot holds partition %d, which the seed did not ask for", v.Partition)
		}
		if err == nil {
			bytes[v.Partition] += int64(len(v.Key) + len(v.Value))
			batch = append(batch, v)
		}
		if (errors.Is(err, io.EOF) || len(batch) == seedBatch) && len(batch) > 0 {
			if cerr := s.putValues(a, batch); cerr != nil {
				return nil, nil, cerr
			}
			batch = batch[:0]
		}
		switch {
		case errors.Is(err, io.EOF):
			return h.LSNs, bytes, nil
		case err != nil:
			return nil, nil, errUnavailable("seed %q: read the snapshot from peer %s: %v; retry the seed", a.spec.Account, a.spec.Peer, err)
		}
	}
}

// openSnapshot asks the peer for the snapshot of ps.
func (s *Server) openSnapshot(ctx context.Context, a *account, ps []int) (io.ReadCloser, error) {
	list := make([]string, len(ps))
	for i, p := range ps {
		list[i] = strconv.Itoa(p)
	}
	u := trimSlash(a.spec.Peer) + "/v1/accounts/" + url.PathEscape(a.spec.Account) + "/snapshot?partitions=" + strings.Join(list, ",")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return nil, errUnavailable("seed %q: peer %s does not answer (%v); retry the seed once it does", a.spec.Account, a.spec.Peer, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, newErr(resp.StatusCode, CodeConflict, "seed %q: peer %s refused the snapshot: %s", a.spec.Account, a.spec.Peer,
			strings.TrimSpace(string(msg)))
	}
	return resp.Body, nil
}

// putValues writes snapshot values to the data, in one commit.
func (s *Server) putValues(a *account, vs []SnapshotValue) error {
	name := a.spec.Account
	err := s.commit(newItem(len(vs), func(tx *bbolt.Tx) error {
		b, err := openAcctBuckets(tx, name)
		if err != nil {
			return err
		}
		for _, v := range vs {
			if err := b.data.Put([]byte(v.Key), encodeValue(v.LSN, v.Partition, v.Value)); err != nil {
				return err
			}
		}
		return nil
	}, nil))
	if err != nil {
		return fmt.Errorf("seed %q: write %d keys: %w", name, len(vs), err)
	}
	return nil
}

// standAt sets the seeded partitions' counters to their snapshot LSN: what
// they hold, received and replayed.
func (s *Server) standAt(a *account, lsns map[int]uint64) error {
	name := a.spec.Account
	err := s.commit(newItem(len(lsns), func(tx *bbolt.Tx) error {
		b, err := openAcctBuckets(tx, name)
		if err != nil {
			return err
		}
		for pi, lsn := range lsns {
			for _, kind := range []byte{kindWritten, kindReceived, kindReplayed} {
				if err := putU64(b.state, pi, kind, lsn); err != nil {
					return err
				}
			}
		}
		return nil
	}, nil))
	if err != nil {
		return fmt.Errorf("seed %q: record the snapshot's LSNs: %w", name, err)
	}
	now := time.Now().UTC()
	for pi, lsn := range lsns {
		p := a.parts[pi]
		p.mu.Lock()
		p.next, p.lastReceived, p.lastReplayed, p.sourceWritten = lsn, lsn, lsn, lsn
		p.pruned = lsn // the log holds nothing below the snapshot
		p.durable.Store(lsn)
		p.replayTarget, p.replayStartedAt, p.replayDoneAt = 0, time.Time{}, now
		p.mu.Unlock()
	}
	return nil
}
