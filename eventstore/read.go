package eventstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/roomlog/roomlog/domain"
)

// MaxReadLimit caps one page of a read.
const MaxReadLimit = 1000

// MaxRoomReadLimit caps one room's page in ReadRoom and ReadRooms, which
// catch-up reads in larger pages than other reads.
const MaxRoomReadLimit = 10_000

// ReadOptions bound a ReadRooms answer beyond its row limit.
type ReadOptions struct {
	// MaxBytes, if positive, bounds each page's payload bytes: a page ends
	// once its payloads add up to MaxBytes or more (so they exceed it by
	// less than one payload), and then has More set. A page always holds
	// its first event, however large, so that a reader always advances.
	// It bounds the memory and the answer, and what PostgreSQL sends: a
	// bounded read reads its rows in steps sized to the bytes still
	// wanted (readRoomsStepped), so it reads at most the first step
	// (firstStep rows per room) or one step past the bound.
	MaxBytes int
}

// Page is a slice of one room's events.
type Page struct {
	// Room is the room read.
	Room domain.Room
	// Events are the room's deliveries after the cursor, ascending by seq.
	Events []domain.Delivery
	// Head is the room's last seq at the time of the read (0 for a room
	// that has no events).
	Head int64
	// More reports whether events after the last returned one exist.
	More bool
}

const deliveryColumns = `e.id, e.txid::text, e.event_id::text, e.room, e.seq, e.type, e.payload, e.producer, e.created_at`

func scanDelivery(row pgx.Row) (domain.Delivery, error) {
	var d domain.Delivery
	var txid, room string
	var payload []byte
	if err := row.Scan(&d.Position.ID, &txid, &d.ID, &room, &d.Seq, &d.Type, &payload, &d.Producer, &d.OccurredAt); err != nil {
		return d, err
	}
	t, err := strconv.ParseUint(txid, 10, 64)
	if err != nil {
		return d, fmt.Errorf("parse txid %q: %w", txid, err)
	}
	d.Position.Txid = t
	d.Room = domain.Room(room)
	d.Payload = payload
	d.OccurredAt = d.OccurredAt.UTC()
	return d, nil
}

func clampLimit(limit int) int {
	if limit <= 0 || limit > MaxReadLimit {
		return MaxReadLimit
	}
	return limit
}

// Head returns a room's last seq, 0 if the room has no events.
func (s *Store) Head(ctx context.Context, room domain.Room) (int64, error) {
	var seq int64
	err := s.pool.QueryRow(ctx, "SELECT coalesce((SELECT seq FROM room_heads WHERE room = $1), 0)", string(room)).Scan(&seq)
	if err != nil {
		return 0, classify("head", err)
	}
	return seq, nil
}

// roomNames returns rooms as the text[] argument of a query.
func roomNames(rooms []domain.Room) []string {
	names := make([]string, len(rooms))
	for i, r := range rooms {
		names[i] = string(r)
	}
	return names
}

// Heads returns the last seq of each of rooms that has events, in one
// query; a room without events is absent from the map.
func (s *Store) Heads(ctx context.Context, rooms []domain.Room) (map[domain.Room]int64, error) {
	names := roomNames(rooms)
	rows, err := s.pool.Query(ctx, "SELECT room, seq FROM room_heads WHERE room = ANY($1::text[])", names)
	if err != nil {
		return nil, classify("heads", err)
	}
	heads := make(map[domain.Room]int64, len(rooms))
	var room string
	var seq int64
	if _, err := pgx.ForEachRow(rows, []any{&room, &seq}, func() error {
		heads[domain.Room(room)] = seq
		return nil
	}); err != nil {
		return nil, classify("heads", err)
	}
	return heads, nil
}

