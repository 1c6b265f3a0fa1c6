package projector

import (
	"context"
	"encoding/json"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
)

// Checkpoint names of the read-model projections.
const (
	// UnreadName is the checkpoint name of the unread-count projection.
	UnreadName = "unread"
	// EntitiesName is the checkpoint name of the entity-index projection.
	EntitiesName = "entities"
)

// UnreadStore applies unread-count changes and the projection's checkpoint
// in one transaction, skipping changes at or before the stored checkpoint.
// *eventstore.Store satisfies it.
type UnreadStore interface {
	ApplyUnread(ctx context.Context, name string, changes []eventstore.UnreadChange, next domain.Position) error
}

// Unread is the Handler that maintains each user's unread notification
// count from the log. The rules:
//
//   - new-notification delivered to user-<id> adds one to <id>'s count
//     (an event sent to several user rooms counts once for each);
//   - unread-count-update {unreadCount} delivered to user-<id> sets
//     <id>'s count: the notification service's own count wins over the
//     increments before it;
//   - nothing else changes a count. In particular messages-read is a
//     chat read receipt ({chatId, userId, upToMessageId}) and says nothing
//     about notifications, and the catalogue has no event that marks
//     notifications read: a user's count goes down only through
//     unread-count-update, which the notification service emits when the
//     user reads notifications.
//
// Run it with HandlerSavesCheckpoint and FromBeginning (see Registry).
type Unread struct {
	Store UnreadStore
	// Name is the checkpoint name; default UnreadName.
	Name string
}

// Handle implements Handler.
func (u Unread) Handle(ctx context.Context, batch []domain.Delivery, next domain.Position) error {
	return u.Store.ApplyUnread(ctx, nameOr(u.Name, UnreadName), UnreadChanges(batch), next)
}

// Types implements TypedHandler: the events UnreadChanges counts.
func (u Unread) Types() []string {
	return []string{domain.EventNewNotification, domain.EventUnreadCountUpdate}
}

// Idle implements IdleHandler: batch changes no unread count.
func (u Unread) Idle(batch []domain.Delivery) bool { return len(UnreadChanges(batch)) == 0 }

// UnreadChanges returns the unread-count changes batch implies, in order
// (see Unread for the rules).
func UnreadChanges(batch []domain.Delivery) []eventstore.UnreadChange {
	var out []eventstore.UnreadChange
	for _, d := range batch {
		if d.Room.Kind() != domain.KindUser {
			continue
		}
		user := d.Room.ID()
		switch d.Type {
		case domain.EventNewNotification:
			out = append(out, eventstore.UnreadChange{UserID: user, Count: 1, Position: d.Position})
		case domain.EventUnreadCountUpdate:
			// Read by exact key, like every projection: encoding/json
			// would also accept "UnreadCount".
			var m map[string]json.RawMessage
			var n int64
			if json.Unmarshal(d.Payload, &m) != nil || json.Unmarshal(m["unreadCount"], &n) != nil || n < 0 {
				continue // ValidatePublish keeps such payloads out of the log
			}
			out = append(out, eventstore.UnreadChange{UserID: user, Set: true, Count: n, Position: d.Position})
		}
	}
	return out
}

// EntityIndexStore adds entity-index entries and the projection's
// checkpoint in one transaction, skipping entries at or before the stored
// checkpoint. *eventstore.Store satisfies it.
type EntityIndexStore interface {
	ApplyEntityIndex(ctx context.Context, name string, entries []eventstore.EntityEntry, next domain.Position) error
}

// EntityIndex is the Handler that maintains the entity index: for every
// delivery, one entry per entity it touches, as domain.EntityRefs decides
// (requestId, purchaseRequestId, requestIds and a new-purchase-request's
// _id name requests; paymentId and a seller-offer-update's data.paymentId
// name payments; checkoutId names a template checkout; chatId names a
// chat; and a delivery to request-, chat- or template-checkout-<id> names
// that entity). eventstore.Store.EntityEvents reads an entity's history
// from it and domain.EntityState folds it.
//
// Run it with HandlerSavesCheckpoint and FromBeginning (see Registry).
type EntityIndex struct {
	Store EntityIndexStore
	// Name is the checkpoint name; default EntitiesName.
	Name string
}

// Handle implements Handler.
func (x EntityIndex) Handle(ctx context.Context, batch []domain.Delivery, next domain.Position) error {
	var entries []eventstore.EntityEntry
	for _, d := range batch {
		for _, ref := range domain.EntityRefs(d.Type, d.Room, d.Payload) {
			entries = append(entries, eventstore.EntityEntry{Ref: ref, Delivery: d})
		}
	}
	return x.Store.ApplyEntityIndex(ctx, nameOr(x.Name, EntitiesName), entries, next)
}

// Idle implements IdleHandler: no event of batch names an entity.
func (x EntityIndex) Idle(batch []domain.Delivery) bool {
	for _, d := range batch {
		if len(domain.EntityRefs(d.Type, d.Room, d.Payload)) > 0 {
			return false
		}
	}
	return true
}

func nameOr(name, def string) string {
	if name == "" {
		return def
	}
	return name
}
