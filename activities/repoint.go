package activities

import (
	"context"
	"fmt"

	"github.com/batonhq/baton/location"
)

// RepointInput moves the account in the location service.
type RepointInput struct {
	Account       string
	From          string
	To            string
	ExpectedEpoch uint64
	Epoch         uint64
}

// Repoint points the account at its new primary: a compare-and-set on the
// epoch, so a repeat is a no-op and a concurrent mover is detected.
func (a *Activities) Repoint(ctx context.Context, in RepointInput) (location.Account, error) {
	acct, err := a.Location.Move(ctx, in.Account, location.MoveRequest{
		From: in.From, To: in.To, ExpectedEpoch: in.ExpectedEpoch, Epoch: in.Epoch,
	})
	return acct, classify(fmt.Sprintf("repoint %s from %s to %s at epoch %d", in.Account, in.From, in.To, in.Epoch), err)
}
