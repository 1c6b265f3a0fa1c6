package domain

import (
	"encoding/json"
	"time"
)

// Event is one logical event as it is stored in the log and delivered to
// clients: one Event may target several rooms, and each room gets its own
// Delivery with a per-room sequence number.
type Event struct {
	// ID is the event's identity, shared by every room the event targets.
	ID string
	// Type is the catalogue name of the event, e.g. "new-message".
	Type string
	// Payload is the exact JSON the producer sent; it is stored and hashed
	// byte for byte and delivered unchanged.
	Payload json.RawMessage
	// Producer is the name of the API key (or internal subsystem) that
	// published the event.
	Producer string
	// OccurredAt is when the log accepted the event.
	OccurredAt time.Time
}

// Delivery is one row of the log: an Event as it appears in one room.
type Delivery struct {
	Event
	// Room the event was appended to.
	Room Room
	// Seq is the event's position in Room: 1, 2, 3, … with no gaps.
	Seq int64
	// Position is the event's place in the log's global order (see Position).
	Position Position
}

// Position is a place in the log's global order. It orders rows by the
// PostgreSQL transaction that wrote them (Txid) and then by the row's
// physical id (ID). A tailer that reads only rows whose transaction is older
// than every running transaction can advance a Position without ever
// skipping a row that commits late. The zero Position is the start of the
// log.
type Position struct {
	Txid uint64
	ID   int64
}

// Less reports whether p sorts before q.
func (p Position) Less(q Position) bool {
	if p.Txid != q.Txid {
		return p.Txid < q.Txid
	}
	return p.ID < q.ID
}

// IsZero reports whether p is the start of the log.
func (p Position) IsZero() bool { return p == Position{} }
