package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
)

// publishEvent is one event of a publish request, decoded but not yet
// validated against the catalogue.
type publishEvent struct {
	event   string
	rooms   []domain.Room
	payload json.RawMessage
	key     string // the idempotency key ("id")
	oneRoom bool   // the request said "room", not "rooms"
}

// publishResponse is the answer to a publish, for one event or a batch.
type publishResponse struct {
	Events []publishedEvent `json:"events"`
}

type publishedEvent struct {
	ID         string         `json:"id"`
	Deliveries []deliveryJSON `json:"deliveries"`
}

type deliveryJSON struct {
	Room domain.Room `json:"room"`
	Seq  int64       `json:"seq"`
}

// publish is POST /api/v1/events.
func (s *Server) publish(c *gin.Context) {
	producer, err := s.producer(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	limit := int64(s.cfg.MaxBodyBytes)
	if c.Request.ContentLength > limit {
		refuseBody(c)
		s.writeError(c, s.bodyTooLarge())
		return
	}
	events, err := s.decodePublish(limitBody(c, limit))
	if err != nil {
		if domain.ErrorCode(err) == domain.CodeTooLarge {
			refuseBody(c)
		}
		s.writeError(c, err)
		return
	}
	reqs := make([]eventstore.AppendRequest, len(events))
	for i, e := range events {
		reqs[i] = eventstore.AppendRequest{
			Type:           e.event,
			Rooms:          e.rooms,
			Payload:        e.payload,
			Producer:       producer,
			IdempotencyKey: e.key,
		}
	}
	results, err := s.store.AppendBatch(c.Request.Context(), reqs)
	if err != nil {
		s.writeError(c, err)
		return
	}
	resp := publishResponse{Events: make([]publishedEvent, len(results))}
	replayed := true
	for i, r := range results {
		replayed = replayed && r.Replayed
		ds := make([]deliveryJSON, len(r.Deliveries))
		for j, d := range r.Deliveries {
			ds[j] = deliveryJSON{Room: d.Room, Seq: d.Seq}
		}
		resp.Events[i] = publishedEvent{ID: r.EventID, Deliveries: ds}
	}
	status := http.StatusCreated
	if replayed {
		// Every event repeated an earlier publish: nothing new was written.
		status = http.StatusOK
	}
	s.writeJSON(c, status, resp)
}

// limitBody returns the request body, cut off after limit bytes. Reading
// past the limit fails with *http.MaxBytesError and makes net/http close the
// connection after the answer, so the rest of a huge body is never read.
func limitBody(c *gin.Context, limit int64) io.Reader {
	// MaxBytesReader tells the server to close the connection through a
	// method of net/http's own ResponseWriter, which gin's wrapper hides.
	var w http.ResponseWriter = c.Writer
	if u, ok := w.(interface{ Unwrap() http.ResponseWriter }); ok {
		w = u.Unwrap()
	}
	return http.MaxBytesReader(w, c.Request.Body, limit)
}

// refuseBody asks net/http to close the connection after the answer
// instead of reading the rest of a body that is over its limit.
func refuseBody(c *gin.Context) { c.Header("Connection", "close") }

func (s *Server) bodyTooLarge() error {
	return &domain.Error{Code: domain.CodeTooLarge, Message: fmt.Sprintf("the request body exceeds %d bytes", s.cfg.MaxBodyBytes)}
}

// readError turns a failure to read or tokenize the body into an API error.
func (s *Server) readError(err error) error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return s.bodyTooLarge()
	}
	return invalid("the body is not well-formed JSON")
}

// fieldErrors collects field errors up to domain.MaxFieldErrors.
type fieldErrors []domain.FieldError

func (f *fieldErrors) add(name, message string) {
	if len(*f) < domain.MaxFieldErrors {
		*f = append(*f, field(name, message))
	}
}

// decodePublish reads a publish body: one event {event, rooms | room,
// payload, id?} or a batch {events: [...]}. Keys are matched exactly
// (encoding/json would match "Event" to "event") and may not repeat.
//
// The body (at most MaxBodyBytes) is read whole. A single event or a batch
// that domain.ScanObject and ScanArray vouch for is split into its members
// in one pass; anything else (an error of the body's shape, an unusual
// body) goes to decodePublishStream, which gives every error its message.
func (s *Server) decodePublish(r io.Reader) ([]publishEvent, error) {
	body, err := io.ReadAll(r)
	if err != nil {
		// The stream decoder sees what was read, then the error, as if it
		// had read the body itself: a malformed start is still reported as
		// such, not as the size limit.
		return s.decodePublishStream(io.MultiReader(bytes.NewReader(body), errorReader{err}))
	}
	if single, ok := scanObject(body); ok {
		events, batch := single.members["events"]
		if !batch {
			return s.singleEvent(single)
		}
		if len(single.keys) == 1 {
			if evs, ok, err := s.scanBatch(events); ok {
				return evs, err
			}
		}
	}
	return s.decodePublishStream(bytes.NewReader(body))
}

