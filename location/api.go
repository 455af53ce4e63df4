// Package location is Baton's location service: it maps each account to its
// primary stamp and epoch, the way DNS does for a real storage account, and
// keeps the registry of stamps (name -> base URL). Clients resolve an account
// here before writing; a failover's promote step moves the account here with
// a compare-and-set on the epoch.
package location

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"time"
)

// Stamp is a registered stamp (PUT /v1/stamps/{name}).
type Stamp struct {
	Name string `json:"name"`
	URL  string `json:"url"`
}

// Account is where an account lives (GET /v1/accounts/{account}).
type Account struct {
	Account      string    `json:"account"`
	Partitions   int       `json:"partitions"`
	Primary      string    `json:"primary"`       // stamp name
	PrimaryURL   string    `json:"primary_url"`   // filled in from the registry
	Secondary    string    `json:"secondary"`     // stamp name
	SecondaryURL string    `json:"secondary_url"` // filled in from the registry
	Epoch        uint64    `json:"epoch"`
	UpdatedAt    time.Time `json:"updated_at"`
	// Unprotected: the account failed over and its old primary does not
	// replicate it yet (reprotect pending): it cannot fail over again.
	Unprotected bool `json:"unprotected,omitempty"`
	// Labels are the operator's; LabelTier orders an evacuation.
	Labels map[string]string `json:"labels,omitempty"`
	// MovedBy is the operation of the move that made Primary the primary
	// (MoveRequest.Operation), if it named one.
	MovedBy string `json:"moved_by,omitempty"`
	// Kind is the store the account lives in: "" (Baton's reference
	// stamps) or KindRedis, whose partitions are shards with their own
	// servers: PrimaryEndpoints[i] and SecondaryEndpoints[i] serve shard i
	// on the primary's and the secondary's site (they follow a move).
	Kind               string   `json:"kind,omitempty"`
	PrimaryEndpoints   []string `json:"primary_endpoints,omitempty"`
	SecondaryEndpoints []string `json:"secondary_endpoints,omitempty"`
}

// Kinds of accounts besides the stamps' (""): shards of a store, each its
// own server per site (driver/redisdriver, driver/pgdriver). Their sites
// are registered with a URL of the kind's scheme naming the site
// (redis://site-a, postgres://site-a).
const (
	KindRedis    = "redis"
	KindPostgres = "postgres"
)

// SiteScheme is the URL scheme of the sites of an account of kind
// ("": http or https, a stamp's).
func SiteScheme(kind string) string { return kind }

// LabelTier is the label that ranks an account in a stamp evacuation:
// "0" (first) to "3"; an account without it comes last.
const LabelTier = "tier"

// AccountPage is one page of the accounts whose primary is a stamp
// (GET /v1/stamps/{name}/accounts?after=NAME&limit=N), sorted by name; Next
// is the after= of the next page ("" on the last).
type AccountPage struct {
	Accounts []Account `json:"accounts"`
	Next     string    `json:"next,omitempty"`
}

// LabelsRequest sets an account's labels (PUT /v1/accounts/{account}/labels),
// replacing them all.
type LabelsRequest struct {
	Labels map[string]string `json:"labels"`
}

// Switch is a maintenance switch: while On, automatic triggers (alert
// rules, scheduled drills) hold off; a failover started by hand still runs.
type Switch struct {
	On     bool      `json:"on"`
	By     string    `json:"by,omitempty"`
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at,omitzero"`
}

// Maintenance is every switch (GET /v1/maintenance): the global one and one
// per stamp.
type Maintenance struct {
	Global Switch            `json:"global"`
	Stamps map[string]Switch `json:"stamps,omitempty"`
}

// Holds reports whether automatic triggers on stamp are held, and by which
// switch ("" = none).
func (m Maintenance) Holds(stamp string) (Switch, bool) {
	h, ok := m.Hold(stamp)
	return h.Switch, ok
}

// Hold is a maintenance switch that holds automatic triggers: the global
// one (Stamp "") or a stamp's.
type Hold struct {
	Stamp string
	Switch
}

// Hold returns the switch that holds automatic triggers on any of stamps:
// the global one first, then the stamps' in the order given.
func (m Maintenance) Hold(stamps ...string) (Hold, bool) {
	if m.Global.On {
		return Hold{Switch: m.Global}, true
	}
	for _, st := range stamps {
		if s := m.Stamps[st]; s.On {
			return Hold{Stamp: st, Switch: s}, true
		}
	}
	return Hold{}, false
}

// AnyStampOn reports whether some stamp's switch is on.
func (m Maintenance) AnyStampOn() bool {
	for _, s := range m.Stamps {
		if s.On {
			return true
		}
	}
	return false
}