// ReadRoom returns up to limit of room's events with seq > after, and the
// room's head. Because a room's rows commit in seq order, the answer is
// always a gap-free prefix of what follows after.
func (s *Store) ReadRoom(ctx context.Context, room domain.Room, after int64, limit int) (Page, error) {
	pages, err := s.ReadRooms(ctx, map[domain.Room]int64{room: after}, limit, nil)
	if err != nil {
		return Page{}, err
	}
	return pages[0], nil
}

// ReadRooms reads many rooms, each after its own cursor, in one database
// round trip and one snapshot: heads and events agree. limit applies per
// room, from 1 to MaxRoomReadLimit (0 or more means MaxRoomReadLimit);
// opts, which may be nil, can bound each page further. Pages come back
// sorted by room name.
//
// Catch-up reads whole pages of thousands of rows per request, so the scan
// is written to allocate per page, not per row: columns are scanned as
// driver bytes, payloads are copied into shared chunks, event ids into one
// string, and type and producer names are interned.
func (s *Store) ReadRooms(ctx context.Context, cursors map[domain.Room]int64, limit int, opts *ReadOptions) ([]Page, error) {
	if limit <= 0 || limit > MaxRoomReadLimit {
		limit = MaxRoomReadLimit
	}
	maxBytes := int64(math.MaxInt64)
	if opts != nil && opts.MaxBytes > 0 {
		maxBytes = int64(opts.MaxBytes)
	}
	rooms := make([]string, 0, len(cursors))
	afters := make([]int64, 0, len(cursors))
	for r, a := range cursors {
		rooms = append(rooms, string(r))
		afters = append(afters, max(a, 0))
	}
	var pages []Page
	var ordered bool
	var err error
	if maxBytes < math.MaxInt64 {
		pages, ordered, _, err = s.readRoomsStepped(ctx, rooms, afters, limit, maxBytes)
	} else {
		pages, ordered, err = s.readRooms(ctx, readRoomsSQL, rooms, afters, limit, maxBytes)
	}
	if err == nil && !ordered {
		// Never seen: a plan that did not keep each room's rows in seq
		// order. Read again, sorted by the server.
		pages, _, err = s.readRooms(ctx, readRoomsSortedSQL, rooms, afters, limit, maxBytes)
	}
	if err != nil {
		return nil, err
	}
	slices.SortFunc(pages, func(a, b Page) int { return cmp.Compare(a.Room, b.Room) })
	return pages, nil
}

// readRoomsSQL reads each cursor's room after it, up to its limit
// ($3::int8[], one per room) and its head. It has no ORDER BY: each
// room's rows come out of the index on (room, seq) in seq order already,
// and sorting them in the server cost more than checking the order in
// readRooms. The byte bound is applied in Go, as the rows arrive, and by
// reading them in steps (readRoomsStepped): a running sum in SQL (a window
// over the payloads' lengths) doubled the query's time.
//
// txid and event_id come in binary (8 and 16 bytes) rather than cast to
// text: PostgreSQL's text output of 10,000 of each was a tenth of the
// query's time, and the Go side formats the UUID at least as cheaply.
const readRoomsSQL = `
	SELECT c.ord, c.head, ` + roomPageColumns + `
	FROM (
		SELECT u.*, coalesce(h.seq, 0) AS head
		FROM unnest($1::text[], $2::int8[], $3::int8[]) WITH ORDINALITY AS u(room, after, lim, ord)
		LEFT JOIN room_heads h ON h.room = u.room
	) c` + roomPageJoin

// readRoomsMoreSQL reads readRoomsStepped's later steps: each room after
// its cursor, up to its limit, and up to the head the first step read
// ($4::int8[]), not the head of now. Every event up to a head that a
// snapshot saw had committed by then (a head moves in the transaction
// that inserts its events), and the log's rows are never updated and
// never removed after a reader's cursor (triggers refuse UPDATE, DELETE
// and TRUNCATE; at most the oldest events are archived away by hand), so
// every later statement reads those same events: the steps agree as one
// snapshot would, without holding a transaction open between them.
const readRoomsMoreSQL = `
	SELECT c.ord, c.head, ` + roomPageColumns + `
	FROM unnest($1::text[], $2::int8[], $3::int8[], $4::int8[]) WITH ORDINALITY AS c(room, after, lim, head, ord)` + roomPageJoin