// scanObject splits raw into its members if domain.ScanObject vouches for
// it: a well-formed object whose keys are plain ASCII and not repeated.
func scanObject(raw []byte) (object, bool) {
	o := object{members: make(map[string]json.RawMessage, 4)}
	ok := domain.ScanObject(raw, func(k, v []byte) {
		key := string(k)
		o.members[key] = v
		o.keys = append(o.keys, key)
	})
	return o, ok
}

// scanBatch decodes a batch's events array in one pass. It declines (ok
// false) whatever decodeBatch would answer with an error of its own: not
// an array, no events or more than MaxBatchEvents, an element that is not
// an object domain.ScanObject vouches for. Errors from the events' members
// are the ones decodeBatch gives, in the same order.
func (s *Server) scanBatch(raw []byte) (evs []publishEvent, ok bool, err error) {
	var elems [][]byte
	if !domain.ScanArray(raw, func(e []byte) { elems = append(elems, e) }) || len(elems) == 0 || len(elems) > MaxBatchEvents {
		return nil, false, nil
	}
	objs := make([]object, len(elems))
	for i, e := range elems {
		if objs[i], ok = scanObject(e); !ok {
			return nil, false, nil
		}
	}
	var errs fieldErrors
	evs = make([]publishEvent, len(objs))
	for i, o := range objs {
		if evs[i], err = s.parseEvent(fmt.Sprintf("events[%d].", i), o, &errs); err != nil {
			return nil, true, err
		}
	}
	if len(errs) > 0 {
		return nil, true, invalid("invalid events", errs...)
	}
	return evs, true, nil
}

// errorReader fails every read with err.
type errorReader struct{ err error }

func (e errorReader) Read([]byte) (int, error) { return 0, e.err }

// decodePublishStream decodes a publish body from r token by token. It
// decodes a batch element by element and stops at the first payload over
// the limit or at the first event past MaxBatchEvents (the body itself is
// bounded by MaxBodyBytes as it is read).
func (s *Server) decodePublishStream(r io.Reader) ([]publishEvent, error) {
	dec := json.NewDecoder(r)
	if err := expectDelim(dec, '{'); err != nil {
		return nil, s.bodyShapeError(err, "the body must be a JSON object")
	}
	var (
		single    = object{members: map[string]json.RawMessage{}}
		batch     []publishEvent
		hasEvents bool
		errs      fieldErrors
	)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, s.readError(err)
		}
		key, _ := tok.(string) // object keys are always strings
		if _, dup := single.members[key]; dup || (key == "events" && hasEvents) {
			return nil, invalid("invalid request", field(shortKey(key), "is repeated"))
		}
		if key == "events" {
			hasEvents = true
			if batch, err = s.decodeBatch(dec, &errs); err != nil {
				return nil, err
			}
			continue
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, s.readError(err)
		}
		single.members[key] = raw
		single.keys = append(single.keys, key)
	}
	if err := expectDelim(dec, '}'); err != nil {
		return nil, s.readError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, s.readError(err)
		}
		return nil, invalid("the body must hold exactly one JSON object")
	}
	if hasEvents {
		for _, k := range single.keys {
			errs.add(shortKey(k), "a batch body has only the key events")
		}
		if len(errs) > 0 {
			return nil, invalid("invalid events", errs...)
		}
		return batch, nil
	}
	return s.singleEvent(single)
}

// singleEvent parses the members of a one-event body.
func (s *Server) singleEvent(single object) ([]publishEvent, error) {
	var errs fieldErrors
	ev, err := s.parseEvent("", single, &errs)
	if err != nil {
		return nil, err
	}
	if len(errs) > 0 {
		return nil, invalid("invalid event", errs...)
	}
	return []publishEvent{ev}, nil
}

// decodeBatch reads the array of a batch body.
func (s *Server) decodeBatch(dec *json.Decoder, errs *fieldErrors) ([]publishEvent, error) {
	if err := expectDelim(dec, '['); err != nil {
		return nil, s.bodyShapeError(err, "invalid request", field("events", "must be an array of events"))
	}
	var out []publishEvent
	for i := 0; dec.More(); i++ {
		if i == MaxBatchEvents {
			return nil, invalid("invalid request", field("events", fmt.Sprintf("at most %d events per batch", MaxBatchEvents)))
		}
		prefix := fmt.Sprintf("events[%d].", i)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, s.readError(err)
		}
		obj, ok := exactObject(raw)
		if !ok {
			errs.add(strings.TrimSuffix(prefix, "."), "must be a JSON object with no repeated keys")
			out = append(out, publishEvent{})
			continue
		}
		ev, err := s.parseEvent(prefix, obj, errs)
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
	if err := expectDelim(dec, ']'); err != nil {
		return nil, s.readError(err)
	}
	if len(out) == 0 {
		errs.add("events", "at least one event is required")
	}
	return out, nil
}

