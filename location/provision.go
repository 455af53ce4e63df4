package location

import (
	"context"
	"fmt"

	"github.com/batonhq/baton/stamp"
)

// Provision creates account on a stamp pair and registers it here, in the
// order that never leaves a half-made account visible to clients: first the
// secondary (so the primary has somewhere to ship from its first write), then
// the primary, and only then the location entry that clients resolve.
//
// It is idempotent. If the location service already knows the account on the
// same pair with the same partition count, it is returned untouched (the
// stamps were necessarily done before it was registered, and the account may
// since have failed over, which re-creating on the stamps would contradict).
// A different existing registration is an error.
func Provision(ctx context.Context, loc *Client, primary, secondary *stamp.Client,
	primaryName, secondaryName, account string, partitions int) (Account, error) {
	existing, err := loc.Lookup(ctx, account)
	switch {
	case err == nil:
		samePair := (existing.Primary == primaryName && existing.Secondary == secondaryName) ||
			(existing.Primary == secondaryName && existing.Secondary == primaryName)
		if !samePair || existing.Partitions != partitions {
			return Account{}, fmt.Errorf("provision %s: already registered with %d partitions on %s/%s, not %d on %s/%s",
				account, existing.Partitions, existing.Primary, existing.Secondary, partitions, primaryName, secondaryName)
		}
		return existing, nil
	case !IsNotFound(err):
		return Account{}, fmt.Errorf("provision %s: look up: %w", account, err)
	}

	const epoch = 1
	if err := secondary.CreateAccount(ctx, stamp.AccountSpec{
		Account: account, Partitions: partitions, Role: stamp.RoleSecondary, Epoch: epoch, Peer: primary.Base(),
		PeerName: primaryName,
	}); err != nil {
		return Account{}, fmt.Errorf("provision %s: create on secondary %s: %w", account, secondaryName, err)
	}
	if err := primary.CreateAccount(ctx, stamp.AccountSpec{
		Account: account, Partitions: partitions, Role: stamp.RolePrimary, Epoch: epoch, Peer: secondary.Base(),
		PeerName: secondaryName,
	}); err != nil {
		return Account{}, fmt.Errorf("provision %s: create on primary %s: %w", account, primaryName, err)
	}
	a, err := loc.CreateAccount(ctx, CreateRequest{
		Account: account, Partitions: partitions, Primary: primaryName, Secondary: secondaryName, Epoch: epoch,
	})
	if err != nil {
		return Account{}, fmt.Errorf("provision %s: register in location service: %w", account, err)
	}
	return a, nil
}
