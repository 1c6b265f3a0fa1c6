package projector

import (
	"context"
	"fmt"

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

// Types implements TypedHandler: the events membership follows.
func (m Membership) Types() []string { return domain.MembershipEventTypes() }

// Idle implements IdleHandler: no event of batch implies a membership
// change.
func (m Membership) Idle(batch []domain.Delivery) bool {
	for _, d := range batch {
		if len(domain.ImpliedMembership(d.Type, []domain.Room{d.Room}, d.Payload)) > 0 {
			return false
		}
	}
	return true
}

// MaxPendingMembership is how many unapplied membership events a
// MembershipView applies on top of the model; further behind, it reports
// CodeUnavailable rather than answer from an incomplete picture.
const MaxPendingMembership = 10000

// MembershipSnapshotter reads the membership model together with the
// events it has not applied yet. *eventstore.Store satisfies it.
type MembershipSnapshotter interface {
	MembershipSnapshot(ctx context.Context, checkpoint, userID string, rooms []domain.Room, types []string, limit int) (eventstore.MembershipSnapshot, error)
}

// MembershipView answers membership questions (who may join or read a
// shared room) from the membership read model plus the membership events
// that committed after the model's checkpoint, so a change is enforced as
// soon as it commits, not once the projection has caught up: a user added
// to a chat can join it right after the participants-added event reaches
// them, and a removed one cannot. It is safe for concurrent use.
type MembershipView struct {
	Store MembershipSnapshotter
	// Name is the membership projection's checkpoint name; default
	// MembershipName.
	Name string
}

// IsMember reports whether userID is a member of the shared room.
func (v MembershipView) IsMember(ctx context.Context, room domain.Room, userID string) (bool, error) {
	rooms, err := v.MemberRooms(ctx, userID, []domain.Room{room})
	return len(rooms) == 1, err
}

// MemberRooms returns those of rooms whose membership lists userID, in the
// order given, each once.
func (v MembershipView) MemberRooms(ctx context.Context, userID string, rooms []domain.Room) ([]domain.Room, error) {
	name := v.Name
	if name == "" {
		name = MembershipName
	}
	snap, err := v.Store.MembershipSnapshot(ctx, name, userID, rooms, domain.MembershipEventTypes(), MaxPendingMembership)
	if err != nil {
		return nil, fmt.Errorf("membership of %s: %w", userID, err)
	}
	if snap.Truncated {
		return nil, domain.Errorf(domain.CodeUnavailable, "the membership projection is more than %d events behind", MaxPendingMembership)
	}
	asked := make(map[domain.Room]bool, len(rooms))
	for _, r := range rooms {
		asked[r] = true
	}
	member := make(map[domain.Room]bool, len(rooms))
	for _, r := range snap.Members {
		member[r] = true
	}
	// The same rules, in the same order, as the Membership handler.
	for _, d := range snap.Pending {
		for _, c := range domain.ImpliedMembership(d.Type, []domain.Room{d.Room}, d.Payload) {
			if c.UserID == userID && asked[c.Room] {
				member[c.Room] = c.Added
			}
		}
	}
	return domain.SelectRooms(rooms, member), nil
}
