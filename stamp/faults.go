package stamp

import (
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/batonhq/baton/internal/jsonhttp"
)

// Fault scopes: which routes a Fault applies to.
const (
	scopeControl     = "control"     // account create/list, status, control calls
	scopeData        = "data"        // key reads and writes, batch, read
	scopeReplication = "replication" // shipments received on /v1/internal/replicate
	scopeAll         = "all"
)

type faultSet struct {
	mu   sync.Mutex
	list []*activeFault
}

// activeFault is a fault in force and how many calls it struck.
type activeFault struct {
	Fault
	struck atomic.Int64
}

func (fs *faultSet) add(f Fault) {
	f.Struck = 0
	fs.mu.Lock()
	fs.list = append(fs.list, &activeFault{Fault: f})
	fs.mu.Unlock()
}

func (fs *faultSet) clear() {
	fs.mu.Lock()
	fs.list = nil
	fs.mu.Unlock()
}

// active returns the faults in force, to match calls against.
func (fs *faultSet) active() []*activeFault {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return slices.Clone(fs.list)
}

// unreachable lists the faults in force that drop calls.
func (fs *faultSet) unreachable() []*activeFault {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	var out []*activeFault
	for _, af := range fs.list {
		if af.Unreachable {
			out = append(out, af)
		}
	}
	return out
}

// snapshot lists the faults in force with the calls each one struck.
func (fs *faultSet) snapshot() []Fault {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	out := make([]Fault, len(fs.list))
	for i, af := range fs.list {
		out[i] = af.Fault
		out[i].Struck = af.struck.Load()
	}
	return out
}

func validateFault(f *Fault) error {
	switch f.Scope {
	case scopeControl, scopeData, scopeReplication, scopeAll:
	default:
		return errBad("fault scope %q is invalid; use control, data, replication or all", f.Scope)
	}
	if f.ErrorRate < 0 || f.ErrorRate > 1 {
		return errBad("fault error_rate %v out of range; use 0..1", f.ErrorRate)
	}
	if f.LatencyMillis < 0 {
		return errBad("fault latency_ms %d is negative", f.LatencyMillis)
	}
	if f.Partition != nil && *f.Partition < -1 {
		return errBad("fault partition %d is invalid; use a partition number, or -1 or omit it for all", *f.Partition)
	}
	if f.ErrorRate == 0 && f.LatencyMillis == 0 && !f.Unreachable {
		return errBad("fault does nothing; set error_rate, latency_ms or unreachable")
	}
	switch f.Op {
	case "", CtlFence, CtlFlushSend, CtlFlushReplay, CtlPromote, CtlUnfence, CtlDemote, CtlProtect, CtlSeed, opStatus:
	default:
		return errBad("fault op %q is invalid; use fence, flush-send, flush-replay, promote, unfence, demote, protect, seed or status", f.Op)
	}
	if f.Op != "" && f.Scope != scopeControl {
		return errBad("fault op %q needs scope control", f.Op)
	}
	if _, ok := faultCodes[f.Code]; !ok {
		return errBad("fault code %q is invalid; use injected_fault, unavailable, stale_epoch or conflict", f.Code)
	}
	return nil
}

// opStatus names the status call for Fault.Op.
const opStatus = "status"

// faultCodes maps an injectable error code to its HTTP status.
var faultCodes = map[string]int{
	"":              http.StatusServiceUnavailable,
	CodeInjected:    http.StatusServiceUnavailable,
	CodeUnavailable: http.StatusServiceUnavailable,
	CodeStaleEpoch:  http.StatusConflict,
	CodeConflict:    http.StatusConflict,
}

// injectFault applies the faults matching a call: scope, op (the control
// call, "" for others), account, and involves, which reports whether the
// call touches a partition (nil: the call touches none, so
// partition-narrowed faults do not apply). It returns an error to answer
// with, errAnswered if the connection was dropped, or nil to go on.
func (s *Server) injectFault(w http.ResponseWriter, r *http.Request, scope, op, account string,
	involves func(int) bool) error {
	faults := s.faults.active()
	if len(faults) == 0 {
		return nil
	}
	return s.applyFault(w, r, matchFaults(faults, scope, op, account, involves, nil), scope, op, account)
}

