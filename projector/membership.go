package projector

import (
	"context"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
)

// MembershipName is the checkpoint name of the membership projection.
const MembershipName = "membership"

// MembershipStore applies membership changes and the projection's
// checkpoint in one transaction. *eventstore.Store satisfies it.
type MembershipStore interface {
	ApplyMembership(ctx context.Context, name string, changes []eventstore.MembershipChange, next domain.Position) error
}

// Membership is the Handler that maintains the shared-room membership read
// model from the events that imply membership (see
// domain.ImpliedMembership). Run it with HandlerSavesCheckpoint and
// FromBeginning, so a fresh database rebuilds membership from zero.
type Membership struct {
	Store MembershipStore
	// Name is the checkpoint name; default MembershipName.
	Name string
}

// Handle implements Handler.
func (m Membership) Handle(ctx context.Context, batch []domain.Delivery, next domain.Position) error {
	name := m.Name
	if name == "" {
		name = MembershipName
	}
	var changes []eventstore.MembershipChange
	for _, d := range batch {
		// A multi-room event arrives once per room; each delivery names
		// its own room, so membership events apply to that room once.
		for _, c := range domain.ImpliedMembership(d.Type, []domain.Room{d.Room}, d.Payload) {
			changes = append(changes, eventstore.MembershipChange{MembershipChange: c, Position: d.Position})
		}
	}
	return m.Store.ApplyMembership(ctx, name, changes, next)
}
