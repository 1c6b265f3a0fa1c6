package httpapi

import (
	"encoding/json"
	"time"

	"github.com/roomlog/roomlog/domain"
)

// eventJSON is one delivery as catch-up and audit answer it.
type eventJSON struct {
	ID       string          `json:"id"`
	Room     domain.Room     `json:"room"`
	Seq      int64           `json:"seq"`
	Event    string          `json:"event"`
	Payload  json.RawMessage `json:"payload"`
	At       time.Time       `json:"at"`
	Producer string          `json:"producer"`
}

func toEventJSON(d domain.Delivery) eventJSON {
	return eventJSON{
		ID:       d.ID,
		Room:     d.Room,
		Seq:      d.Seq,
		Event:    d.Type,
		Payload:  d.Payload,
		At:       d.OccurredAt.UTC(),
		Producer: d.Producer,
	}
}

func toEventsJSON(ds []domain.Delivery) []eventJSON {
	out := make([]eventJSON, len(ds))
	for i, d := range ds {
		out[i] = toEventJSON(d)
	}
	return out
}
