package eventstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/roomlog/roomlog/domain"
)

// MaxReadLimit caps one page of a read.
const MaxReadLimit = 1000

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

// ReadRoom returns up to limit of room's events with seq > after, and the
// room's head. Because a room's rows commit in seq order, the answer is
// always a gap-free prefix of what follows after.
func (s *Store) ReadRoom(ctx context.Context, room domain.Room, after int64, limit int) (Page, error) {
	pages, err := s.ReadRooms(ctx, map[domain.Room]int64{room: after}, limit)
	if err != nil {
		return Page{}, err
	}
	return pages[0], nil
}

// ReadRooms reads many rooms, each after its own cursor, in one database
// round trip and one snapshot: heads and events agree. limit applies per
// room. Pages come back sorted by room name.
func (s *Store) ReadRooms(ctx context.Context, cursors map[domain.Room]int64, limit int) ([]Page, error) {
	limit = clampLimit(limit)
	rooms := make([]string, 0, len(cursors))
	afters := make([]int64, 0, len(cursors))
	for r, a := range cursors {
		rooms = append(rooms, string(r))
		afters = append(afters, max(a, 0))
	}
	rows, err := s.pool.Query(ctx, `
		SELECT c.room, coalesce(h.seq, 0), `+deliveryColumns+`
		FROM unnest($1::text[], $2::int8[]) AS c(room, after)
		LEFT JOIN room_heads h ON h.room = c.room
		LEFT JOIN LATERAL (
			SELECT * FROM events e
			WHERE e.room = c.room AND e.seq > c.after AND e.seq <= h.seq
			ORDER BY e.seq LIMIT $3
		) e ON true
		ORDER BY c.room, e.seq`, rooms, afters, limit+1)
	if err != nil {
		return nil, classify("read rooms", err)
	}
	defer rows.Close()
	var pages []Page
	for rows.Next() {
		var room string
		var headSeq int64
		var id *int64
		var txid, evID, evRoom, typ, producer *string
		var seq *int64
		var payload []byte
		var at *time.Time
		if err := rows.Scan(&room, &headSeq, &id, &txid, &evID, &evRoom, &seq, &typ, &payload, &producer, &at); err != nil {
			return nil, classify("read rooms: scan", err)
		}
		if len(pages) == 0 || pages[len(pages)-1].Room != domain.Room(room) {
			pages = append(pages, Page{Room: domain.Room(room), Head: headSeq})
		}
		p := &pages[len(pages)-1]
		if id == nil {
			continue
		}
		if len(p.Events) == limit {
			p.More = true
			continue
		}
		t, err := strconv.ParseUint(*txid, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("read rooms: parse txid: %w", err)
		}
		p.Events = append(p.Events, domain.Delivery{
			Event: domain.Event{ID: *evID, Type: *typ, Payload: payload, Producer: *producer, OccurredAt: at.UTC()},
			Room:  domain.Room(room), Seq: *seq, Position: domain.Position{Txid: t, ID: *id},
		})
	}
	if err := rows.Err(); err != nil {
		return nil, classify("read rooms", err)
	}
	return pages, nil
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
	limit = clampLimit(limit)
	h, err := s.writerHorizon(ctx)
	if err != nil {
		return nil, fmt.Errorf("read tail: %w", err)
	}
	if h <= after.Txid {
		return nil, nil // nothing can be final after pos yet
	}
	rows, err := s.pool.Query(ctx, `
		SELECT `+deliveryColumns+`
		FROM events e
		WHERE (e.txid, e.id) > ($1::text::xid8, $2::int8)
		  AND e.txid < $4::text::xid8
		ORDER BY e.txid, e.id
		LIMIT $3`, strconv.FormatUint(after.Txid, 10), after.ID, limit, strconv.FormatUint(h, 10))
	if err != nil {
		return nil, classify("read tail", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.Delivery, error) { return scanDelivery(r) })
	if err != nil {
		return nil, classify("read tail", err)
	}
	return out, nil
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
