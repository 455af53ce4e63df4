package stamp

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/bbolt"
)

// On-disk layout (bbolt):
//
//	accounts/                  account name -> AccountSpec JSON
//	a/<account>/state/         partition(4) kind(1) -> counters and config
//	a/<account>/log/           partition(4) lsn(8)  -> encoded Entry
//	a/<account>/data/          key                  -> lsn(8) partition(4) value
//
// Per-partition state is split into one small key per writer (config by
// control calls, lastWritten by the committer, lastAcked by the shipper,
// lastReceived by the replicate handler, lastReplayed by the replayer), so no
// writer has to read-modify-write a record another goroutine also updates.
// Partitions still at their creation defaults have no state keys at all,
// which keeps creating a 10,000-partition account cheap.
var (
	bucketAccounts = []byte("accounts")
	bucketState    = []byte("state")
	bucketLog      = []byte("log")
	bucketData     = []byte("data")
)

const (
	kindConfig   = 'c' // role(1) fenced(1) shipping(1) epoch(8)
	kindWritten  = 'w' // lastWritten(8)
	kindAcked    = 'a' // lastAcked(8) lastAckedAt unix nanos(8)
	kindReceived = 'v' // lastReceived(8)
	kindReplayed = 'r' // lastReplayed(8)
)

func accountBucketName(account string) []byte { return []byte("a/" + account) }

// acctBuckets are one account's buckets inside a write transaction.
type acctBuckets struct {
	state, log, data *bbolt.Bucket
}

func openAcctBuckets(tx *bbolt.Tx, account string) (acctBuckets, error) {
	ab := tx.Bucket(accountBucketName(account))
	if ab == nil {
		return acctBuckets{}, fmt.Errorf("account %q has no bucket", account)
	}
	return acctBuckets{
		state: ab.Bucket(bucketState),
		log:   ab.Bucket(bucketLog),
		data:  ab.Bucket(bucketData),
	}, nil
}

func createAcctBuckets(tx *bbolt.Tx, account string) error {
	ab, err := tx.CreateBucket(accountBucketName(account))
	if err != nil {
		return fmt.Errorf("create bucket for account %q: %w", account, err)
	}
	for _, name := range [][]byte{bucketState, bucketLog, bucketData} {
		if _, err := ab.CreateBucket(name); err != nil {
			return fmt.Errorf("create %s bucket for account %q: %w", name, account, err)
		}
	}
	return nil
}

func stateKey(p int, kind byte) []byte {
	k := make([]byte, 5)
	binary.BigEndian.PutUint32(k, uint32(p))
	k[4] = kind
	return k
}

