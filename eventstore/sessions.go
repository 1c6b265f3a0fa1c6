package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/roomlog/roomlog/domain"
)

// SocketSession is a Socket.IO session kept for connection state recovery
// (table socket_sessions).
type SocketSession struct {
	// PID is the session's private id, the client's recovery secret.
	PID string
	// SID is the socket id the session keeps across reconnections.
	SID string
	// UserID is the user the session belongs to; only that user may
	// restore it.
	UserID string
	// Node is the server process that holds (or last held) the socket.
	Node string
	// Rooms maps each room of the socket to the log position it joined
	// the room at.
	Rooms map[domain.Room]domain.Position
}

// FormatPosition encodes p as "txid:id", the form of a recovery offset.
func FormatPosition(p domain.Position) string {
	return string(AppendPosition(nil, p))
}

// AppendPosition appends FormatPosition(p) to b.
func AppendPosition(b []byte, p domain.Position) []byte {
	b = strconv.AppendUint(b, p.Txid, 10)
	b = append(b, ':')
	return strconv.AppendInt(b, p.ID, 10)
}

// ParsePosition decodes FormatPosition's "txid:id".
func ParsePosition(s string) (domain.Position, error) {
	tx, id, ok := strings.Cut(s, ":")
	if !ok {
		return domain.Position{}, fmt.Errorf("position %q: want txid:id", s)
	}
	t, err := strconv.ParseUint(tx, 10, 64)
	if err != nil {
		return domain.Position{}, fmt.Errorf("position %q: %w", s, err)
	}
	i, err := strconv.ParseInt(id, 10, 64)
	if err != nil || i < 0 {
		return domain.Position{}, fmt.Errorf("position %q: bad id", s)
	}
	return domain.Position{Txid: t, ID: i}, nil
}

// SaveSession writes s, replacing any row of the same pid, to expire ttl
// from now (database clock) unless extended.
func (st *Store) SaveSession(ctx context.Context, s SocketSession, ttl time.Duration) error {
	rooms := make(map[string]string, len(s.Rooms))
	for r, p := range s.Rooms {
		rooms[string(r)] = FormatPosition(p)
	}
	b, err := json.Marshal(rooms)
	if err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	_, err = st.pool.Exec(ctx, `
		INSERT INTO socket_sessions (pid, sid, user_id, node, rooms, updated_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, now(), now() + $6 * interval '1 millisecond')
		ON CONFLICT (pid) DO UPDATE SET sid = EXCLUDED.sid, user_id = EXCLUDED.user_id, node = EXCLUDED.node,
			rooms = EXCLUDED.rooms, updated_at = now(), expires_at = EXCLUDED.expires_at`,
		s.PID, s.SID, s.UserID, s.Node, b, ttl.Milliseconds())
	if err != nil {
		return classify("save session", err)
	}
	return nil
}

// LoadSession returns the unexpired session pid, and false if there is
// none.
func (st *Store) LoadSession(ctx context.Context, pid string) (SocketSession, bool, error) {
	s := SocketSession{PID: pid}
	var rooms map[string]string
	err := st.pool.QueryRow(ctx, `SELECT sid, user_id, node, rooms FROM socket_sessions
		WHERE pid = $1 AND expires_at > now()`, pid).Scan(&s.SID, &s.UserID, &s.Node, &rooms)
	if errors.Is(err, pgx.ErrNoRows) {
		return SocketSession{}, false, nil
	}
	if err != nil {
		return SocketSession{}, false, classify("load session", err)
	}
	s.Rooms = make(map[domain.Room]domain.Position, len(rooms))
	for r, p := range rooms {
		pos, err := ParsePosition(p)
		if err != nil {
			return SocketSession{}, false, fmt.Errorf("load session: room %s: %w", r, err)
		}
		s.Rooms[domain.Room(r)] = pos
	}
	return s, true, nil
}

// ExtendSessions pushes the expiry of the unexpired sessions pids to ttl
// from now, skipping those that already expire after now + ttl - stale:
// a caller that refreshes live sessions often passes a stale of a small
// part of ttl, so that each row is rewritten once per stale instead of at
// every call (with a 24-hour window and 5-second heartbeats, 170 times
// fewer writes); stale 0 rewrites every row.
func (st *Store) ExtendSessions(ctx context.Context, pids []string, ttl, stale time.Duration) error {
	if len(pids) == 0 {
		return nil
	}
	_, err := st.pool.Exec(ctx, `UPDATE socket_sessions SET expires_at = now() + $2::int8 * interval '1 millisecond'
		WHERE pid = ANY($1) AND expires_at > now()
		  AND expires_at < now() + ($2::int8 - $3::int8) * interval '1 millisecond'`, pids, ttl.Milliseconds(), stale.Milliseconds())
	if err != nil {
		return classify("extend sessions", err)
	}
	return nil
}