// parseEvent reads one event's members. Structural problems are added to
// errs; only a payload over the limit is returned, as a too_large error,
// since it answers 413 rather than 400.
func (s *Server) parseEvent(prefix string, obj object, errs *fieldErrors) (publishEvent, error) {
	var ev publishEvent
	m := obj.members
	before := len(*errs)
	for _, k := range obj.keys {
		switch k {
		case "event", "room", "rooms", "payload", "id":
		default:
			errs.add(prefix+shortKey(k), "unknown field")
		}
	}
	if raw, ok := m["payload"]; ok && len(bytes.TrimSpace(raw)) > s.cfg.MaxPayloadBytes {
		return ev, &domain.Error{
			Code:    domain.CodeTooLarge,
			Message: "payload too large",
			Fields:  []domain.FieldError{field(prefix+"payload", fmt.Sprintf("must be at most %d bytes", s.cfg.MaxPayloadBytes))},
		}
	}
	ev.payload = m["payload"]
	if raw, ok := m["event"]; ok {
		if err := json.Unmarshal(raw, &ev.event); err != nil {
			errs.add(prefix+"event", "must be a string")
		}
	} else {
		errs.add(prefix+"event", "is required")
	}
	rawRoom, hasRoom := m["room"]
	rawRooms, hasRooms := m["rooms"]
	switch {
	case hasRoom && hasRooms:
		errs.add(prefix+"room", "give room or rooms, not both")
	case hasRoom:
		var r string
		if err := json.Unmarshal(rawRoom, &r); err != nil {
			errs.add(prefix+"room", "must be a string")
		}
		ev.rooms, ev.oneRoom = []domain.Room{domain.Room(r)}, true
	case hasRooms:
		var rs []string
		if err := json.Unmarshal(rawRooms, &rs); err != nil {
			errs.add(prefix+"rooms", "must be an array of strings")
		}
		for _, r := range rs {
			ev.rooms = append(ev.rooms, domain.Room(r))
		}
	default:
		errs.add(prefix+"rooms", "room or rooms is required")
	}
	if raw, ok := m["id"]; ok {
		if err := json.Unmarshal(raw, &ev.key); err != nil || !validKey(ev.key) {
			errs.add(prefix+"id", fmt.Sprintf("must be a string of 1 to %d printable ASCII characters without spaces", eventstore.MaxIdempotencyKeyLen))
		}
	}
	if len(*errs) > before {
		return ev, nil
	}
	if err := domain.ValidatePublish(ev.event, ev.rooms, ev.payload); err != nil {
		var de *domain.Error
		if !errors.As(err, &de) {
			return ev, err
		}
		for _, f := range de.Fields {
			name := f.Field
			if ev.oneRoom && name == "rooms" {
				name = "room"
			}
			errs.add(prefix+name, f.Message)
		}
	}
	return ev, nil
}

// validKey reports whether k may be an idempotency key.
func validKey(k string) bool {
	if len(k) == 0 || len(k) > eventstore.MaxIdempotencyKeyLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] <= ' ' || k[i] > '~' {
			return false
		}
	}
	return true
}

// expectDelim reads the next token and checks that it is d.
func expectDelim(dec *json.Decoder, d json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if got, ok := tok.(json.Delim); !ok || got != d {
		return errWrongToken
	}
	return nil
}

var errWrongToken = errors.New("unexpected JSON token")

// bodyShapeError reports a body of the wrong shape as invalid, and a read
// failure (such as the size limit) as readError does.
func (s *Server) bodyShapeError(err error, message string, fields ...domain.FieldError) error {
	if errors.Is(err, errWrongToken) {
		return invalid(message, fields...)
	}
	return s.readError(err)
}

// object is a JSON object's members by exact key, and the keys in order.
type object struct {
	members map[string]json.RawMessage
	keys    []string
}

// exactObject decodes a JSON object by exact key (encoding/json would match
// "Event" to a field "event") and reports false if raw is not an object or
// repeats a key.
func exactObject(raw json.RawMessage) (object, bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if expectDelim(dec, '{') != nil {
		return object{}, false
	}
	o := object{members: map[string]json.RawMessage{}}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return object{}, false
		}
		key, _ := tok.(string)
		if _, dup := o.members[key]; dup {
			return object{}, false
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return object{}, false
		}
		o.members[key] = v
		o.keys = append(o.keys, key)
	}
	return o, true
}

// shortKey cuts a client-chosen key for use in an error's field name.
func shortKey(k string) string {
	const limit = 64
	if len(k) > limit {
		k = k[:limit] + "…"
	}
	return strings.ToValidUTF8(k, "?")
}
