package socketio

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
)

// EventSessionOffset is the event a socket receives right after it
// connects without recovering: emit("session-offset", offset). It carries
// no data for the application; it gives socket.io-client a recovery offset
// before the first logged event arrives, so that a socket that drops before
// any event can still recover. Never rename it.
const EventSessionOffset = "session-offset"

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

// encodeDelivery returns the frame of emit(d.Type, d.Payload, meta,
// offset): the payload travels byte for byte as the log stores it, and the
// last argument is d's log position as a recovery offset ("txid:id";
// socket.io-client keeps the last string argument of each event as the
// offset it sends when it reconnects). The frame also carries the same
// packet without the offset (frame.plain), for a socket that must not move
// its offset (see conn.write).
func encodeDelivery(d domain.Delivery) (*frame, error) {
	meta, err := json.Marshal(Meta{Room: d.Room, Seq: d.Seq, ID: d.ID, At: d.OccurredAt.UTC().Format(time.RFC3339Nano)})
	if err != nil {
		return nil, fmt.Errorf("encode meta: %w", err)
	}
	plain, err := encodeEvent(d.Type, d.Payload, meta)
	if err != nil {
		return nil, err
	}
	return withOffset(plain, d.Position), nil
}

// encodeHistory returns the frame of emit(d.Type, d.Payload, meta) without
// an offset: events a subscribe replays from a room's history are not part
// of the socket's recoverable stream.
func encodeHistory(d domain.Delivery) (*frame, error) {
	meta, err := json.Marshal(Meta{Room: d.Room, Seq: d.Seq, ID: d.ID, At: d.OccurredAt.UTC().Format(time.RFC3339Nano)})
	if err != nil {
		return nil, fmt.Errorf("encode meta: %w", err)
	}
	return encodeEvent(d.Type, d.Payload, meta)
}

// encodeOffset returns the frame of emit(EventSessionOffset, offset): it
// gives a new socket a recovery offset before it received any event.
func encodeOffset(pos domain.Position) *frame {
	b := []byte(`2["` + EventSessionOffset + `","` + eventstore.FormatPosition(pos) + `"]`)
	f := newFrame(b)
	f.pos, f.offset = pos, true
	return f
}

// withOffset returns plain with pos appended as the last argument.
func withOffset(plain *frame, pos domain.Position) *frame {
	t := plain.text
	b := make([]byte, 0, len(t)+32)
	b = append(b, t[:len(t)-1]...) // without the closing ']'
	b = append(b, `,"`...)
	b = append(b, eventstore.FormatPosition(pos)...)
	b = append(b, `"]`...)
	f := newFrame(b)
	f.pos, f.offset, f.plain = pos, true, plain
	return f
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
