package stamp

import (
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"go.etcd.io/bbolt"

	"github.com/batonhq/baton/internal/jsonhttp"
)

// PartitionOf maps a key to one of partitions key ranges: the 32-bit FNV-1a
// hash space is cut into equal ranges, p = hash(key) * partitions >> 32.
func PartitionOf(key string, partitions int) int {
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return int(uint64(h) * uint64(partitions) >> 32)
}

func validateKey(k string) error {
	if len(k) == 0 || len(k) > MaxKeyBytes {
		return errBad("key length %d out of range; keys are 1..%d bytes", len(k), MaxKeyBytes)
	}
	if !utf8.ValidString(k) {
		return errBad("key %q is not valid UTF-8", k)
	}
	for _, c := range k {
		if unicode.IsControl(c) {
			return errBad("key %q contains control character %U; keys must be printable", k, c)
		}
	}
	return nil
}

func validateValue(key, v string) error {
	if len(v) > MaxValueBytes {
		return newErr(http.StatusRequestEntityTooLarge, CodeTooLarge, "value of key %q is %d bytes; the limit is %d",
			key, len(v), MaxValueBytes)
	}
	// Values travel as JSON strings (reads, shipments), which cannot carry
	// invalid UTF-8 unchanged.
	if !utf8.ValidString(v) {
		return errBad("value of key %q is not valid UTF-8; encode binary values (e.g. base64) first", key)
	}
	return nil
}

func parseEpochHeader(r *http.Request) (uint64, error) {
	h := r.Header.Get(HeaderEpoch)
	if h == "" {
		return 0, nil
	}
	e, err := strconv.ParseUint(h, 10, 64)
	if err != nil {
		return 0, errBad("header %s %q is not an unsigned integer", HeaderEpoch, h)
	}
	return e, nil
}

// notPrimary redirects a write to the peer, which holds the primary.
func notPrimary(a *account, p *partition, r *http.Request, format string, args ...any) *apiError {
	e := newErr(http.StatusMisdirectedRequest, CodeNotPrimary, format, args...)
	e.body.Epoch = p.epoch
	if a.spec.Peer != "" {
		e.body.Primary = a.spec.Peer
		e.location = a.spec.Peer + r.URL.RequestURI()
		e.body.Message += "; write to " + a.spec.Peer
	}
	return e
}

// admitLocked decides whether partition p takes a write from a client that
// believes epoch is current (0 = no opinion). Epochs are checked before the
// fence so a client that already knows the new epoch is sent to the new
// primary instead of being told to retry here.
func (s *Server) admitLocked(a *account, p *partition, epoch uint64, r *http.Request) error {
	switch {
	case p.role != RolePrimary:
		return notPrimary(a, p, r, "partition %d of account %q is secondary on stamp %s", p.id, a.spec.Account, s.cfg.Name)
	case epoch != 0 && epoch < p.epoch:
		return errStale(p.epoch, "write carries epoch %d but partition %d of account %q is at epoch %d; "+
			"refresh the account's location and retry", epoch, p.id, a.spec.Account, p.epoch)
	case epoch > p.epoch:
		return notPrimary(a, p, r, "write carries epoch %d but partition %d of account %q on stamp %s is at epoch %d: "+
			"this stamp was superseded", epoch, p.id, a.spec.Account, s.cfg.Name, p.epoch)
	case p.fenced:
		e := newErr(http.StatusServiceUnavailable, CodeFenced, "partition %d of account %q is fenced for a failover; "+
			"retry after a second, against the account's current primary", p.id, a.spec.Account)
		e.body.Epoch = p.epoch
		e.retryAfter = true
		return e
	}
	return nil
}

type writeOp struct {
	op    Op
	key   string
	value string
	part  int
}

// write admits, sequences and durably commits ops as one unit: either every
// partition they touch admits them, or nothing is written.
func (s *Server) write(r *http.Request, a *account, ops []writeOp, epoch uint64) ([]WriteResult, error) {
	parts := make([]int, 0, 4)
	for _, op := range ops {
		parts = append(parts, op.part)
	}
	slices.Sort(parts)
	parts = slices.Compact(parts)
	results, it, err := s.sequence(r, a, ops, parts, epoch)
	if err != nil {
		return nil, err
	}
	if err := s.waitItem(it); err != nil {
		return nil, err
	}
	return results, nil
}

// sequence admits ops under the locks of parts, the partitions they touch,
// hands out their LSNs and queues their commit. Queuing under the locks
// makes queue order LSN order within a partition.
func (s *Server) sequence(r *http.Request, a *account, ops []writeOp, parts []int,
	epoch uint64) ([]WriteResult, *commitItem, error) {
	a.lockParts(parts)
	defer a.unlockParts(parts)
	for _, pi := range parts {
		if err := s.admitLocked(a, a.parts[pi], epoch, r); err != nil {
			return nil, nil, err
		}
	}
	entries := make([]Entry, len(ops))
	results := make([]WriteResult, len(ops))
	for i, op := range ops {
		p := a.parts[op.part]
		p.next++
		entries[i] = Entry{LSN: p.next, Epoch: p.epoch, Op: op.op, Key: op.key, Value: op.value}
		results[i] = WriteResult{
			Account: a.spec.Account, Key: op.key, Partition: op.part,
			LSN: p.next, Epoch: p.epoch, Stamp: s.cfg.Name,
		}
	}
	it := s.writeItem(a, ops, entries, parts)
	if err := s.enqueue(it); err != nil {
		// Nothing was queued: hand the LSNs back so no hole appears.
		for i := len(ops) - 1; i >= 0; i-- {
			a.parts[ops[i].part].next--
		}
		return nil, nil, err
	}
	return results, it, nil
}