// DeleteSession removes session pid (an explicit disconnect is not
// recoverable).
func (st *Store) DeleteSession(ctx context.Context, pid string) error {
	if _, err := st.pool.Exec(ctx, `DELETE FROM socket_sessions WHERE pid = $1`, pid); err != nil {
		return classify("delete session", err)
	}
	return nil
}

// PruneSessions deletes up to limit expired sessions and returns how many.
func (st *Store) PruneSessions(ctx context.Context, limit int) (int64, error) {
	tag, err := st.pool.Exec(ctx, `DELETE FROM socket_sessions WHERE pid IN (
		SELECT pid FROM socket_sessions WHERE expires_at <= now() ORDER BY expires_at LIMIT $1)`, limit)
	if err != nil {
		return 0, classify("prune sessions", err)
	}
	return tag.RowsAffected(), nil
}

// ReadRecovery returns up to limit events of the rooms of after, each room
// read strictly after its own position, merged in the log's global order
// (txid, id), with a txid below horizon, which must be a value
// WriterHorizon returned. Like ReadTail it reads only rows below a writer
// horizon, a set that never gains a member: a reader that advances every
// room's position past what it got, keeping the same horizon, neither
// skips nor repeats an event below it, and a later horizon only adds
// events after those. One horizon serves a whole replay, page after page,
// instead of a horizon query per page.
//
// A replay reads every event a socket missed, thousands of rows per
// recovery, so rows are scanned as in ReadRooms: as driver bytes, with
// payloads copied into shared chunks and names interned.
func (st *Store) ReadRecovery(ctx context.Context, after map[domain.Room]domain.Position, horizon uint64, limit int) ([]domain.Delivery, error) {
	limit = clampLimit(limit)
	if len(after) == 0 {
		return nil, nil
	}
	if horizon == 0 {
		return nil, errors.New("read recovery: no writer horizon")
	}
	rooms := make([]string, 0, len(after))
	txids := make([]string, 0, len(after))
	ids := make([]int64, 0, len(after))
	for r, p := range after {
		rooms = append(rooms, string(r))
		txids = append(txids, strconv.FormatUint(p.Txid, 10))
		ids = append(ids, p.ID)
	}
	// txid and event_id come in binary, as in readRoomsSQL.
	rows, err := st.pool.Query(ctx, `
		SELECT e.id, e.txid, e.event_id, e.room, e.seq, e.type, e.payload, e.producer, e.created_at
		FROM unnest($1::text[], $2::text[], $3::int8[]) AS b(room, txid, id)
		CROSS JOIN LATERAL (
			SELECT * FROM events e
			WHERE e.room = b.room AND (e.txid, e.id) > (b.txid::xid8, b.id)
			  AND e.txid < $5::text::xid8
			ORDER BY e.txid, e.id LIMIT $4
		) e
		ORDER BY e.txid, e.id
		LIMIT $4`, rooms, txids, ids, limit, strconv.FormatUint(horizon, 10))
	if err != nil {
		return nil, classify("read recovery", err)
	}
	defer rows.Close()
	var sc pageScanner
	// Scan targets escape to the heap: declared once, not per row.
	var (
		id, seq                      int64
		txid                         uint64
		evID                         pgtype.UUID
		room, typ, payload, producer pgtype.DriverBytes
		at                           time.Time
	)
	dest := []any{&id, &txid, &evID, &room, &seq, &typ, &payload, &producer, &at}
	out := make([]domain.Delivery, 0, min(limit, 64))
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, classify("read recovery: scan", err)
		}
		sc.addID(evID.Bytes, 0, len(out))
		out = append(out, domain.Delivery{
			Event: domain.Event{
				Type:       sc.intern(typ),
				Payload:    sc.payload(payload),
				Producer:   sc.intern(producer),
				OccurredAt: at.UTC(),
			},
			Room: domain.Room(sc.intern(room)), Seq: seq, Position: domain.Position{Txid: txid, ID: id},
		})
	}
	if err := rows.Err(); err != nil {
		return nil, classify("read recovery", err)
	}
	sc.setIDs([]Page{{Events: out}})
	return out, nil
}
