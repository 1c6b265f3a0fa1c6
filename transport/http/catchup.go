package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
)

// errRoomNotFound answers both a room that does not exist and a room the
// caller may not read, so that the two cannot be told apart.
var errRoomNotFound = &domain.Error{Code: domain.CodeNotFound, Message: "room not found"}

// roomPage is one room's catch-up answer. appendRoomPage writes it as
// {"room", "events" (each as eventJSON), "head", "more", "reset"}, in
// that order.
type roomPage struct {
	Room   domain.Room
	Events []domain.Delivery
	// Head is the room's last seq at the time of the read.
	Head int64
	// More is true when events after the last one returned exist.
	More bool
	// Reset is true when the events do not continue the cursor: it was
	// ahead of the head or older than the oldest event the log holds.
	Reset bool
}

// roomError is a multi-room catch-up entry for a room that cannot be read.
type roomError struct {
	Room  string      `json:"room"`
	Error errorDetail `json:"error"`
}

// catchUpEntry is one room of a POST /api/v1/catch-up answer: a page, or
// the error that stands for it.
type catchUpEntry struct {
	page *roomPage
	err  *roomError
}

// appendCatchUp appends the answer to POST /api/v1/catch-up:
// {"rooms":[…]}, each entry a roomPage or a roomError, in the order given
// (sorted by room name).
func appendCatchUp(b []byte, rooms []catchUpEntry) ([]byte, error) {
	b = append(b, `{"rooms":[`...)
	for i, r := range rooms {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if r.page != nil {
			b, err = appendRoomPage(b, *r.page)
		} else {
			var e []byte
			e, err = marshal(r.err)
			b = append(b, e...)
		}
		if err != nil {
			return b, err
		}
	}
	return append(b, "]}"...), nil
}