// writeItem is the commit of ops as entries: their log records, their
// effect on the data and each touched partition's LastWritten; once durable,
// LastWritten advances and the shipper is woken. The caller holds the locks
// of parts.
func (s *Server) writeItem(a *account, ops []writeOp, entries []Entry, parts []int) *commitItem {
	tops := make([]uint64, len(parts))
	for i, pi := range parts {
		tops[i] = a.parts[pi].next
	}
	name := a.spec.Account
	return newItem(len(ops), func(tx *bbolt.Tx) error {
		b, err := openAcctBuckets(tx, name)
		if err != nil {
			return err
		}
		for i := range entries {
			e := &entries[i]
			if err := b.log.Put(logKey(ops[i].part, e.LSN), encodeEntry(e)); err != nil {
				return err
			}
			if err := applyEntry(b.data, ops[i].part, e); err != nil {
				return err
			}
		}
		for i, pi := range parts {
			if err := putU64(b.state, pi, kindWritten, tops[i]); err != nil {
				return err
			}
		}
		return nil
	}, func() {
		for i, pi := range parts {
			a.parts[pi].durable.Store(tops[i])
		}
		// The shipper skips partitions that turn out not to ship.
		a.markShipDirty(parts)
	})
}

func (s *Server) keyRequest(w http.ResponseWriter, r *http.Request) (*account, string, int, error) {
	a, err := s.account(r.PathValue("account"))
	if err != nil {
		return nil, "", 0, err
	}
	key := r.PathValue("key")
	if err := validateKey(key); err != nil {
		return nil, "", 0, err
	}
	p := PartitionOf(key, len(a.parts))
	if err := s.injectFault(w, r, scopeData, "", a.spec.Account, func(q int) bool { return q == p }); err != nil {
		return nil, "", 0, err
	}
	return a, key, p, nil
}

func (s *Server) putKey(w http.ResponseWriter, r *http.Request) error {
	return s.writeKey(w, r, OpPut, func(key string) (string, error) { return readValue(w, r, key) })
}

func (s *Server) deleteKey(w http.ResponseWriter, r *http.Request) error {
	return s.writeKey(w, r, OpDelete, nil)
}

// writeKey serves a put or delete of the key in the path; value reads a
// put's value from the request (nil for a delete).
func (s *Server) writeKey(w http.ResponseWriter, r *http.Request, op Op, value func(key string) (string, error)) error {
	a, key, p, err := s.keyRequest(w, r)
	if err != nil {
		return err
	}
	epoch, err := parseEpochHeader(r)
	if err != nil {
		return err
	}
	wop := writeOp{op: op, key: key, part: p}
	if value != nil {
		if wop.value, err = value(key); err != nil {
			return err
		}
	}
	res, err := s.write(r, a, []writeOp{wop}, epoch)
	if err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusOK, res[0])
	return nil
}

// readValue reads the value a put of key writes: the raw body, or with a
// JSON content type the body's "value".
func readValue(w http.ResponseWriter, r *http.Request, key string) (string, error) {
	body, err := readBody(w, r, limitPut)
	if err != nil {
		return "", err
	}
	value := string(body)
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/json" {
		var v struct {
			Value *string `json:"value"`
		}
		if err := decodeJSON(body, &v, `{"value": "..."}`); err != nil {
			return "", err
		}
		if v.Value == nil {
			return "", errBad(`JSON body has no "value"; send {"value": "..."} or a non-JSON content type with the raw value`)
		}
		value = *v.Value
	}
	return value, validateValue(key, value)
}

func (s *Server) getKey(w http.ResponseWriter, r *http.Request) error {
	a, key, _, err := s.keyRequest(w, r)
	if err != nil {
		return err
	}
	var v Value
	found := false
	if err := s.db.View(func(tx *bbolt.Tx) error {
		raw := tx.Bucket(accountBucketName(a.spec.Account)).Bucket(bucketData).Get([]byte(key))
		if raw == nil {
			return nil
		}
		found = true
		v, err = decodeValue(raw)
		return err
	}); err != nil {
		return err
	}
	if !found {
		return errNotFound("key %q not found in account %q on stamp %s", key, a.spec.Account, s.cfg.Name)
	}
	jsonhttp.WriteJSON(w, http.StatusOK, v)
	return nil
}