// roomPageColumns and roomPageJoin are what readRoomsSQL and
// readRoomsMoreSQL share: the events of each cursor c after c.after, up
// to c.head, at most c.lim.
const (
	roomPageColumns = `e.id, e.txid, e.event_id, e.seq, e.type, e.payload, e.producer, e.created_at`
	roomPageJoin    = `
	LEFT JOIN LATERAL (
		SELECT * FROM events e
		WHERE e.room = c.room AND e.seq > c.after AND e.seq <= c.head
		ORDER BY e.seq LIMIT c.lim
	) e ON true`
)

// readRoomsSortedSQL is readRoomsSQL with the order made explicit.
const readRoomsSortedSQL = readRoomsSQL + ` ORDER BY c.ord, e.seq`

// readRooms runs query and builds one page per room, in the order of
// rooms, from every row it returns (see roomsReader). ordered is false if
// some room's rows did not arrive in seq order; the pages are then not to
// be used.
func (s *Store) readRooms(ctx context.Context, query string, rooms []string, afters []int64, limit int, maxBytes int64) (pages []Page, ordered bool, err error) {
	limits := make([]int64, len(rooms))
	for i := range limits {
		limits[i] = int64(limit)
	}
	rows, err := s.pool.Query(ctx, query, rooms, afters, limits)
	if err != nil {
		return nil, false, classify("read rooms", err)
	}
	r := newRoomsReader(rooms, afters, limit, maxBytes)
	if ordered, err = r.read(rows); err != nil || !ordered {
		return nil, ordered, err
	}
	pages, err = r.finish()
	return pages, err == nil, err
}

// readRoomsStepped is readRooms for a byte-bounded read. It reads in
// steps: first up to firstStep rows of every room (readRoomsSQL);
// then, for each room that may have more and whose page is not full, as
// many rows as would fill the bytes its page still has room for at the
// average payload size it has seen, a quarter more (readRoomsMoreSQL, up
// to the heads of the first step); and so on. PostgreSQL then sends the
// rows the pages keep and at most one step more, instead of every row up
// to the limit: 10,000 rows of 64 KiB payloads are about 625 MiB for a
// page of 4 MiB. Each step is a plain query, whose rows stream while
// PostgreSQL produces them (a cursor's FETCH collects its rows first,
// and made a page of 10,000 events 40% slower). A read that the first
// step completes costs one query, as readRooms does. It also returns how
// many rows it read.
func (s *Store) readRoomsStepped(ctx context.Context, rooms []string, afters []int64, limit int, maxBytes int64) (pages []Page, ordered bool, read int, err error) {
	r := newRoomsReader(rooms, afters, limit, maxBytes)
	stepRooms, stepAfters := rooms, afters
	stepLimits := make([]int64, len(rooms))
	r.index = make([]int, len(rooms))
	for i := range rooms {
		r.index[i], stepLimits[i] = i, int64(min(limit, firstStep))
	}
	var heads []int64
	for {
		clear(r.stepRows)
		var rows pgx.Rows
		if heads == nil {
			rows, err = s.pool.Query(ctx, readRoomsSQL, stepRooms, stepAfters, stepLimits)
		} else {
			rows, err = s.pool.Query(ctx, readRoomsMoreSQL, stepRooms, stepAfters, stepLimits, heads)
		}
		if err != nil {
			return nil, false, r.rows, classify("read rooms", err)
		}
		if ordered, err = r.read(rows); err != nil || !ordered {
			return nil, ordered, r.rows, err
		}
		// A room that returned fewer rows than its step asked for has
		// none left (up to the limit); one that returned as many may.
		var nextRooms []string
		var nextAfters, nextLimits, nextHeads []int64
		var nextIndex []int
		for k, i := range r.index {
			if r.done[i] {
				continue
			}
			if int64(r.stepRows[i]) < stepLimits[k] || r.rowsOf[i] >= limit {
				r.done[i] = true
				continue
			}
			nextRooms = append(nextRooms, rooms[i])
			nextAfters = append(nextAfters, r.last[i])
			nextLimits = append(nextLimits, int64(min(limit-r.rowsOf[i], r.nextStep(i))))
			nextHeads = append(nextHeads, r.pages[i].Head)
			nextIndex = append(nextIndex, i)
		}
		if len(nextRooms) == 0 {
			break
		}
		stepRooms, stepAfters, stepLimits, heads, r.index = nextRooms, nextAfters, nextLimits, nextHeads, nextIndex
	}
	pages, err = r.finish()
	return pages, err == nil, r.rows, err
}

