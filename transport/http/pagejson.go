package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/roomlog/roomlog/domain"
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
	b = appendJSONString(b, string(p.Room))
	b = append(b, `,"events":[`...)
	for i, d := range p.Events {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = appendEvent(b, d); err != nil {
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

// appendEvent appends d as eventJSON (toEventJSON) marshals.
func appendEvent(b []byte, d domain.Delivery) ([]byte, error) {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, d.ID)
	b = append(b, `,"room":`...)
	b = appendJSONString(b, string(d.Room))
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, d.Seq, 10)
	b = append(b, `,"event":`...)
	b = appendJSONString(b, d.Type)
	b = append(b, `,"payload":`...)
	var err error
	if b, err = appendPayload(b, d.Payload); err != nil {
		return b, err
	}
	b = append(b, `,"at":"`...)
	if b, err = d.OccurredAt.UTC().AppendText(b); err != nil {
		// As time.Time.MarshalJSON: a year outside [0,9999].
		return b, err
	}
	b = append(b, `","producer":`...)
	b = appendJSONString(b, d.Producer)
	return append(b, '}'), nil
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

// appendJSONString appends s as a JSON string, as encoding/json does with
// HTML escaping off. Room, type and producer names and event ids are plain
// ASCII and are copied; anything else is left to encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' {
			q, err := marshal(s)
			if err != nil {
				// Unreachable: every Go string marshals.
				panic(fmt.Sprintf("httpapi: marshal string: %v", err))
			}
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
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
		s.logger.ErrorContext(c.Request.Context(), "encode response", attrRoute, route(c), attrError, err)
		status = http.StatusInternalServerError
		b = append(b[:0], `{"error":{"code":"internal","message":"internal error"}}`...)
	}
	c.Header("Content-Length", strconv.Itoa(len(b)))
	c.Data(status, "application/json; charset=utf-8", b)
	if cap(b) <= maxPooledBuf {
		*bp = b[:0]
		pageBufs.Put(bp)
	}
}
