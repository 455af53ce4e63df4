package stamp

import (
	"fmt"
	"net/http"

	"github.com/batonhq/baton/internal/auth"
)

// Who may call what (docs/SECURITY.md): Handler names, for every route, the
// roles any one of which lets a caller in (none: any authenticated caller).
// The replication routes also check that the caller is the account's peer.

// route registers pattern on mux for callers holding one of roles.
func (s *Server) route(mux *http.ServeMux, pattern string, h func(w http.ResponseWriter, r *http.Request) error,
	roles ...auth.Role) {
	mux.Handle(pattern, s.guard.Require(s.handle(h), roles...))
}

// fromPeer says who calls r and, if they may not ship or report for a, why
// not: with authentication on, only a certificate whose name is the
// account's registered peer stamp may.
func (s *Server) fromPeer(r *http.Request, a *account) (who string, why string) {
	if s.guard.Insecure() {
		return "", ""
	}
	id, _ := auth.IdentityFrom(r.Context())
	switch {
	case id.Via != "certificate":
		return id.Name, fmt.Sprintf("%s (%s) may not replicate: only a peer stamp's node certificate may", id.Name, id.Via)
	case a.spec.PeerName == "":
		return id.Name, fmt.Sprintf("account %q on stamp %s has no registered peer stamp name (peer_name), "+
			"so it accepts replication from no one; re-provision it with the peer's name", a.spec.Account, s.cfg.Name)
	case id.Name != a.spec.PeerName:
		return id.Name, fmt.Sprintf("stamp %s is not the peer of account %q on stamp %s (its peer is %s)",
			id.Name, a.spec.Account, s.cfg.Name, a.spec.PeerName)
	}
	return id.Name, ""
}

// refuseShipment answers 403 for a shipment from a stamp that is not the
// account's peer; nothing is applied.
func (s *Server) refuseShipment(w http.ResponseWriter, r *http.Request, a *account) error {
	who, why := s.fromPeer(r, a)
	if why == "" {
		return nil
	}
	s.guard.Refuse(w, r, auth.RoleReplication, who, why)
	return errAnswered
}

// peerReports keeps the heartbeat reports whose account's peer is the
// caller. A batch refused whole is answered 403; otherwise each refused
// report is logged and counted, and left out of the answer's Accepted.
func (s *Server) peerReports(w http.ResponseWriter, r *http.Request, reps []AccountReport) ([]AccountReport, error) {
	var ok []AccountReport
	var who string
	var refused []string
	for _, rep := range reps {
		s.mu.RLock()
		a := s.accounts[rep.Account]
		s.mu.RUnlock()
		if a != nil {
			var why string
			if who, why = s.fromPeer(r, a); why != "" {
				refused = append(refused, why)
				continue
			}
		}
		ok = append(ok, rep)
	}
	if len(refused) > 0 && len(ok) == 0 {
		s.guard.Refuse(w, r, auth.RoleReplication, who, fmt.Sprintf("%s (%d account(s) refused)", refused[0], len(refused)))
		return nil, errAnswered
	}
	for _, why := range refused {
		s.guard.Refused(r, who, why)
	}
	return ok, nil
}