// firstStep is readRoomsStepped's first step: small enough that a page
// of the largest payloads (64 KiB by default) costs at most a few times
// itself, large enough that the usual catch-up of a client that was away
// briefly is one query.
const firstStep = 256

// roomsReader builds ReadRooms' pages from rows as they arrive, in one
// result or over several steps (readRoomsStepped). A page keeps its rows while their
// payloads add up to less than maxBytes, and skips the rest.
type roomsReader struct {
	rooms    []string
	afters   []int64
	limit    int
	maxBytes int64
	pages    []Page
	// Per page: whether a row was seen, the last seq seen, the payload
	// bytes kept, and whether no more of its rows can be kept.
	seen []bool
	last []int64
	kept []int64
	done []bool
	// rowsOf counts each page's rows (kept or not), stepRows those of
	// the current step; index maps a row's cursor (ord) to its page when
	// a step reads only some of the rooms (nil: the same).
	rowsOf, stepRows []int
	index            []int
	rows             int // rows read, kept or not
	sc               pageScanner
	// Scan targets, declared once with the argument slice: they escape
	// to the heap, so declaring them per row would allocate on every row.
	ord, headSeq           int64
	id, seq                pgtype.Int8
	txid                   pgtype.Uint64
	evID                   pgtype.UUID
	typ, payload, producer pgtype.DriverBytes
	at                     pgtype.Timestamptz
	dest                   []any
}

func newRoomsReader(rooms []string, afters []int64, limit int, maxBytes int64) *roomsReader {
	r := &roomsReader{
		rooms: rooms, afters: afters, limit: limit, maxBytes: maxBytes,
		pages:  make([]Page, len(rooms)),
		seen:   make([]bool, len(rooms)),
		last:   make([]int64, len(rooms)),
		kept:   make([]int64, len(rooms)),
		done:   make([]bool, len(rooms)),
		rowsOf: make([]int, len(rooms)), stepRows: make([]int, len(rooms)),
	}
	r.dest = []any{&r.ord, &r.headSeq, &r.id, &r.txid, &r.evID, &r.seq, &r.typ, &r.payload, &r.producer, &r.at}
	return r
}