// Scope is "global" or the stamp whose switch it is (a metric label).
func (h Hold) Scope() string {
	if h.Stamp == "" {
		return "global"
	}
	return h.Stamp
}

// String names the switch and says who set it, when and why, e.g. "the
// maintenance switch of stamp-a (on since 2026-01-02T03:04:05Z, set by
// oncall: patching)".
func (h Hold) String() string {
	which := "the global maintenance switch"
	if h.Stamp != "" {
		which = "the maintenance switch of " + h.Stamp
	}
	return fmt.Sprintf("%s (on since %s, set by %s: %s)", which, h.At.UTC().Format(time.RFC3339), h.By, h.Reason)
}

// SwitchRequest sets a maintenance switch (PUT /v1/maintenance): the
// global one when Stamp is "", else that stamp's. By and Reason are
// required to turn it on.
type SwitchRequest struct {
	Stamp  string `json:"stamp,omitempty"`
	On     bool   `json:"on"`
	By     string `json:"by"`
	Reason string `json:"reason"`
}

// CreateRequest registers an account (POST /v1/accounts). Idempotent: the
// same request again answers the same; a different one is a 409.
type CreateRequest struct {
	Account    string `json:"account"`
	Partitions int    `json:"partitions"`
	Primary    string `json:"primary"`
	Secondary  string `json:"secondary"`
	Epoch      uint64 `json:"epoch"` // starting epoch, default 1
	// Kind "" is a stamp account; KindRedis takes each shard's server on
	// both sites (host:port, Partitions of each).
	Kind               string   `json:"kind,omitempty"`
	PrimaryEndpoints   []string `json:"primary_endpoints,omitempty"`
	SecondaryEndpoints []string `json:"secondary_endpoints,omitempty"`
}

// same reports whether two create requests ask the same (a repeat).
func (c CreateRequest) same(o CreateRequest) bool {
	return c.Account == o.Account && c.Partitions == o.Partitions && c.Primary == o.Primary &&
		c.Secondary == o.Secondary && c.Epoch == o.Epoch && c.Kind == o.Kind &&
		slices.Equal(c.PrimaryEndpoints, o.PrimaryEndpoints) && slices.Equal(c.SecondaryEndpoints, o.SecondaryEndpoints)
}

// validateKind checks the store-specific half of a create request.
func (c CreateRequest) validateKind() error {
	switch c.Kind {
	case "":
		if len(c.PrimaryEndpoints)+len(c.SecondaryEndpoints) > 0 {
			return errors.New("endpoints are for accounts of kind redis or postgres: a stamp serves every partition of its accounts")
		}
		return nil
	case KindRedis, KindPostgres:
		for side, eps := range func(yield func(string, []string) bool) {
			_ = yield("primary_endpoints", c.PrimaryEndpoints) && yield("secondary_endpoints", c.SecondaryEndpoints)
		} {
			if len(eps) != c.Partitions {
				return fmt.Errorf("%s: %d given for %d partitions: one host:port per shard", side, len(eps), c.Partitions)
			}
			for i, ep := range eps {
				if _, port, err := net.SplitHostPort(ep); err != nil || port == "" {
					return fmt.Errorf("%s[%d] %q is not host:port", side, i, ep)
				}
			}
		}
		return nil
	default:
		return fmt.Errorf("kind %q: use \"\" (stamps), %q or %q", c.Kind, KindRedis, KindPostgres)
	}
}

// MoveRequest points an account at a new primary
// (POST /v1/accounts/{account}/move). It is a compare-and-set: it applies
// only if the account's primary is From at ExpectedEpoch, and sets To at
// Epoch (> ExpectedEpoch); From becomes the secondary. Repeating an applied
// move answers the same (idempotent). Anything else is a 409.
type MoveRequest struct {
	From          string `json:"from"`
	To            string `json:"to"`
	ExpectedEpoch uint64 `json:"expected_epoch"`
	Epoch         uint64 `json:"epoch"`
	// Operation names the failover that moves the account (its run): the
	// account then says it was moved by it (moved_by), so a failover that
	// lost its record of the move can tell the move was its own.
	Operation string `json:"operation,omitempty"`
}

// ProtectRequest records that the account is protected again (its
// secondary replicates its primary) at Epoch
// (POST /v1/accounts/{account}/protect): a reprotect's last step. It
// applies only at the account's current epoch; a repeat answers the same.
type ProtectRequest struct {
	Epoch uint64 `json:"epoch"`
}

// ErrorBody is the JSON body of every non-2xx answer.
type ErrorBody struct {
	Code    string `json:"code"` // bad_request, not_found, conflict, internal
	Message string `json:"message"`
}