// injectControlFaults applies the faults matching a bulk control call on
// ps. Faults narrowed to a partition fail that partition alone (returned,
// with the refusal it gets: the fault's code, or 503 unavailable for an
// unreachable partition), as a partition server of a real stamp would; the
// others, and the latency of any matching fault, apply to the whole call.
func (s *Server) injectControlFaults(w http.ResponseWriter, r *http.Request, op, account string,
	ps []int) (map[int]*apiError, error) {
	faults := s.faults.active()
	if len(faults) == 0 {
		return nil, nil
	}
	failed := map[int]*apiError{}
	eff := matchFaults(faults, scopeControl, op, account, inSorted(ps), func(p int, code string) {
		failed[p] = s.injectedError(code, scopeControl, op)
	})
	return failed, s.applyFault(w, r, eff, scopeControl, op, account)
}

// faultEffect is what the faults matching one call do to it.
type faultEffect struct {
	latency     int
	unreachable bool
	failed      bool
	code        string
}

// matchFaults sums the effect of faults on a call. With failPart set, a
// partition-narrowed fault that strikes fails only its partition, through
// failPart, instead of the whole call.
func matchFaults(faults []*activeFault, scope, op, account string, involves func(int) bool,
	failPart func(p int, code string)) faultEffect {
	var eff faultEffect
	for _, af := range faults {
		f := &af.Fault
		if f.Scope != scopeAll && f.Scope != scope {
			continue
		}
		if f.Op != "" && f.Op != op {
			continue
		}
		if f.Account != "" && f.Account != account {
			continue
		}
		narrowed := f.Partition != nil && *f.Partition >= 0
		if narrowed && (involves == nil || !involves(*f.Partition)) {
			continue
		}
		struck := f.LatencyMillis > 0 || f.Unreachable
		eff.latency += f.LatencyMillis
		switch {
		case narrowed && failPart != nil && f.Unreachable:
			// One partition's server does not answer: the front end says so
			// for that partition alone.
			failPart(*f.Partition, CodeUnavailable)
		case f.Unreachable:
			eff.unreachable = true
		}
		if f.ErrorRate > 0 && rand.Float64() < f.ErrorRate {
			struck = true
			if narrowed && failPart != nil {
				failPart(*f.Partition, f.Code)
			} else {
				eff.failed = true
				if f.Code != "" {
					eff.code = f.Code
				}
			}
		}
		if struck {
			af.struck.Add(1)
		}
	}
	return eff
}

// applyFault delays, drops or fails the call as eff says. A call that
// was delayed is dropped if the stamp became unreachable meanwhile (for
// the whole call), as a network partition loses the answers in flight.
func (s *Server) applyFault(w http.ResponseWriter, r *http.Request, eff faultEffect, scope, op, account string) error {
	if eff.latency > 0 {
		t := time.NewTimer(time.Duration(eff.latency) * time.Millisecond)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return errAnswered
		case <-s.stop:
			t.Stop()
			return errClosed
		}
		if !eff.unreachable {
			eff.unreachable = matchFaults(s.faults.unreachable(), scope, op, account, nil, nil).unreachable
		}
	}
	if eff.unreachable {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			// Not hijackable (e.g. HTTP/2): abort the stream instead.
			panic(http.ErrAbortHandler)
		}
		conn.Close()
		return errAnswered
	}
	if eff.failed {
		return s.injectedError(eff.code, scope, op)
	}
	return nil
}

// injectedError is the refusal an injected fault answers with.
func (s *Server) injectedError(code, scope, op string) *apiError {
	if code == "" {
		code = CodeInjected
	}
	where := scope
	if op != "" {
		where += " " + op
	}
	return newErr(faultCodes[code], code, "injected fault on stamp %s (%s); clear it with DELETE /v1/faults or retry",
		s.cfg.Name, where)
}

func (s *Server) addFault(w http.ResponseWriter, r *http.Request) error {
	var f Fault
	if err := decodeBody(w, r, limitSmall, &f, "Fault"); err != nil {
		return err
	}
	if err := validateFault(&f); err != nil {
		return err
	}
	s.faults.add(f)
	jsonhttp.WriteJSON(w, http.StatusCreated, s.faults.snapshot())
	return nil
}

func (s *Server) listFaults(w http.ResponseWriter, r *http.Request) error {
	list := s.faults.snapshot()
	if list == nil {
		list = []Fault{}
	}
	jsonhttp.WriteJSON(w, http.StatusOK, list)
	return nil
}

func (s *Server) clearFaults(w http.ResponseWriter, r *http.Request) error {
	s.faults.clear()
	jsonhttp.WriteJSON(w, http.StatusOK, []Fault{})
	return nil
}