// read adds rows to the pages and closes rows. It reports false if a
// room's rows came out of seq order.
func (r *roomsReader) read(rows pgx.Rows) (ordered bool, err error) {
	defer rows.Close()
	for rows.Next() {
		r.rows++
		if err := rows.Scan(r.dest...); err != nil {
			return false, classify("read rooms: scan", err)
		}
		i := int(r.ord) - 1
		if r.index != nil {
			if i < 0 || i >= len(r.index) {
				return false, fmt.Errorf("read rooms: row for cursor %d of %d", r.ord, len(r.index))
			}
			i = r.index[i]
		}
		if i < 0 || i >= len(r.pages) {
			return false, fmt.Errorf("read rooms: row for cursor %d of %d", r.ord, len(r.pages))
		}
		p := &r.pages[i]
		if !r.seen[i] {
			r.seen[i] = true
			p.Room, p.Head = domain.Room(r.rooms[i]), r.headSeq
			// The rows to expect, at most: as many as the head is ahead
			// of the cursor.
			n := int(min(max(r.headSeq-r.afters[i], 0), int64(r.limit)))
			p.Events = make([]domain.Delivery, 0, n)
			r.sc.grow(n)
		}
		if !r.id.Valid || !r.seq.Valid || !r.at.Valid || !r.txid.Valid || !r.evID.Valid {
			r.done[i] = true // a room with nothing after its cursor
			continue
		}
		if r.seq.Int64 <= r.last[i] {
			return false, nil
		}
		r.last[i] = r.seq.Int64
		r.rowsOf[i]++
		r.stepRows[i]++
		if len(p.Events) > 0 && r.kept[i] >= r.maxBytes {
			continue // over the bound: the page ends before this row
		}
		r.kept[i] += int64(len(r.payload))
		if r.kept[i] >= r.maxBytes {
			r.done[i] = true
		}
		r.sc.addID(r.evID.Bytes, i, len(p.Events))
		p.Events = append(p.Events, domain.Delivery{
			Event: domain.Event{
				Type:       r.sc.intern(r.typ),
				Payload:    r.sc.payload(r.payload),
				Producer:   r.sc.intern(r.producer),
				OccurredAt: r.at.Time.UTC(),
			},
			Room: p.Room, Seq: r.seq.Int64, Position: domain.Position{Txid: r.txid.Uint64, ID: r.id.Int64},
		})
	}
	if err := rows.Err(); err != nil {
		return false, classify("read rooms", err)
	}
	return true, nil
}

// nextStep sizes page i's next step: the rows that would fill the bytes
// it still has room for at the average payload size it kept so far, plus
// a quarter, and at least firstStep.
func (r *roomsReader) nextStep(i int) int {
	n := int64(len(r.pages[i].Events))
	if n == 0 || r.kept[i] == 0 {
		return MaxRoomReadLimit
	}
	avg := max(r.kept[i]/n, 1)
	room := max(r.maxBytes-r.kept[i], 0)
	est := room/avg + room/avg/4 + 1
	return int(max(min(est, MaxRoomReadLimit), firstStep))
}

// finish completes the pages.
func (r *roomsReader) finish() ([]Page, error) {
	r.sc.setIDs(r.pages)
	for i := range r.pages {
		p := &r.pages[i]
		if !r.seen[i] {
			// Unreachable: the outer side of the joins yields every cursor.
			return nil, fmt.Errorf("read rooms: no row for room %q", r.rooms[i])
		}
		// A room's seqs have no gaps up to its head (old events may have
		// been dropped, never later ones), so events after the last one
		// returned exist exactly when it is short of the head.
		p.More = len(p.Events) > 0 && p.Events[len(p.Events)-1].Seq < p.Head
	}
	return r.pages, nil
}

// pageScanner holds the shared memory of one ReadRooms answer.
type pageScanner struct {
	// chunk is where payloads are copied; a full chunk is left to the
	// payloads that point into it.
	chunk []byte
	// ids holds every row's event id, in row order, and refs where each
	// ends and which event it belongs to.
	ids  []byte
	refs []idRef
	// names interns type and producer names.
	names map[string]string
}

// idRef places one event id of pageScanner.ids.
type idRef struct{ end, page, event int }

// Payloads are copied into chunks that start small (a replay of a few
// events should not cost 64 KiB) and double up to maxPayloadChunk.
const (
	minPayloadChunk = 2 << 10
	maxPayloadChunk = 64 << 10
)

