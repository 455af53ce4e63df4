package stamp

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"time"

	"go.uber.org/zap"

	"github.com/batonhq/baton/internal/jsonhttp"
)

// Heartbeats: a primary with nothing to ship still tells its peer, every
// HeartbeatInterval, what each partition has written (the basis of the
// unplanned failover's data-loss ledger and of the RPO estimate). A stamp
// holds thousands of accounts, so it does not send one request per account:
// one loop gathers every account that is due, per peer stamp, into one
// POST /v1/internal/heartbeats. A shipment carries the same report, so an
// account that ships is not due.

// maxHeartbeatAccounts bounds the accounts in one heartbeat request.
const maxHeartbeatAccounts = 2000

// heartbeatLoop sends the heartbeats of every due account, per peer, each
// HeartbeatInterval, until the stamp closes.
func (s *Server) heartbeatLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.HeartbeatInterval)
	defer t.Stop()
	failing := map[string]bool{} // peers whose last heartbeat failed (logged once)
	for {
		select {
		case <-t.C:
		case <-s.stop:
			return
		}
		for peer, due := range s.dueHeartbeats() {
			err := s.sendHeartbeats(peer, due)
			switch {
			case err != nil && !failing[peer] && s.ctx.Err() == nil:
				s.log.Warn("heartbeat failed", zap.String("peer", peer), zap.Int("accounts", len(due)), zap.Error(err))
				failing[peer] = true
			case err == nil && failing[peer]:
				s.log.Info("heartbeats reach the peer again", zap.String("peer", peer))
				delete(failing, peer)
			}
		}
	}
}

// dueReport is one account's heartbeat, and what marks it reported.
type dueReport struct {
	report   AccountReport
	reported func()
}

// dueHeartbeats gathers, per peer, the report of every account whose last
// report is a heartbeat interval old and that is not shipping right now
// (its shipment reports).
func (s *Server) dueHeartbeats() map[string][]dueReport {
	s.mu.RLock()
	accts := make([]*account, 0, len(s.accounts))
	for _, a := range s.accounts {
		accts = append(accts, a)
	}
	s.mu.RUnlock()
	sort.Slice(accts, func(i, j int) bool { return accts[i].spec.Account < accts[j].spec.Account })
	due := map[string][]dueReport{}
	for _, a := range accts {
		a.dirtyMu.Lock()
		late := time.Since(a.lastReport) >= s.cfg.HeartbeatInterval
		a.dirtyMu.Unlock()
		if !late || a.spec.Peer == "" || !a.anyShipping() || !a.shipMu.TryLock() {
			continue
		}
		req := &ReplicateRequest{Account: a.spec.Account, FromStamp: s.cfg.Name}
		reported := s.addReport(a, req)
		a.shipMu.Unlock()
		due[a.spec.Peer] = append(due[a.spec.Peer], dueReport{
			report:   AccountReport{Account: a.spec.Account, Written: req.Written, SentAt: req.SentAt},
			reported: reported,
		})
	}
	return due
}

// sendHeartbeats posts the reports to peer, in requests of at most
// maxHeartbeatAccounts, and marks reported the accounts it accepted.
func (s *Server) sendHeartbeats(peer string, due []dueReport) error {
	for len(due) > 0 {
		n := min(len(due), maxHeartbeatAccounts)
		batch := HeartbeatBatch{FromStamp: s.cfg.Name, Accounts: make([]AccountReport, n)}
		for i := range n {
			batch.Accounts[i] = due[i].report
		}
		ack, err := s.postHeartbeats(peer, &batch)
		if err != nil {
			return err
		}
		accepted := make(map[string]bool, len(ack.Accepted))
		for _, name := range ack.Accepted {
			accepted[name] = true
		}
		for _, d := range due[:n] {
			if accepted[d.report.Account] {
				d.reported()
			}
		}
		due = due[n:]
	}
	return nil
}

// postHeartbeats sends one heartbeat request after the WAN delay.
func (s *Server) postHeartbeats(peer string, batch *HeartbeatBatch) (*HeartbeatAck, error) {
	if d := s.cfg.ReplicationDelay; d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-s.stop:
			t.Stop()
			return nil, errors.New("stamp closing")
		}
	}
	ctx, cancel := context.WithTimeout(s.ctx, shipTimeout)
	defer cancel()
	var ack HeartbeatAck
	if err := NewClient(peer, s.hc).do(ctx, http.MethodPost, "/v1/internal/heartbeats", nil, batch, &ack); err != nil {
		return nil, err
	}
	return &ack, nil
}

// heartbeats receives a peer's heartbeats (POST /v1/internal/heartbeats):
// each account's report is recorded as a shipment's would be. Replication
// faults apply as to a shipment: a stamp-wide one to the whole request, an
// account's to that account alone, which is then not accepted.
func (s *Server) heartbeats(w http.ResponseWriter, r *http.Request) error {
	var batch HeartbeatBatch
	if err := decodeBody(w, r, limitReplicate, &batch, "HeartbeatBatch"); err != nil {
		return err
	}
	if err := s.injectFault(w, r, scopeReplication, "", "", nil); err != nil {
		return err
	}
	reps, err := s.peerReports(w, r, batch.Accounts)
	if err != nil {
		return err
	}
	ack := HeartbeatAck{Accepted: make([]string, 0, len(reps))}
	for _, rep := range reps {
		s.mu.RLock()
		a := s.accounts[rep.Account]
		s.mu.RUnlock()
		if a == nil || s.accountFaultStrikes(rep.Account) {
			continue
		}
		a.recordReport(&ReplicateRequest{Account: rep.Account, FromStamp: batch.FromStamp, SentAt: rep.SentAt,
			Written: rep.Written})
		ack.Accepted = append(ack.Accepted, rep.Account)
	}
	jsonhttp.WriteJSON(w, http.StatusOK, ack)
	return nil
}

// accountFaultStrikes reports whether a replication fault narrowed to the
// account strikes its heartbeat (it is then dropped, as its shipment
// would be).
func (s *Server) accountFaultStrikes(account string) bool {
	faults := s.faults.active()
	var mine []*activeFault
	for _, af := range faults {
		if af.Fault.Account == account {
			mine = append(mine, af)
		}
	}
	if len(mine) == 0 {
		return false
	}
	eff := matchFaults(mine, scopeReplication, "", account, nil, nil)
	return eff.unreachable || eff.failed
}
