package socketio

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/roomlog/roomlog/domain"
)

// Meta is the second argument of every logged event a socket receives:
// emit(event, payload, meta). Clients keep Room and Seq to resubscribe with
// {room, after: seq} after a disconnect.
type Meta struct {
	// Room is the room the event was delivered through.
	Room domain.Room `json:"room"`
	// Seq is the event's gap-free sequence number in Room.
	Seq int64 `json:"seq"`
	// ID is the event's id, shared by every room it targets.
	ID string `json:"id"`
	// At is when the log accepted the event, RFC 3339 in UTC.
	At string `json:"at"`
}

// volatileMeta is the meta of a volatile event (user-typing): it has no
// place in the log.
type volatileMeta struct {
	Room domain.Room `json:"room"`
}

// encodeDelivery returns the frame of emit(d.Type, d.Payload, meta). The
// payload travels byte for byte as the log stores it.
func encodeDelivery(d domain.Delivery) (*frame, error) {
	meta, err := json.Marshal(Meta{Room: d.Room, Seq: d.Seq, ID: d.ID, At: d.OccurredAt.UTC().Format(time.RFC3339Nano)})
	if err != nil {
		return nil, fmt.Errorf("encode meta: %w", err)
	}
	return encodeEvent(d.Type, d.Payload, meta)
}

// encodeVolatile returns the frame of emit(event, payload, {room}).
func encodeVolatile(event string, room domain.Room, payload json.RawMessage) (*frame, error) {
	meta, err := json.Marshal(volatileMeta{Room: room})
	if err != nil {
		return nil, fmt.Errorf("encode meta: %w", err)
	}
	return encodeEvent(event, payload, meta)
}

// encodeEvent builds the Socket.IO EVENT packet 2["event",payload,meta] in
// the main namespace, without an ack id. The packet is written by hand
// rather than by the library's encoder, which would take a
// json.RawMessage ([]byte) for binary data and send it as an attachment.
func encodeEvent(event string, payload json.RawMessage, meta []byte) (*frame, error) {
	name, err := json.Marshal(event)
	if err != nil {
		return nil, fmt.Errorf("encode event name: %w", err)
	}
	payload = bytes.TrimSpace(payload)
	if !json.Valid(payload) {
		return nil, fmt.Errorf("encode %s: payload is not valid JSON", event)
	}
	var b bytes.Buffer
	b.Grow(len(name) + len(payload) + len(meta) + 6)
	b.WriteString(`2[`)
	b.Write(name)
	b.WriteByte(',')
	b.Write(payload)
	b.WriteByte(',')
	b.Write(meta)
	b.WriteByte(']')
	return newFrame(b.Bytes()), nil
}
