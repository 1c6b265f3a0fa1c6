package socketio

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/transport/internal/jsonwire"
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

// encodeDelivery returns the frame of emit(d.Type, d.Payload, meta,
// offset): the payload travels byte for byte as the log stores it, and the
// last argument is d's log position as a recovery offset ("txid:id";
// socket.io-client keeps the last string argument of each event as the
// offset it sends when it reconnects). The frame also carries the same
// packet without the offset (frame.plain), for a socket that must not move
// its offset (see conn.write).
//
// It runs once per event in the fan-out and once per replayed event in a
// recovery, so both packets are written by hand into one allocation; the
// bytes are those encoding/json gave (TestEncodeDeliveryMatchesEncodingJSON).
func encodeDelivery(d domain.Delivery) (*frame, error) {
	payload, err := checkedPayload(d.Type, d.Payload)
	if err != nil {
		return nil, err
	}
	// plain, then the packet with the offset: its prefix up to the meta
	// again, the offset and the closing bracket.
	size := 2*(len(d.Type)+len(payload)+len(d.Room)+len(d.ID)+96) + 48
	buf := make([]byte, 0, size)
	buf = appendDeliveryPrefix(buf, d, payload)
	prefix := len(buf)
	buf = append(buf, ']')
	plainEnd := len(buf)
	buf = append(buf, buf[:prefix]...)
	buf = append(buf, `,"`...)
	buf = eventstore.AppendPosition(buf, d.Position)
	buf = append(buf, `"]`...)
	plain := newFrame(buf[:plainEnd])
	f := newFrame(buf[plainEnd:])
	f.pos, f.offset, f.plain = d.Position, true, plain
	return f, nil
}

// encodeHistory returns the frame of emit(d.Type, d.Payload, meta) without
// an offset: events a subscribe replays from a room's history are not part
// of the socket's recoverable stream.
func encodeHistory(d domain.Delivery) (*frame, error) {
	payload, err := checkedPayload(d.Type, d.Payload)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, len(d.Type)+len(payload)+len(d.Room)+len(d.ID)+96)
	b = appendDeliveryPrefix(b, d, payload)
	return newFrame(append(b, ']')), nil
}

// checkedPayload returns payload without surrounding white space, or an
// error if it is not one JSON value.
func checkedPayload(event string, payload json.RawMessage) ([]byte, error) {
	p := bytes.TrimSpace(payload)
	if !validJSON(p) {
		return nil, fmt.Errorf("encode %s: payload is not valid JSON", event)
	}
	return p, nil
}

// appendEventPrefix appends 2["event",payload: the Socket.IO EVENT packet
// in the main namespace, without an ack id, up to its last arguments. The
// packet is written by hand rather than by the library's encoder, which
// would take a json.RawMessage ([]byte) for binary data and send it as an
// attachment. payload must be checked (checkedPayload).
func appendEventPrefix(b []byte, event string, payload []byte) []byte {
	b = append(b, `2[`...)
	b = jsonwire.AppendStringHTML(b, event)
	b = append(b, ',')
	return append(b, payload...)
}

// appendDeliveryPrefix appends 2["type",payload,meta of a logged event,
// without the closing bracket. payload must be checked.
func appendDeliveryPrefix(b []byte, d domain.Delivery, payload []byte) []byte {
	return appendMeta(appendEventPrefix(b, d.Type, payload), d)
}

// appendMeta appends ,Meta as json.Marshal writes it:
// {"room":…,"seq":…,"id":…,"at":RFC 3339 in UTC}.
func appendMeta(b []byte, d domain.Delivery) []byte {
	b = append(b, `,{"room":`...)
	b = jsonwire.AppendStringHTML(b, string(d.Room))
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, d.Seq, 10)
	b = append(b, `,"id":`...)
	b = jsonwire.AppendStringHTML(b, d.ID)
	b = append(b, `,"at":"`...)
	// RFC 3339 text needs no escaping.
	b = d.OccurredAt.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, `"}`...)
}

// encodeOffset returns the frame of emit(EventSessionOffset, offset): it
// gives a new socket a recovery offset before it received any event.
func encodeOffset(pos domain.Position) *frame {
	b := []byte(`2["` + EventSessionOffset + `","` + eventstore.FormatPosition(pos) + `"]`)
	f := newFrame(b)
	f.pos, f.offset = pos, true
	return f
}

// encodeVolatile returns the frame of emit(event, payload, {room}): the
// meta of a volatile event (user-typing), which has no place in the log.
func encodeVolatile(event string, room domain.Room, payload json.RawMessage) (*frame, error) {
	p, err := checkedPayload(event, payload)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, len(event)+len(p)+len(room)+24)
	b = appendEventPrefix(b, event, p)
	b = append(b, `,{"room":`...)
	b = jsonwire.AppendStringHTML(b, string(room))
	return newFrame(append(b, "}]"...)), nil
}