func logKey(p int, lsn uint64) []byte {
	k := make([]byte, 12)
	binary.BigEndian.PutUint32(k, uint32(p))
	binary.BigEndian.PutUint64(k[4:], lsn)
	return k
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func putU64(b *bbolt.Bucket, p int, kind byte, v uint64) error {
	return b.Put(stateKey(p, kind), u64(v))
}

func encodeConfig(role Role, fenced, shipping bool, epoch uint64) []byte {
	b := make([]byte, 11)
	if role == RolePrimary {
		b[0] = 1
	}
	if fenced {
		b[1] = 1
	}
	if shipping {
		b[2] = 1
	}
	binary.BigEndian.PutUint64(b[3:], epoch)
	return b
}

func encodeAcked(lsn uint64, at time.Time) []byte {
	b := binary.BigEndian.AppendUint64(nil, lsn)
	var ns int64
	if !at.IsZero() {
		ns = at.UnixNano()
	}
	return binary.BigEndian.AppendUint64(b, uint64(ns))
}

// Entry encoding: epoch(8) op(1) keylen(4) key value.
func encodeEntry(e *Entry) []byte {
	b := make([]byte, 13, 13+len(e.Key)+len(e.Value))
	binary.BigEndian.PutUint64(b, e.Epoch)
	if e.Op == OpDelete {
		b[8] = 1
	}
	binary.BigEndian.PutUint32(b[9:], uint32(len(e.Key)))
	b = append(b, e.Key...)
	return append(b, e.Value...)
}

var errCorrupt = errors.New("corrupt record")

func decodeEntry(lsn uint64, b []byte) (Entry, error) {
	if len(b) < 13 {
		return Entry{}, fmt.Errorf("log entry %d: %w", lsn, errCorrupt)
	}
	e := Entry{LSN: lsn, Epoch: binary.BigEndian.Uint64(b), Op: OpPut}
	if b[8] == 1 {
		e.Op = OpDelete
	}
	kl := int(binary.BigEndian.Uint32(b[9:]))
	if len(b) < 13+kl {
		return Entry{}, fmt.Errorf("log entry %d: %w", lsn, errCorrupt)
	}
	e.Key = string(b[13 : 13+kl])
	e.Value = string(b[13+kl:])
	return e, nil
}

func encodeValue(lsn uint64, p int, value string) []byte {
	b := make([]byte, 12, 12+len(value))
	binary.BigEndian.PutUint64(b, lsn)
	binary.BigEndian.PutUint32(b[8:], uint32(p))
	return append(b, value...)
}

func decodeValue(b []byte) (Value, error) {
	if len(b) < 12 {
		return Value{}, errCorrupt
	}
	return Value{
		LSN:       binary.BigEndian.Uint64(b),
		Partition: int(binary.BigEndian.Uint32(b[8:])),
		Value:     string(b[12:]),
	}, nil
}

// applyEntry writes one log entry's effect to the data bucket.
func applyEntry(data *bbolt.Bucket, p int, e *Entry) error {
	if e.Op == OpDelete {
		return data.Delete([]byte(e.Key))
	}
	return data.Put([]byte(e.Key), encodeValue(e.LSN, p, e.Value))
}

// readLog returns the entries of partition p with from <= LSN <= to.
func readLog(tx *bbolt.Tx, account string, p int, from, to uint64) ([]Entry, error) {
	ab := tx.Bucket(accountBucketName(account))
	if ab == nil {
		return nil, fmt.Errorf("account %q has no bucket", account)
	}
	c := ab.Bucket(bucketLog).Cursor()
	out := make([]Entry, 0, to-from+1)
	want := from
	for k, v := c.Seek(logKey(p, from)); k != nil && want <= to; k, v = c.Next() {
		if int(binary.BigEndian.Uint32(k)) != p {
			break
		}
		lsn := binary.BigEndian.Uint64(k[4:])
		if lsn != want {
			return nil, fmt.Errorf("partition %d log: found LSN %d, want %d: %w", p, lsn, want, errCorrupt)
		}
		e, err := decodeEntry(lsn, v)
		if err != nil {
			return nil, fmt.Errorf("partition %d: %w", p, err)
		}
		out = append(out, e)
		want++
	}
	if want <= to {
		return nil, fmt.Errorf("partition %d log ends before LSN %d (want up to %d): %w", p, want, to, errCorrupt)
	}
	return out, nil
}

// loadAccounts reads every account and its partitions' state.
func loadAccounts(db *bbolt.DB) ([]*account, error) {
	var out []*account
	err := db.View(func(tx *bbolt.Tx) error {
		ab := tx.Bucket(bucketAccounts)
		if ab == nil {
			return nil
		}
		return ab.ForEach(func(k, v []byte) error {
			var spec AccountSpec
			if err := json.Unmarshal(v, &spec); err != nil {
				return fmt.Errorf("account %q spec: %w", k, err)
			}
			a := newAccount(spec)
			b := tx.Bucket(accountBucketName(spec.Account))
			if b == nil {
				return fmt.Errorf("account %q has no bucket", spec.Account)
			}
			if err := a.loadState(b.Bucket(bucketState)); err != nil {
				return fmt.Errorf("account %q: %w", spec.Account, err)
			}
			out = append(out, a)
			return nil
		})
	})
	return out, err
}

func (a *account) loadState(b *bbolt.Bucket) error {
	return b.ForEach(func(k, v []byte) error {
		if len(k) != 5 {
			return fmt.Errorf("state key %x: %w", k, errCorrupt)
		}
		pi := int(binary.BigEndian.Uint32(k))
		if pi >= len(a.parts) {
			return fmt.Errorf("state for partition %d beyond %d partitions: %w", pi, len(a.parts), errCorrupt)
		}
		p := a.parts[pi]
		need := 8
		switch k[4] {
		case kindConfig:
			need = 11
		case kindAcked:
			need = 16
		}
		if len(v) < need {
			return fmt.Errorf("partition %d state %c: %w", pi, k[4], errCorrupt)
		}
		switch k[4] {
		case kindConfig:
			p.role = RoleSecondary
			if v[0] == 1 {
				p.role = RolePrimary
			}
			p.fenced = v[1] == 1
			p.shipping = v[2] == 1
			p.epoch = binary.BigEndian.Uint64(v[3:])
		case kindWritten:
			p.next = binary.BigEndian.Uint64(v)
			p.durable.Store(p.next)
		case kindAcked:
			p.lastAcked = binary.BigEndian.Uint64(v)
			p.lastSent = p.lastAcked
			if ns := int64(binary.BigEndian.Uint64(v[8:])); ns != 0 {
				p.lastAckedAt = time.Unix(0, ns).UTC()
			}
		case kindReceived:
			p.lastReceived = binary.BigEndian.Uint64(v)
		case kindReplayed:
			p.lastReplayed = binary.BigEndian.Uint64(v)
		default:
			return fmt.Errorf("partition %d unknown state kind %q: %w", pi, k[4], errCorrupt)
		}
		return nil
	})
}