// payload returns a copy of b that shares its memory with other payloads
// but cannot grow into them.
func (sc *pageScanner) payload(b []byte) []byte {
	if len(b) > cap(sc.chunk)-len(sc.chunk) {
		size := min(max(2*cap(sc.chunk), minPayloadChunk), maxPayloadChunk)
		sc.chunk = make([]byte, 0, max(size, len(b)))
	}
	start := len(sc.chunk)
	sc.chunk = append(sc.chunk, b...)
	return sc.chunk[start:len(sc.chunk):len(sc.chunk)]
}

// intern returns b as a string, allocating only the first time a name is
// seen.
func (sc *pageScanner) intern(b []byte) string {
	if s, ok := sc.names[string(b)]; ok {
		return s
	}
	if sc.names == nil {
		sc.names = map[string]string{}
	}
	s := string(b)
	sc.names[s] = s
	return s
}

// grow makes room for the ids of n more rows, so that a page's ids are
// not copied as they grow. Event ids are UUIDs: 36 bytes as text.
func (sc *pageScanner) grow(n int) {
	sc.ids = slices.Grow(sc.ids, 36*n)
	sc.refs = slices.Grow(sc.refs, n)
}

// addID records the event id of the row that is event ev of page pg, as
// PostgreSQL writes a uuid in text.
func (sc *pageScanner) addID(id [16]byte, pg, ev int) {
	sc.ids = appendUUID(sc.ids, id)
	sc.refs = append(sc.refs, idRef{end: len(sc.ids), page: pg, event: ev})
}

// appendUUID appends id in its canonical text form, as PostgreSQL and
// uuid.UUID.String write it: lowercase hex, dashes after the 4th, 6th,
// 8th and 10th bytes.
func appendUUID(b []byte, id [16]byte) []byte {
	const digits = "0123456789abcdef"
	for i, c := range id {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, digits[c>>4], digits[c&0xf])
	}
	return b
}

// setIDs hands the recorded ids out to pages' events, as substrings of one
// string.
func (sc *pageScanner) setIDs(pages []Page) {
	all := string(sc.ids)
	start := 0
	for _, r := range sc.refs {
		pages[r.page].Events[r.event].ID = all[start:r.end]
		start = r.end
	}
}

// TailStart returns the position a new tail should start from to receive
// every event that commits from now on. A few events that committed just
// before the call may also be delivered.
func (s *Store) TailStart(ctx context.Context) (domain.Position, error) {
	h, err := s.writerHorizon(ctx)
	if err != nil {
		return domain.Position{}, fmt.Errorf("tail start: %w", err)
	}
	return domain.Position{Txid: h - 1, ID: math.MaxInt64}, nil
}

// ReadTail returns up to limit events after pos in the log's global order
// (txid, id), reading only rows whose transaction is older than every
// transaction that can still write events (the writer horizon, see
// horizon.go). That set never gains a member later, so a consumer that
// advances its position through ReadTail's results never skips a row,
// however late the row's transaction commits. Within a room, the order is
// seq order. Transactions that do not write events (of this or any other
// database) do not hold the tail back.
func (s *Store) ReadTail(ctx context.Context, after domain.Position, limit int) ([]domain.Delivery, error) {
	return s.readTail(ctx, after, limit, `
		SELECT `+deliveryColumns+`
		FROM events e
		WHERE (e.txid, e.id) > ($1::text::xid8, $2::int8)
		  AND e.txid < $4::text::xid8
		ORDER BY e.txid, e.id
		LIMIT $3`)
}

// readTail runs query, which reads deliveries after ($1 txid, $2 id), at
// most $3, below the writer horizon $4 (with extra arguments from $5),
// once there is a horizon past after.
func (s *Store) readTail(ctx context.Context, after domain.Position, limit int, query string, extra ...any) ([]domain.Delivery, error) {
	limit = clampLimit(limit)
	h, err := s.writerHorizon(ctx)
	if err != nil {
		return nil, fmt.Errorf("read tail: %w", err)
	}
	if h <= after.Txid {
		return nil, nil // nothing can be final after pos yet
	}
	args := append([]any{strconv.FormatUint(after.Txid, 10), after.ID, limit, strconv.FormatUint(h, 10)}, extra...)
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, classify("read tail", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.Delivery, error) { return scanDelivery(r) })
	if err != nil {
		return nil, classify("read tail", err)
	}
	return out, nil
}

