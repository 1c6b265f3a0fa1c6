package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/transport/internal/jsonwire"
)

// Catch-up answers are written by hand rather than by encoding/json: a page
// of 1,000 events spent most of its time in reflection and in
// encoding/json re-validating and compacting every json.RawMessage payload,
// which the store already holds compacted (eventstore.AppendRequest). The
// bytes are exactly those encoding/json writes for the same values (with
// HTML escaping off, see marshal); TestPageJSONMatchesEncodingJSON keeps
// them so.

// appendRoomPage appends p as
// {"room":…,"events":[eventJSON…],"head":…,"more":…,"reset":…}.
func appendRoomPage(b []byte, p roomPage) ([]byte, error) {
	b = append(b, `{"room":`...)
	b = jsonwire.AppendString(b, string(p.Room))
	b = append(b, `,"events":[`...)
	var enc eventEncoder
	for i, d := range p.Events {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = enc.appendEvent(b, d); err != nil {
			return b, fmt.Errorf("event %s seq %d: %w", d.Room, d.Seq, err)
		}
	}
	b = append(b, `],"head":`...)
	b = strconv.AppendInt(b, p.Head, 10)
	b = append(b, `,"more":`...)
	b = strconv.AppendBool(b, p.More)
	b = append(b, `,"reset":`...)
	b = strconv.AppendBool(b, p.Reset)
	return append(b, '}'), nil
}

// eventEncoder appends the events of one answer, one after the other to
// the same buffer. It remembers what repeats from one event to the next:
// a page's events share their room and mostly their type and producer,
// and the events of one commit share their time, whose formatting was a
// third of a page's encoding.
type eventEncoder struct {
	// plain holds the room, type and producer last appended, if they
	// needed no escaping.
	plain [3]string
	// at is the time last appended; its text is b[atStart:atEnd] of the
	// buffer being appended to (atEnd 0: none yet).
	at             time.Time
	atStart, atEnd int
}

// The slots of eventEncoder.plain.
const (
	plainRoom = iota
	plainType
	plainProducer
)

// appendEvent appends d as eventJSON (toEventJSON) marshals. b must be the
// buffer of the previous calls, grown only by appending.
func (e *eventEncoder) appendEvent(b []byte, d domain.Delivery) ([]byte, error) {
	b = append(b, `{"id":`...)
	b = jsonwire.AppendString(b, d.ID)
	b = append(b, `,"room":`...)
	b = e.appendString(b, string(d.Room), plainRoom)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, d.Seq, 10)
	b = append(b, `,"event":`...)
	b = e.appendString(b, d.Type, plainType)
	b = append(b, `,"payload":`...)
	var err error
	if b, err = appendPayload(b, d.Payload); err != nil {
		return b, err
	}
	b = append(b, `,"at":"`...)
	if e.atEnd > 0 && d.OccurredAt.Equal(e.at) {
		// The same instant has the same UTC text. The source lies before
		// len(b), so appending it to b never overwrites it.
		b = append(b, b[e.atStart:e.atEnd]...)
	} else {
		start := len(b)
		if b, err = d.OccurredAt.UTC().AppendText(b); err != nil {
			// As time.Time.MarshalJSON: a year outside [0,9999].
			return b, err
		}
		e.at, e.atStart, e.atEnd = d.OccurredAt, start, len(b)
	}
	b = append(b, `","producer":`...)
	b = e.appendString(b, d.Producer, plainProducer)
	return append(b, '}'), nil
}

// appendString is appendJSONString, skipping the check when s is the
// string last appended in its slot and that needed no escaping.
func (e *eventEncoder) appendString(b []byte, s string, slot int) []byte {
	if s == e.plain[slot] && s != "" {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	if jsonwire.NeedsEscape(s) {
		return jsonwire.AppendString(b, s)
	}
	e.plain[slot] = s
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendPayload appends a payload as encoding/json writes a
// json.RawMessage: compacted. Stored payloads are compact already (the
// store compacts them before appending, and the column holds valid JSON),
// so they are normally copied as they are; anything else goes through
// encoding/json, which compacts it or fails as it would have.
func appendPayload(b, payload []byte) ([]byte, error) {
	if len(payload) > 0 && isCompact(payload) {
		return append(b, payload...), nil
	}
	out, err := marshal(json.RawMessage(payload))
	if err != nil {
		return b, fmt.Errorf("payload: %w", err)
	}
	return append(b, out...), nil
}

// isCompact reports whether JSON text p has no whitespace outside its
// strings. It does not validate p. Strings are skipped a quote at a time,
// so that long string values cost little.
func isCompact(p []byte) bool {
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case ' ', '\t', '\n', '\r':
			return false
		case '"':
			// Find the closing quote: one not preceded by an odd run of
			// backslashes.
			for {
				j := bytes.IndexByte(p[i+1:], '"')
				if j < 0 {
					return false // unterminated; let json.Compact say why
				}
				i += 1 + j
				k := i - 1
				for k >= 0 && p[k] == '\\' {
					k--
				}
				if (i-1-k)%2 == 0 {
					break
				}
			}
		}
	}
	return true
}

// pageSize bounds the encoded size of p from above (unless strings need
// escaping), so that the buffer is sized once: an event's keys,
// punctuation, seq and time take at most 128 bytes.
func pageSize(p roomPage) int {
	n := 64 + len(p.Room)
	for _, d := range p.Events {
		n += 128 + len(d.ID) + len(d.Room) + len(d.Type) + len(d.Payload) + len(d.Producer)
	}
	return n
}

// pageBufs recycles encoding buffers. One holds a whole answer;
// maxPooledBuf keeps the largest answers from pinning their memory.
var pageBufs = sync.Pool{New: func() any { return new([]byte) }}

const maxPooledBuf = 4 << 20

// writeEncoded answers the JSON that encode appends to a (pooled) buffer
// of about size bytes, with status and a Content-Length. If encode fails,
// which only a bug can cause, it answers like writeJSON does.
func (s *Server) writeEncoded(c *gin.Context, status, size int, encode func([]byte) ([]byte, error)) {
	bp := pageBufs.Get().(*[]byte)
	b := *bp
	if cap(b) < size {
		b = make([]byte, 0, size)
	}
	b, err := encode(b[:0])
	if err != nil {
		status = s.encodeFailed(c, err)
		b = append(b[:0], internalJSON...)
	}
	c.Header("Content-Length", strconv.Itoa(len(b)))
	c.Data(status, "application/json; charset=utf-8", b)
	if cap(b) <= maxPooledBuf {
		*bp = b[:0]
		pageBufs.Put(bp)
	}
}
