package traffic

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/stamp"
)

// AuditConfig tunes Audit; the zero value is fine.
type AuditConfig struct {
	// HTTPClient is used for stamp reads (default: the location client's).
	HTTPClient *http.Client
	// BatchSize is the number of keys per read call (default and max 5000).
	BatchSize int
	// ListLimit is how many lost / mismatched keys the report lists
	// (default 20); the counts are always complete.
	ListLimit int
}

// Mismatch is an acknowledged key whose stored value differs.
type Mismatch struct {
	Key  string `json:"key"`
	Want string `json:"want"`
	Got  string `json:"got"`
}

// AuditReport is the verdict on one account's acknowledged writes.
type AuditReport struct {
	Account  string `json:"account"`
	Stamp    string `json:"stamp"` // the primary that was read
	StampURL string `json:"stamp_url"`
	Epoch    uint64 `json:"epoch"`
	// Acks is the number of ack records given; Checked the distinct keys
	// read back (a key acknowledged twice is judged by its last ack).
	Acks       int           `json:"acks"`
	Checked    int           `json:"checked"`
	Lost       int           `json:"lost"`
	LostKeys   []string      `json:"lost_keys,omitempty"` // first ListLimit, sorted
	Mismatched int           `json:"mismatched"`
	Mismatches []Mismatch    `json:"mismatches,omitempty"` // first ListLimit, sorted by key
	SplitBrain []Violation   `json:"split_brain,omitempty"`
	Elapsed    time.Duration `json:"elapsed"`
}

// OK reports whether the audit passed: at least one write was
// acknowledged, and nothing was lost, changed or split. An audit of no
// acknowledged writes never passes: it proves nothing (the traffic never
// reached the account).
func (r AuditReport) OK() bool { return r.Err() == nil }

// NothingAcknowledged is the failure of an audit that had no acknowledged
// write to check.
const NothingAcknowledged = "nothing was acknowledged: the traffic never reached the account, so the audit proves nothing"

// Err is nil when the audit passed, else why it failed, in one line.
func (r AuditReport) Err() error {
	if r.Acks == 0 {
		return fmt.Errorf("audit of %s failed: %s", r.Account, NothingAcknowledged)
	}
	if r.Lost == 0 && r.Mismatched == 0 && len(r.SplitBrain) == 0 {
		return nil
	}
	return fmt.Errorf("audit of %s failed: %d of %d acknowledged writes lost, %d changed, %d split-brain findings",
		r.Account, r.Lost, r.Acks, r.Mismatched, len(r.SplitBrain))
}

// String is a human-readable report.
func (r AuditReport) String() string {
	var b strings.Builder
	verdict := "PASS"
	if !r.OK() {
		verdict = "FAIL"
	}
	fmt.Fprintf(&b, "audit %s: account %s read from %s (%s) at epoch %d\n", verdict, r.Account, r.Stamp, r.StampURL, r.Epoch)
	if r.Acks == 0 {
		fmt.Fprintf(&b, "  %s\n", NothingAcknowledged)
	}
	fmt.Fprintf(&b, "  acknowledged writes: %d (%d distinct keys checked) in %s\n", r.Acks, r.Checked, r.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(&b, "  lost:               %d\n", r.Lost)
	for _, k := range r.LostKeys {
		fmt.Fprintf(&b, "    lost %s\n", k)
	}
	if r.Lost > len(r.LostKeys) {
		fmt.Fprintf(&b, "    ... and %d more\n", r.Lost-len(r.LostKeys))
	}
	fmt.Fprintf(&b, "  value mismatches:   %d\n", r.Mismatched)
	for _, m := range r.Mismatches {
		fmt.Fprintf(&b, "    %s: want %q got %q\n", m.Key, m.Want, m.Got)
	}
	if r.Mismatched > len(r.Mismatches) {
		fmt.Fprintf(&b, "    ... and %d more\n", r.Mismatched-len(r.Mismatches))
	}
	fmt.Fprintf(&b, "  split-brain findings: %d\n", len(r.SplitBrain))
	for _, v := range r.SplitBrain {
		fmt.Fprintf(&b, "    %s: %s\n", v.Kind, v.Message)
	}
	return b.String()
}

// maxReadBatch is the largest read the audit sends in one call.
const maxReadBatch = 5000

// Audit resolves the account's current primary from the location service
// and reads back every acknowledged key, counting exactly the keys that are
// missing (lost) or hold another value than acknowledged (mismatched). It
// also runs CheckSplitBrain over acks. Transient read failures (5xx,
// connection errors) are retried until ctx ends; anything else is an error,
// because a partial audit would be a wrong verdict.
func Audit(ctx context.Context, loc *location.Client, account string, acks []Ack, cfg AuditConfig) (AuditReport, error) {
	start := time.Now()
	if cfg.BatchSize <= 0 || cfg.BatchSize > maxReadBatch {
		cfg.BatchSize = maxReadBatch
	}
	if cfg.ListLimit <= 0 {
		cfg.ListLimit = 20
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = loc.HTTPClient() // the caller's TLS and certificate serve for the stamps too
	}
	rep := AuditReport{Account: account, Acks: len(acks), SplitBrain: CheckSplitBrain(acks)}

	want := make(map[string]string, len(acks))
	for _, a := range acks {
		if a.Account != "" && a.Account != account {
			return rep, fmt.Errorf("audit %s: ack for key %s belongs to account %s", account, a.Key, a.Account)
		}
		want[a.Key] = a.Value // later acks of a key supersede earlier ones
	}
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys) // deterministic batches and a sorted report
	rep.Checked = len(keys)

	a, err := loc.Lookup(ctx, account)
	if err != nil {
		return rep, fmt.Errorf("audit %s: resolve primary: %w", account, err)
	}
	rep.Stamp, rep.StampURL, rep.Epoch = a.Primary, a.PrimaryURL, a.Epoch
	sc := stamp.NewClient(a.PrimaryURL, hc)

	for i := 0; i < len(keys); i += cfg.BatchSize {
		batch := keys[i:min(i+cfg.BatchSize, len(keys))]
		res, err := readRetry(ctx, sc, account, batch)
		if err != nil {
			return rep, fmt.Errorf("audit %s: read %d keys from %s: %w", account, len(batch), a.Primary, err)
		}
		// Judge every key of the batch from Values alone: a key absent from
		// Values is lost whether or not the stamp listed it in Missing.
		for _, k := range batch {
			v, ok := res.Values[k]
			switch {
			case !ok:
				rep.Lost++
				if len(rep.LostKeys) < cfg.ListLimit {
					rep.LostKeys = append(rep.LostKeys, k)
				}
			case v.Value != want[k]:
				rep.Mismatched++
				if len(rep.Mismatches) < cfg.ListLimit {
					rep.Mismatches = append(rep.Mismatches, Mismatch{Key: k, Want: want[k], Got: v.Value})
				}
			}
		}
	}
	rep.Elapsed = time.Since(start)
	return rep, nil
}

func readRetry(ctx context.Context, sc *stamp.Client, account string, keys []string) (stamp.ReadResult, error) {
	for attempt := 0; ; attempt++ {
		res, err := sc.Read(ctx, account, keys)
		if err == nil {
			return res, nil
		}
		var ae *stamp.APIError
		if errors.As(err, &ae) && !ae.Retryable() {
			return res, err
		}
		if ctx.Err() != nil {
			return res, err
		}
		d := min(time.Millisecond<<min(attempt, 10), 200*time.Millisecond)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return res, fmt.Errorf("%w (gave up: %w)", err, ctx.Err())
		case <-t.C:
		}
	}
}
