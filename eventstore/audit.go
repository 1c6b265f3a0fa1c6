package eventstore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/roomlog/roomlog/domain"
)

// DefaultAuditTimeout is the statement timeout of an audit query whose
// AuditQuery.Timeout is zero.
const DefaultAuditTimeout = 10 * time.Second

// MaxAuditTypes is the most event types one audit filter may name.
const MaxAuditTypes = 32

// MaxContainsBytes bounds AuditFilter.Contains.
const MaxContainsBytes = 4 << 10

// AuditFilter selects events for an audit query. Every zero field matches
// everything; the fields that are set must all match.
type AuditFilter struct {
	// Room, if set, keeps only the room's deliveries.
	Room domain.Room
	// Types, if set, keeps only events of these types (at most
	// MaxAuditTypes).
	Types []string
	// Producer, if set, keeps only events published under this name.
	Producer string
	// EventID, if set, keeps only the deliveries of this event (a UUID).
	EventID string
	// From, if set, keeps events the log accepted at or after it.
	From time.Time
	// To, if set, keeps events the log accepted before it.
	To time.Time
	// Contains, if set, is a JSON object that the payload must contain in
	// the sense of PostgreSQL's jsonb @> operator: {"requestId":"r1"}
	// matches every payload whose top-level requestId is "r1". At most
	// MaxContainsBytes.
	Contains json.RawMessage
}

// AuditQuery is one page of an audit query in the log's global order.
type AuditQuery struct {
	// Filter selects the events.
	Filter AuditFilter
	// After, if set, continues a previous page: the page starts after this
	// position (before it when Desc).
	After *domain.Position
	// Desc reads newest first.
	Desc bool
	// Limit is the page size, 1 to MaxReadLimit; 0 means MaxReadLimit.
	Limit int
	// Horizon, if non-zero, keeps only rows whose transaction id is below
	// it. An export takes one Horizon from AuditHorizon and passes it to
	// every page, so that it reads one fixed, closed set of rows and ends
	// even while appends continue.
	Horizon uint64
	// Timeout is the statement timeout of the query; 0 means
	// DefaultAuditTimeout. A query that runs longer fails with
	// domain.CodeUnavailable ("query timed out").
	Timeout time.Duration
}

// AuditPage is one page of an audit query.
type AuditPage struct {
	// Events are the matching deliveries in (txid, id) order, ascending or
	// descending as the query asked.
	Events []domain.Delivery
	// More reports whether more matching rows exist after the page (at the
	// time of the read).
	More bool
}

func (q AuditQuery) validate() error {
	var fields []domain.FieldError
	add := func(field, msg string) { fields = append(fields, domain.FieldError{Field: field, Message: msg}) }
	f := q.Filter
	if f.Room != "" {
		if _, err := domain.ParseRoom(string(f.Room)); err != nil {
			add("room", "not a valid room name")
		}
	}
	if len(f.Types) > MaxAuditTypes {
		add("type", fmt.Sprintf("at most %d types", MaxAuditTypes))
	}
	if f.EventID != "" {
		if _, err := uuid.Parse(f.EventID); err != nil {
			add("eventId", "not a UUID")
		}
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		add("to", "must be after from")
	}
	if len(f.Contains) > 0 {
		c := bytes.TrimSpace(f.Contains)
		switch {
		case len(c) > MaxContainsBytes:
			add("contains", fmt.Sprintf("at most %d bytes", MaxContainsBytes))
		case len(c) == 0 || c[0] != '{' || !json.Valid(c):
			add("contains", "must be a JSON object")
		}
	}
	if q.Limit < 0 || q.Limit > MaxReadLimit {
		add("limit", fmt.Sprintf("must be 1 to %d", MaxReadLimit))
	}
	if q.Timeout < 0 {
		add("timeout", "must not be negative")
	}
	if len(fields) > 0 {
		return &domain.Error{Code: domain.CodeInvalid, Message: "invalid audit query", Fields: fields}
	}
	return nil
}

// auditSQL builds the statement and its arguments. Every value the caller
// chose is a bound parameter; the only text that varies is chosen from fixed
// fragments below, so no input can reach the SQL text.
//
// writers is the writer horizon computed before the statement runs (see
// horizon.go): the tail rule of ReadTail, only rows below it. That set
// never gains a member, so a cursor that advances through it never skips a
// late-committing row.
func (q AuditQuery) auditSQL(limit int, writers uint64) (string, []any) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	where = append(where, "e.txid < "+arg(strconv.FormatUint(writers, 10))+"::text::xid8")
	if q.Horizon != 0 {
		where = append(where, "e.txid < "+arg(strconv.FormatUint(q.Horizon, 10))+"::text::xid8")
	}
	if q.After != nil {
		op := ">"
		if q.Desc {
			op = "<"
		}
		where = append(where, fmt.Sprintf("(e.txid, e.id) %s (%s::text::xid8, %s::int8)",
			op, arg(strconv.FormatUint(q.After.Txid, 10)), arg(q.After.ID)))
	}
	f := q.Filter
	if f.Room != "" {
		where = append(where, "e.room = "+arg(string(f.Room)))
	}
	if len(f.Types) == 1 {
		where = append(where, "e.type = "+arg(f.Types[0]))
	} else if len(f.Types) > 1 {
		where = append(where, "e.type = ANY("+arg(f.Types)+"::text[])")
	}
	if f.Producer != "" {
		where = append(where, "e.producer = "+arg(f.Producer))
	}
	if f.EventID != "" {
		where = append(where, "e.event_id = "+arg(f.EventID)+"::uuid")
	}
	if !f.From.IsZero() {
		where = append(where, "e.created_at >= "+arg(f.From))
	}
	if !f.To.IsZero() {
		where = append(where, "e.created_at < "+arg(f.To))
	}
	if len(bytes.TrimSpace(f.Contains)) > 0 {
		// Not indexed (see migration 0004): it scans what the other
		// filters leave. Stored payloads never hold \u0000 (Append
		// rejects it), so the cast to jsonb cannot fail.
		where = append(where, "(e.payload::jsonb) @> "+arg(string(f.Contains))+"::jsonb")
	}
	order := "ORDER BY e.txid, e.id"
	if q.Desc {
		order = "ORDER BY e.txid DESC, e.id DESC"
	}
	sql := "SELECT " + deliveryColumns + " FROM events e WHERE " + strings.Join(where, " AND ") +
		" " + order + " LIMIT " + arg(limit)
	return sql, args
}