// roomEvents is GET /api/v1/rooms/{room}/events?after=&limit=.
func (s *Server) roomEvents(c *gin.Context) {
	p, err := s.user(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	// Parameters are checked before the room, so that a bad parameter
	// answers the same whatever the room.
	var errs fieldErrors
	after := afterParam.parse(c, &errs)
	limit := limitParam.parse(c, &errs)
	if len(errs) > 0 {
		s.writeError(c, invalid("invalid query parameters", errs...))
		return
	}
	ctx := c.Request.Context()
	name := c.Param("room")
	readable, err := s.readableRooms(ctx, p, []string{name})
	if err != nil {
		s.writeError(c, err)
		return
	}
	room, ok := readable[name]
	if !ok {
		s.writeError(c, errRoomNotFound)
		return
	}
	pages, err := s.readPages(ctx, map[domain.Room]int64{room: after}, int(limit), maxCatchUpBytes)
	if err != nil {
		s.writeError(c, err)
		return
	}
	page := pages[room]
	s.writeEncoded(c, http.StatusOK, pageSize(page), func(b []byte) ([]byte, error) { return appendRoomPage(b, page) })
}

// catchUp is POST /api/v1/catch-up with {cursors: {room: seq, ...}, limit?}.
func (s *Server) catchUp(c *gin.Context) {
	p, err := s.user(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	cursors, limit, err := s.decodeCatchUp(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	names := make([]string, 0, len(cursors))
	for name := range cursors {
		names = append(names, name)
	}
	slices.Sort(names)
	ctx := c.Request.Context()
	readable, err := s.readableRooms(ctx, p, names)
	if err != nil {
		s.writeError(c, err)
		return
	}
	var pages map[domain.Room]roomPage
	if len(readable) > 0 {
		read := make(map[domain.Room]int64, len(readable))
		for name, room := range readable {
			read[room] = cursors[name]
		}
		// Keep the whole answer bounded; more: true says to ask again.
		perRoom := max(1, min(limit, maxCatchUpRows/len(read)))
		if pages, err = s.readPages(ctx, read, perRoom, max(1, maxCatchUpBytes/len(read))); err != nil {
			s.writeError(c, err)
			return
		}
	}
	entries := make([]catchUpEntry, 0, len(names))
	size := 16
	for _, name := range names {
		if room, ok := readable[name]; ok {
			p := pages[room]
			entries = append(entries, catchUpEntry{page: &p})
			size += pageSize(p)
			continue
		}
		entries = append(entries, catchUpEntry{err: &roomError{Room: name, Error: toBody(errRoomNotFound).Error}})
		size += 96 + len(name)
	}
	s.writeEncoded(c, http.StatusOK, size, func(b []byte) ([]byte, error) { return appendCatchUp(b, entries) })
}

// decodeCatchUp reads and checks a multi-room catch-up body.
func (s *Server) decodeCatchUp(c *gin.Context) (map[string]int64, int, error) {
	tooLarge := &domain.Error{Code: domain.CodeTooLarge, Message: fmt.Sprintf("the request body exceeds %d bytes", maxCatchUpBody)}
	if c.Request.ContentLength > maxCatchUpBody {
		refuseBody(c)
		return nil, 0, tooLarge
	}
	b, err := io.ReadAll(limitBody(c, maxCatchUpBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			refuseBody(c)
			return nil, 0, tooLarge
		}
		return nil, 0, invalid("could not read the request body")
	}
	body, ok := exactObject(b)
	if !ok || !json.Valid(b) {
		return nil, 0, invalid("the body must be a JSON object with no repeated keys")
	}
	m := body.members
	var errs fieldErrors
	for _, k := range body.keys {
		if k != "cursors" && k != "limit" {
			errs.add(shortKey(k), "unknown field")
		}
	}
	limit := DefaultReadLimit
	if raw, ok := m["limit"]; ok {
		if err := json.Unmarshal(raw, &limit); err != nil || limit < 1 || limit > MaxCatchUpLimit {
			errs.add("limit", fmt.Sprintf("must be an integer from 1 to %d", MaxCatchUpLimit))
		}
	}
	cursors := map[string]int64{}
	rawCursors, ok := m["cursors"]
	if !ok {
		errs.add("cursors", "is required")
	} else if cs, ok := exactObject(rawCursors); !ok {
		errs.add("cursors", "must be an object of room: seq with no repeated rooms")
	} else {
		switch {
		case len(cs.keys) == 0:
			errs.add("cursors", "at least one room is required")
		case len(cs.keys) > MaxCatchUpRooms:
			errs.add("cursors", fmt.Sprintf("at most %d rooms", MaxCatchUpRooms))
		default:
			for _, name := range cs.keys {
				var seq int64
				if err := json.Unmarshal(cs.members[name], &seq); err != nil || seq < 0 {
					errs.add("cursors."+shortKey(name), "must be a non-negative integer seq")
					continue
				}
				cursors[name] = seq
			}
		}
	}
	if len(errs) > 0 {
		return nil, 0, invalid("invalid catch-up request", errs...)
	}
	return cursors, limit, nil
}

// readableRooms returns, by requested name, the rooms of names that p may
// read: valid room names that domain.CanRead allows, with membership of
// shared rooms looked up in one query. Names missing from the result are to
// be answered exactly like rooms that do not exist.
func (s *Server) readableRooms(ctx context.Context, p domain.Principal, names []string) (map[string]domain.Room, error) {
	rooms := make(map[string]domain.Room, len(names))
	var shared []domain.Room
	// Admins and auditors read every room; only others need membership.
	needMembership := !p.IsAdmin() && !p.HasRole(domain.RoleAuditor)
	for _, name := range names {
		r, err := domain.ParseRoom(name)
		if err != nil {
			continue
		}
		rooms[name] = r
		if needMembership && domain.NeedsMembership(r) {
			shared = append(shared, r)
		}
	}
	member := map[domain.Room]bool{}
	if len(shared) > 0 {
		got, err := s.store.MemberRooms(ctx, p.UserID, shared)
		if err != nil {
			return nil, err
		}
		for _, r := range got {
			member[r] = true
		}
	}
	out := make(map[string]domain.Room, len(rooms))
	for name, r := range rooms {
		if domain.CanRead(p, r, member[r]) == nil {
			out[name] = r
		}
	}
	return out, nil
}

// readPages reads every room after its cursor (one round trip), up to
// limit events and maxBytes of payload per room, and decides each room's
// reset. A cursor ahead of the head is re-read from the start of the room
// in a second round trip, which only such rooms need.
func (s *Server) readPages(ctx context.Context, cursors map[domain.Room]int64, limit, maxBytes int) (map[domain.Room]roomPage, error) {
	opts := &eventstore.ReadOptions{MaxBytes: maxBytes}
	pages, err := s.store.ReadRooms(ctx, cursors, limit, opts)
	if err != nil {
		return nil, err
	}
	out := make(map[domain.Room]roomPage, len(pages))
	restart := map[domain.Room]int64{}
	for _, pg := range pages {
		after := cursors[pg.Room]
		rp := toRoomPage(pg)
		switch {
		case after > pg.Head:
			// Ahead of the head: the log was restored or the cursor came
			// from elsewhere. Start the room over.
			rp.Reset = true
			if pg.Head > 0 {
				restart[pg.Room] = 0
			}
		case len(pg.Events) > 0 && pg.Events[0].Seq != after+1:
			// The log no longer holds the events right after the cursor:
			// these start at the oldest event it holds.
			rp.Reset = true
		case len(pg.Events) == 0 && after < pg.Head:
			// Nothing after the cursor is held although the head is
			// further on.
			rp.Reset = true
		}
		out[pg.Room] = rp
	}
	if len(restart) > 0 {
		again, err := s.store.ReadRooms(ctx, restart, limit, opts)
		if err != nil {
			return nil, err
		}
		for _, pg := range again {
			rp := toRoomPage(pg)
			rp.Reset = true
			out[pg.Room] = rp
		}
	}
	return out, nil
}

func toRoomPage(p eventstore.Page) roomPage {
	return roomPage{Room: p.Room, Events: p.Events, Head: p.Head, More: p.More}
}

// intParam is an integer query parameter with a default and bounds.
type intParam struct {
	name    string
	def, lo int64
	hi      int64 // < 0: no upper bound
}

// The catch-up query parameters.
var (
	afterParam = intParam{name: "after", def: 0, lo: 0, hi: -1}
	limitParam = intParam{name: "limit", def: DefaultReadLimit, lo: 1, hi: MaxCatchUpLimit}
)

// parse reads the parameter from c, adding any problem to errs.
func (p intParam) parse(c *gin.Context, errs *fieldErrors) int64 {
	raw, ok := c.GetQuery(p.name)
	if !ok {
		return p.def
	}
	n, err := strconv.ParseInt(raw, 10, 64)
	switch {
	case err != nil, n < p.lo, p.hi >= 0 && n > p.hi:
		if p.hi >= 0 {
			errs.add(p.name, fmt.Sprintf("must be an integer from %d to %d", p.lo, p.hi))
		} else {
			errs.add(p.name, fmt.Sprintf("must be an integer of at least %d", p.lo))
		}
		return p.def
	}
	return n
}