func (s *Server) batch(w http.ResponseWriter, r *http.Request) error {
	a, err := s.account(r.PathValue("account"))
	if err != nil {
		return err
	}
	epoch, err := parseEpochHeader(r)
	if err != nil {
		return err
	}
	var req BatchRequest
	if err := decodeBody(w, r, limitBatch, &req, "BatchRequest"); err != nil {
		return err
	}
	if len(req.Ops) == 0 {
		return errBad("batch has no ops; send {\"ops\": [{\"op\": \"put\", \"key\": \"k\", \"value\": \"v\"}]}")
	}
	ops := make([]writeOp, len(req.Ops))
	touched := make(map[int]bool)
	for i, op := range req.Ops {
		if op.Op != OpPut && op.Op != OpDelete {
			return errBad("op %d: op %q is invalid; use %q or %q", i, op.Op, OpPut, OpDelete)
		}
		if err := validateKey(op.Key); err != nil {
			return err
		}
		if op.Op == OpDelete && op.Value != "" {
			return errBad("op %d: delete of key %q carries a value; drop it", i, op.Key)
		}
		if err := validateValue(op.Key, op.Value); err != nil {
			return err
		}
		p := PartitionOf(op.Key, len(a.parts))
		touched[p] = true
		ops[i] = writeOp{op: op.Op, key: op.Key, value: op.Value, part: p}
	}
	if err := s.injectFault(w, r, scopeData, "", a.spec.Account, func(q int) bool { return touched[q] }); err != nil {
		return err
	}
	res, err := s.write(r, a, ops, epoch)
	if err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusOK, BatchResult{Results: res})
	return nil
}

func (s *Server) read(w http.ResponseWriter, r *http.Request) error {
	a, err := s.account(r.PathValue("account"))
	if err != nil {
		return err
	}
	var req ReadRequest
	if err := decodeBody(w, r, limitRead, &req, "ReadRequest"); err != nil {
		return err
	}
	if len(req.Keys) > MaxReadKeys {
		return errBad("read asks for %d keys; the limit is %d per request", len(req.Keys), MaxReadKeys)
	}
	touched := make(map[int]bool)
	for _, k := range req.Keys {
		if err := validateKey(k); err != nil {
			return err
		}
		touched[PartitionOf(k, len(a.parts))] = true
	}
	if err := s.injectFault(w, r, scopeData, "", a.spec.Account, func(q int) bool { return touched[q] }); err != nil {
		return err
	}
	res := ReadResult{Values: make(map[string]Value, len(req.Keys)), Missing: []string{}}
	if err := s.db.View(func(tx *bbolt.Tx) error {
		data := tx.Bucket(accountBucketName(a.spec.Account)).Bucket(bucketData)
		for _, k := range req.Keys {
			raw := data.Get([]byte(k))
			if raw == nil {
				res.Missing = append(res.Missing, k)
				continue
			}
			v, err := decodeValue(raw)
			if err != nil {
				return err
			}
			res.Values[k] = v
		}
		return nil
	}); err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusOK, res)
	return nil
}

// parsePartitionList parses "1,2,3" into ascending unique partitions.
func parsePartitionList(a *account, s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, errBad("partitions %q: %q is not an integer; use e.g. ?partitions=0,3,7", s, f)
		}
		out = append(out, n)
	}
	return checkPartitions(a, out)
}

// checkPartitions sorts and dedups ps and refuses any partition the account
// does not have.
func checkPartitions(a *account, ps []int) ([]int, error) {
	ps = slices.Clone(ps)
	slices.Sort(ps)
	ps = slices.Compact(ps)
	for _, p := range ps {
		if p < 0 || p >= len(a.parts) {
			return nil, errNotFound("partition %d does not exist in account %q; it has partitions 0..%d",
				p, a.spec.Account, len(a.parts)-1)
		}
	}
	return ps, nil
}

func allPartitions(a *account) []int {
	ps := make([]int, len(a.parts))
	for i := range ps {
		ps[i] = i
	}
	return ps
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) error {
	a, err := s.account(r.PathValue("account"))
	if err != nil {
		return err
	}
	var ps []int
	if q := r.URL.Query().Get("partitions"); q != "" {
		if ps, err = parsePartitionList(a, q); err != nil {
			return err
		}
	} else {
		ps = allPartitions(a)
	}
	if err := s.injectFault(w, r, scopeControl, opStatus, a.spec.Account, inSorted(ps)); err != nil {
		return err
	}
	st := AccountStatus{
		Account:    a.spec.Account,
		Stamp:      s.cfg.Name,
		Peer:       a.spec.Peer,
		Partitions: make([]PartitionStatus, len(ps)),
	}
	seen := a.sourceSeen()
	for i, p := range ps {
		part := a.parts[p]
		part.mu.Lock()
		st.Partitions[i] = part.statusLocked()
		if st.Partitions[i].Role == RoleSecondary {
			st.Partitions[i].SourceSeenAt = seen
			st.Partitions[i].SourceWriteRate = part.sourceRateAt(seen)
		}
		part.mu.Unlock()
	}
	jsonhttp.WriteJSON(w, http.StatusOK, st)
	return nil
}

func inSorted(ps []int) func(int) bool {
	return func(q int) bool {
		_, ok := slices.BinarySearch(ps, q)
		return ok
	}
}