// ReadTailTypes is ReadTail for a consumer that handles only some event
// types: it returns up to limit events of types after pos, in the log's
// global order, below the writer horizon; and, when fewer than limit
// matched, also the last event below the horizon if it came after them,
// whatever its type, so that the consumer's position moves past the
// events it skipped. Each type is read through the (type, txid, id) index,
// so a consumer of rare types does not read the whole log.
func (s *Store) ReadTailTypes(ctx context.Context, after domain.Position, types []string, limit int) ([]domain.Delivery, error) {
	return s.readTail(ctx, after, limit, `
		WITH m AS (
			SELECT x.* FROM unnest($5::text[]) AS t(type)
			CROSS JOIN LATERAL (
				SELECT e.* FROM events e
				WHERE e.type = t.type
				  AND (e.txid, e.id) > ($1::text::xid8, $2::int8)
				  AND e.txid < $4::text::xid8
				ORDER BY e.txid, e.id
				LIMIT $3
			) x
			ORDER BY x.txid, x.id
			LIMIT $3
		), last AS (
			SELECT e.* FROM events e
			WHERE (e.txid, e.id) > ($1::text::xid8, $2::int8)
			  AND e.txid < $4::text::xid8
			ORDER BY e.txid DESC, e.id DESC
			LIMIT 1
		), picked AS (
			SELECT * FROM m
			UNION ALL
			SELECT * FROM last
			WHERE (SELECT count(*) FROM m) < $3
			  AND NOT EXISTS (SELECT 1 FROM m WHERE m.id = last.id)
		)
		SELECT `+deliveryColumns+`
		FROM picked e
		ORDER BY e.txid, e.id`, types)
}

// LoadCheckpoint returns the stored position of the named consumer, and
// false if it has none.
func (s *Store) LoadCheckpoint(ctx context.Context, name string) (domain.Position, bool, error) {
	var txid string
	var id int64
	err := s.pool.QueryRow(ctx, "SELECT txid::text, event_row FROM checkpoints WHERE name = $1", name).Scan(&txid, &id)
	if errors.Is(err, pgx.ErrNoRows) {
		return domain.Position{}, false, nil
	}
	if err != nil {
		return domain.Position{}, false, classify("load checkpoint "+name, err)
	}
	t, err := strconv.ParseUint(txid, 10, 64)
	if err != nil {
		return domain.Position{}, false, fmt.Errorf("load checkpoint %s: %w", name, err)
	}
	return domain.Position{Txid: t, ID: id}, true, nil
}

// SaveCheckpoint stores the named consumer's position.
func (s *Store) SaveCheckpoint(ctx context.Context, name string, pos domain.Position) error {
	return s.saveCheckpoint(ctx, s.pool, name, pos)
}

// SaveCheckpointTx stores the named consumer's position inside tx, so that a
// read model and its checkpoint commit together.
func (s *Store) SaveCheckpointTx(ctx context.Context, tx pgx.Tx, name string, pos domain.Position) error {
	return s.saveCheckpoint(ctx, tx, name, pos)
}

type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func (s *Store) saveCheckpoint(ctx context.Context, q execer, name string, pos domain.Position) error {
	_, err := q.Exec(ctx, `INSERT INTO checkpoints (name, txid, event_row) VALUES ($1, $2::text::xid8, $3)
		ON CONFLICT (name) DO UPDATE SET txid = EXCLUDED.txid, event_row = EXCLUDED.event_row, updated_at = now()`,
		name, strconv.FormatUint(pos.Txid, 10), pos.ID)
	if err != nil {
		return classify("save checkpoint "+name, err)
	}
	return nil
}