// Audit returns one page of the events that match q.Filter, in the log's
// global order (txid, id), reading only rows whose transaction is older
// than every running transaction, exactly like ReadTail: a client that
// pages with the last event's Position as the next After never skips a
// row, however late its transaction commits. The query runs read-only
// under a statement timeout (q.Timeout).
//
// Errors carry domain codes: CodeInvalid for a malformed query,
// CodeUnavailable when the database is down or the statement timed out.
func (s *Store) Audit(ctx context.Context, q AuditQuery) (AuditPage, error) {
	if err := q.validate(); err != nil {
		return AuditPage{}, err
	}
	limit := clampLimit(q.Limit)
	writers, err := s.writerHorizon(ctx)
	if err != nil {
		return AuditPage{}, fmt.Errorf("audit: %w", err)
	}
	sql, args := q.auditSQL(limit+1, writers)
	var page AuditPage
	err = s.readOnly(ctx, q.Timeout, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			if len(page.Events) == limit {
				page.More = true
				break
			}
			d, err := scanDelivery(rows)
			if err != nil {
				return err
			}
			page.Events = append(page.Events, d)
		}
		rows.Close()
		return rows.Err()
	})
	if err != nil {
		return AuditPage{}, classify("audit", err)
	}
	return page, nil
}

// AuditHorizon returns a fixed horizon for a read of "everything committed
// so far": every row committed before the call has a transaction id below
// it, and no row below it can appear later. It takes the current snapshot's
// xmax and waits, polling and bounded by ctx, until the writer horizon
// (horizon.go) has reached it: every transaction below that xmax that could
// write events has ended (a long event-writing transaction makes it wait;
// other transactions do not). Pass it as AuditQuery.Horizon to every page of an export, or use
// it to stop a tail read at a consistent end.
//
// The wait is bounded by HorizonMaxWait: if older transactions are still
// running then, the horizon is the oldest of them, so the read stays
// consistent and simply ends before their rows (a later read finds them).
func (s *Store) AuditHorizon(ctx context.Context) (uint64, error) {
	var xmax string
	if err := s.pool.QueryRow(ctx, "SELECT pg_snapshot_xmax(pg_current_snapshot())::text").Scan(&xmax); err != nil {
		return 0, classify("audit horizon", err)
	}
	h, err := strconv.ParseUint(xmax, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("audit horizon: parse xmax %q: %w", xmax, err)
	}
	wait := 2 * time.Millisecond
	deadline := time.Now().Add(HorizonMaxWait)
	for {
		x, err := s.writerHorizon(ctx)
		if err != nil {
			return 0, fmt.Errorf("audit horizon: %w", err)
		}
		if x >= h {
			return h, nil
		}
		if time.Now().After(deadline) {
			return x, nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("audit horizon: waiting for transactions older than %d: %w", h, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}

// HorizonMaxWait bounds how long AuditHorizon waits for older transactions.
const HorizonMaxWait = 2 * time.Second

// readOnly runs fn in a read-only transaction whose statements time out
// after timeout (0: DefaultAuditTimeout).
func (s *Store) readOnly(ctx context.Context, timeout time.Duration, fn func(pgx.Tx) error) error {
	if timeout <= 0 {
		timeout = DefaultAuditTimeout
	}
	ms := max(timeout.Milliseconds(), 1)
	// BEGIN and SET LOCAL travel in one simple-protocol round trip. The
	// timeout is an integer formatted here, never caller text.
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{
		BeginQuery: "BEGIN READ ONLY; SET LOCAL statement_timeout = " + strconv.FormatInt(ms, 10),
	})
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// MemberRooms returns those of rooms whose membership lists userID, in the
// order given, from one query. It checks read access to many shared rooms
// at once (multi-room catch-up); IsMember checks one.
func (s *Store) MemberRooms(ctx context.Context, userID string, rooms []domain.Room) ([]domain.Room, error) {
	if len(rooms) == 0 {
		return nil, nil
	}
	names := roomNames(rooms)
	rows, err := s.pool.Query(ctx, "SELECT room FROM room_members WHERE user_id = $1 AND room = ANY($2::text[])", userID, names)
	if err != nil {
		return nil, classify("member rooms", err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, classify("member rooms", err)
	}
	member := make(map[domain.Room]bool, len(got))
	for _, r := range got {
		member[domain.Room(r)] = true
	}
	return domain.SelectRooms(rooms, member), nil
}
