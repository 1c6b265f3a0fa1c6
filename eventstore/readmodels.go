package eventstore

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/roomlog/roomlog/domain"
)

// This file holds the SQL of the read models that projections build from
// the log (migrations/0005_read_models.up.sql): unread notification counts
// and the entity index, the projection status report, and the rebuild
// mechanism shared by every read model, membership included.
//
// # Exactly once
//
// A projection's effects and its checkpoint commit in one transaction
// (inProjection). That transaction first locks the projection's checkpoint
// row and skips every change at or before the stored position, so an event
// is applied exactly once even when a runner crashed after committing but
// before it learnt so, when two server processes run the same projection,
// or when a rebuild swapped in a model that is ahead of the runner.

// The read-model tables, as a projection's rebuild names them (see
// BeginRebuild).
const (
	// UnreadTable holds the unread notification counts (ApplyUnread).
	UnreadTable = "notification_unread"
	// EntityTable is the entity index (ApplyEntityIndex).
	EntityTable = "entity_events"
	// MembershipTable holds shared-room membership (ApplyMembership).
	MembershipTable = "room_members"
)

// MaxPendingCount caps ProjectionStatus.Pending: counting further would
// cost a scan of the log's tail on every readiness check, and a projection
// that far behind is not ready anyway.
const MaxPendingCount = 10000

// inProjection runs apply in one transaction that also advances checkpoint
// name to next. Before apply runs, the transaction locks the model's
// tables against a rebuild's swap (ROW EXCLUSIVE, which every writer takes
// anyway and which never blocks readers or other writers) and then the
// checkpoint row (FOR UPDATE, creating it at the start of the log if it is
// missing); apply receives the stored position and must skip every change
// at or before it. The table-then-checkpoint lock order is the one
// Rebuild.Swap uses, so the two never deadlock. The checkpoint never moves
// backwards.
//
// The transaction commits with synchronous_commit off: it does not wait
// for its WAL to reach disk, so read models add no fsync to the ones
// appends wait for. That is safe because a read model is derived from the
// log and its checkpoint commits with it: a crash can lose only the last
// few hundred milliseconds of projection work, model and checkpoint
// together, and the projection then applies those events again. Nothing
// is acknowledged to a client on the strength of a projection's commit.
func (s *Store) inProjection(ctx context.Context, name string, tables []string, next domain.Position, apply func(tx pgx.Tx, done domain.Position) error) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var txid string
		var row int64
		b := &pgx.Batch{}
		b.Queue("SET LOCAL synchronous_commit = off")
		b.Queue("LOCK TABLE " + identList(tables) + " IN ROW EXCLUSIVE MODE")
		b.Queue(`INSERT INTO checkpoints (name, txid, event_row) VALUES ($1, '0', 0) ON CONFLICT (name) DO NOTHING`, name)
		b.Queue(`SELECT txid::text, event_row FROM checkpoints WHERE name = $1 FOR UPDATE`, name).
			QueryRow(func(r pgx.Row) error { return r.Scan(&txid, &row) })
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return classify("lock checkpoint "+name, err)
		}
		done, err := parsePosition(txid, row)
		if err != nil {
			return fmt.Errorf("lock checkpoint %s: %w", name, err)
		}
		if err := apply(tx, done); err != nil {
			return err
		}
		if !done.Less(next) {
			return nil
		}
		return s.saveCheckpoint(ctx, tx, name, next)
	})
}

// UnreadChange is one change to a user's unread notification count, caused
// by the event at Position.
type UnreadChange struct {
	// UserID is the user whose count changes.
	UserID string
	// Set makes Count the user's count; otherwise Count is added to it.
	Set bool
	// Count is the new count or the increment; never negative.
	Count int64
	// Position is the log position of the event that caused the change.
	Position domain.Position
}

// ApplyUnread applies changes, which must be in log order, to the unread
// counts and advances checkpoint name to next, in one transaction. Changes
// at or before the stored checkpoint are skipped (see inProjection), so
// retrying a batch, even after a crash, never counts an event twice.
func (s *Store) ApplyUnread(ctx context.Context, name string, changes []UnreadChange, next domain.Position) error {
	for _, c := range changes {
		if c.UserID == "" || c.Count < 0 {
			return domain.Errorf(domain.CodeInvalid, "unread change needs a user id and a count >= 0")
		}
	}
	return s.inProjection(ctx, name, []string{UnreadTable}, next, func(tx pgx.Tx, done domain.Position) error {
		// Fold the batch into one write per user: an absolute count (the
		// last set plus the increments after it) or an increment.
		type op struct {
			set bool
			n   int64
			pos domain.Position
		}
		ops := map[string]*op{}
		var users []string
		for _, c := range changes {
			if !done.Less(c.Position) {
				continue
			}
			o := ops[c.UserID]
			if o == nil {
				o = &op{}
				ops[c.UserID] = o
				users = append(users, c.UserID)
			}
			if c.Set {
				o.set, o.n = true, c.Count
			} else {
				o.n += c.Count
			}
			o.pos = c.Position
		}
		var set, add unreadRows
		for _, u := range users {
			o := ops[u]
			if o.set {
				set.add(u, o.n, o.pos)
			} else {
				add.add(u, o.n, o.pos)
			}
		}
		const upsert = `INSERT INTO notification_unread AS u (user_id, unread_count, txid, event_row)
			SELECT c.user_id, c.n, c.txid::xid8, c.event_row
			FROM unnest($1::text[], $2::int8[], $3::text[], $4::int8[]) AS c(user_id, n, txid, event_row)
			ON CONFLICT (user_id) DO UPDATE SET unread_count = `
		const rest = `, txid = EXCLUDED.txid, event_row = EXCLUDED.event_row, updated_at = now()`
		b := &pgx.Batch{}
		if len(set.users) > 0 {
			b.Queue(upsert+`EXCLUDED.unread_count`+rest, set.users, set.counts, set.txids, set.rows)
		}
		if len(add.users) > 0 {
			b.Queue(upsert+`u.unread_count + EXCLUDED.unread_count`+rest, add.users, add.counts, add.txids, add.rows)
		}
		if b.Len() == 0 {
			return nil
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return classify("apply unread", err)
		}
		return nil
	})
}

type unreadRows struct {
	users  []string
	counts []int64
	txids  []string
	rows   []int64
}

func (r *unreadRows) add(user string, n int64, pos domain.Position) {
	r.users = append(r.users, user)
	r.counts = append(r.counts, n)
	r.txids = append(r.txids, strconv.FormatUint(pos.Txid, 10))
	r.rows = append(r.rows, pos.ID)
}

// UnreadCount returns userID's unread notification count: 0 for a user the
// log never notified. It is as fresh as the "unread" projection (see
// ProjectionStatus).
func (s *Store) UnreadCount(ctx context.Context, userID string) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT coalesce((SELECT unread_count FROM notification_unread WHERE user_id = $1), 0)`, userID).Scan(&n)
	if err != nil {
		return 0, classify("unread count", err)
	}
	return n, nil
}

// EntityEntry records that Delivery touched Ref. Only the delivery's
// position, event id, room, seq and time are stored; its payload stays in
// the log.
type EntityEntry struct {
	Ref      domain.EntityRef
	Delivery domain.Delivery
}

// ApplyEntityIndex adds entries, which must be in log order, to the entity
// index and advances checkpoint name to next, in one transaction. Entries
// at or before the stored checkpoint are skipped (see inProjection); an
// entry indexed twice would violate the primary key and fail the batch.
func (s *Store) ApplyEntityIndex(ctx context.Context, name string, entries []EntityEntry, next domain.Position) error {
	return s.inProjection(ctx, name, []string{EntityTable}, next, func(tx pgx.Tx, done domain.Position) error {
		n := len(entries)
		kinds, ids, txids, evIDs, rooms := make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
		rows, seqs, ats := make([]int64, 0, n), make([]int64, 0, n), make([]time.Time, 0, n)
		for _, e := range entries {
			d := e.Delivery
			if !done.Less(d.Position) {
				continue
			}
			kinds = append(kinds, string(e.Ref.Kind))
			ids = append(ids, e.Ref.ID)
			txids = append(txids, strconv.FormatUint(d.Position.Txid, 10))
			rows = append(rows, d.Position.ID)
			evIDs = append(evIDs, d.ID)
			rooms = append(rooms, string(d.Room))
			seqs = append(seqs, d.Seq)
			ats = append(ats, d.OccurredAt)
		}
		if len(kinds) == 0 {
			return nil
		}
		_, err := tx.Exec(ctx, `INSERT INTO entity_events (kind, entity_id, txid, event_row, event_id, room, seq, created_at)
			SELECT c.kind, c.entity_id, c.txid::xid8, c.event_row, c.event_id::uuid, c.room, c.seq, c.created_at
			FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::text[], $7::int8[], $8::timestamptz[])
				AS c(kind, entity_id, txid, event_row, event_id, room, seq, created_at)`,
			kinds, ids, txids, rows, evIDs, rooms, seqs, ats)
		if err != nil {
			return classify("apply entity index", err)
		}
		return nil
	})
}

// EntityQuery asks for one page of an entity's history.
type EntityQuery struct {
	// Entity is the entity; build it with domain.ParseEntityRef.
	Entity domain.EntityRef
	// At, if set, keeps only events the log accepted at or before it:
	// the history as of At.
	At time.Time
	// After continues a previous page: the page starts after this
	// position. The zero Position starts at the beginning.
	After domain.Position
	// Limit is the page size, 1 to MaxReadLimit; 0 means MaxReadLimit.
	Limit int
}

// EntityEvents returns one page of the deliveries that touched q.Entity
// (see domain.EntityRefs), in the log's global (txid, id) order. An event
// sent to several rooms appears once per room that the index recorded;
// domain.EntityState folds count it once. For a purchase request or a
// template checkout, the page also holds every delivery of the payments
// linked to it: those that share an event with the entity, such as the
// payment-created that names both, so that payment-update events, which
// name only the payment, are part of a request's history.
//
// The history is as fresh as the "entities" projection (see
// ProjectionStatus). Page with the last delivery's Position as the next
// q.After; a page shorter than the limit is the last.
func (s *Store) EntityEvents(ctx context.Context, q EntityQuery) ([]domain.Delivery, error) {
	ref, err := domain.ParseEntityRef(string(q.Entity.Kind), q.Entity.ID)
	if err != nil {
		return nil, err
	}
	var at *time.Time
	if !q.At.IsZero() {
		t := q.At.UTC()
		at = &t
	}
	sql := entityEventsSQL
	if ref.Kind == domain.EntityRequest || ref.Kind == domain.EntityTemplateCheckout {
		sql = linkedEntityEventsSQL
	}
	rows, err := s.pool.Query(ctx, sql, string(ref.Kind), ref.ID,
		strconv.FormatUint(q.After.Txid, 10), q.After.ID, at, clampLimit(q.Limit))
	if err != nil {
		return nil, classify("entity events", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.Delivery, error) { return scanDelivery(r) })
	if err != nil {
		return nil, classify("entity events", err)
	}
	return out, nil
}

// entityEventsSQL reads an entity's own deliveries: one range scan of
// entity_events' primary key.
const entityEventsSQL = `
	SELECT ` + deliveryColumns + `
	FROM entity_events x JOIN events e ON e.id = x.event_row
	WHERE x.kind = $1 AND x.entity_id = $2
	  AND (x.txid, x.event_row) > ($3::text::xid8, $4::int8)
	  AND ($5::timestamptz IS NULL OR x.created_at <= $5)
	ORDER BY x.txid, x.event_row
	LIMIT $6`

// linkedEntityEventsSQL adds the deliveries of the payments that share an
// event with the entity. A payment linked only after At is not linked as
// of At.
const linkedEntityEventsSQL = `
	WITH own AS (
		SELECT x.txid, x.event_row, x.event_id FROM entity_events x
		WHERE x.kind = $1 AND x.entity_id = $2 AND ($5::timestamptz IS NULL OR x.created_at <= $5)
	), pays AS (
		SELECT DISTINCT p.entity_id FROM entity_events p
		WHERE p.kind = 'payment' AND p.event_id IN (SELECT event_id FROM own)
	), hits AS (
		SELECT txid, event_row FROM own
		UNION
		SELECT x.txid, x.event_row FROM entity_events x
		WHERE x.kind = 'payment' AND x.entity_id IN (SELECT entity_id FROM pays)
		  AND ($5::timestamptz IS NULL OR x.created_at <= $5)
	)
	SELECT ` + deliveryColumns + `
	FROM hits h JOIN events e ON e.id = h.event_row
	WHERE (h.txid, h.event_row) > ($3::text::xid8, $4::int8)
	ORDER BY h.txid, h.event_row
	LIMIT $6`

// EntityHistory iterates over the whole history of ref as of at (zero: now),
// reading it page by page with EntityEvents. It yields a non-nil error at
// most once, as its last pair.
func (s *Store) EntityHistory(ctx context.Context, ref domain.EntityRef, at time.Time) iter.Seq2[domain.Delivery, error] {
	return func(yield func(domain.Delivery, error) bool) {
		q := EntityQuery{Entity: ref, At: at, Limit: MaxReadLimit}
		for {
			page, err := s.EntityEvents(ctx, q)
			if err != nil {
				yield(domain.Delivery{}, err)
				return
			}
			for _, d := range page {
				if !yield(d, nil) {
					return
				}
			}
			if len(page) < q.Limit {
				return
			}
			q.After = page[len(page)-1].Position
		}
	}
}

// EntityState folds the history of ref as of at (zero: now) into its state:
// a *domain.RequestState, *domain.PaymentState, *domain.CheckoutState or
// *domain.ChatState. An entity the log never mentioned folds to an empty
// state with zero Events.
func (s *Store) EntityState(ctx context.Context, ref domain.EntityRef, at time.Time) (domain.EntityState, error) {
	ref, err := domain.ParseEntityRef(string(ref.Kind), ref.ID)
	if err != nil {
		return nil, err
	}
	st := domain.NewEntityState(ref)
	for d, err := range s.EntityHistory(ctx, ref, at) {
		if err != nil {
			return nil, err
		}
		st.Apply(d)
	}
	return st, nil
}

// ProjectionStatus is how far one projection has come through the log.
type ProjectionStatus struct {
	// Name is the projection's checkpoint name.
	Name string
	// Saved reports whether the projection has a checkpoint; without one
	// it has not processed anything yet.
	Saved bool
	// Position is the checkpoint: the last event processed.
	Position domain.Position
	// SavedAt is when the checkpoint was last saved (zero if never).
	SavedAt time.Time
	// Pending counts the events after Position, up to MaxPendingCount.
	Pending int64
	// OldestPendingAt is when the log accepted the oldest event after
	// Position; zero when nothing is pending.
	OldestPendingAt time.Time
	// Lag is how long the oldest pending event has waited: the store's
	// clock minus OldestPendingAt, 0 when nothing is pending.
	Lag time.Duration
}

// ProjectionStatus reports the named projections' progress, in the order
// given; with no names, every stored checkpoint's, by name. A name without
// a checkpoint reports Saved false and the whole log as pending.
func (s *Store) ProjectionStatus(ctx context.Context, names ...string) ([]ProjectionStatus, error) {
	if len(names) == 0 {
		rows, err := s.pool.Query(ctx, "SELECT name FROM checkpoints ORDER BY name")
		if err != nil {
			return nil, classify("projection status", err)
		}
		names, err = pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, classify("projection status", err)
		}
		if len(names) == 0 {
			return nil, nil
		}
	}
	rows, err := s.pool.Query(ctx, `
		SELECT n.name, c.name IS NOT NULL, cp.txid::text, cp.event_row, c.updated_at,
			(SELECT count(*) FROM (
				SELECT 1 FROM events e WHERE (e.txid, e.id) > (cp.txid, cp.event_row) LIMIT $2
			) p),
			(SELECT e.created_at FROM events e WHERE (e.txid, e.id) > (cp.txid, cp.event_row)
				ORDER BY e.txid, e.id LIMIT 1)
		FROM unnest($1::text[]) WITH ORDINALITY AS n(name, i)
		LEFT JOIN checkpoints c ON c.name = n.name
		CROSS JOIN LATERAL (SELECT coalesce(c.txid, '0'::xid8) AS txid, coalesce(c.event_row, 0) AS event_row) cp
		ORDER BY n.i`, names, MaxPendingCount)
	if err != nil {
		return nil, classify("projection status", err)
	}
	defer rows.Close()
	now := s.now()
	var out []ProjectionStatus
	for rows.Next() {
		var st ProjectionStatus
		var txid string
		var row int64
		var savedAt, oldest *time.Time
		if err := rows.Scan(&st.Name, &st.Saved, &txid, &row, &savedAt, &st.Pending, &oldest); err != nil {
			return nil, classify("projection status", err)
		}
		if st.Position, err = parsePosition(txid, row); err != nil {
			return nil, fmt.Errorf("projection status %s: %w", st.Name, err)
		}
		if savedAt != nil {
			st.SavedAt = savedAt.UTC()
		}
		if oldest != nil {
			st.OldestPendingAt = oldest.UTC()
			st.Lag = max(now.Sub(st.OldestPendingAt), 0)
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, classify("projection status", err)
	}
	return out, nil
}

// # Rebuild
//
// A rebuild replaces a read model with one built from the beginning of the
// log, while the live model keeps answering:
//
//  1. BeginRebuild creates the schema roomlog_rebuild_<name> holding empty
//     copies (LIKE … INCLUDING ALL) of the model's tables and of the
//     checkpoints table, and a second pool whose connections put that
//     schema first on their search_path. Rebuild.Store is a Store on that
//     pool: every statement it runs — ReadTail, LoadCheckpoint,
//     ApplyUnread, ApplyEntityIndex, ApplyMembership — resolves the
//     model's tables and the checkpoint to the shadow copies and the log
//     (events) to the live one, with no SQL written twice. The caller runs
//     the projection's own handler on that Store from an empty checkpoint
//     until it reaches the end of the log.
//  2. Rebuild.Swap opens a transaction that locks the live tables in
//     EXCLUSIVE mode (their writers wait; readers, which take ACCESS
//     SHARE, never do) and then the live checkpoint row, lets the caller
//     catch the shadow up to the log's end once more (so the swapped-in
//     model is not behind the live one), replaces the live rows with the
//     shadow rows and sets the live checkpoint to the shadow's, and
//     commits. Readers see the old model until the commit and the new
//     one after it, never a mix; the live projection resumes after the
//     commit from the swapped-in checkpoint.
//  3. Rebuild.Close drops the shadow schema.
//
// Swap copies rows (DELETE, then INSERT … SELECT) rather than renaming
// tables: a rename needs ACCESS EXCLUSIVE, which stalls readers, and would
// leave the indexes with generated names that no longer match the
// migrations. The copy costs time proportional to the model, paid while
// only that model's projection waits.
//
// A session advisory lock allows one rebuild per model at a time; a
// rebuild that died leaves its schema behind, and the next one drops it.

// rebuildLockClass is the first key of the rebuild advisory locks (two-key
// locks never collide with the one-key locks appends take).
const rebuildLockClass = 0x726c6f67 // "rlog"

var (
	projectionNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,39}$`)
	tableNameRE      = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)
)

// Rebuild is a read model being rebuilt into shadow tables. Create it with
// BeginRebuild; always Close it. It is not safe for concurrent use.
type Rebuild struct {
	live   *Store
	shadow *Store
	pool   *pgxpool.Pool
	lock   *pgxpool.Conn
	name   string
	schema string
	tables []string
}

// RebuildResult reports a swap.
type RebuildResult struct {
	// Position is the checkpoint swapped in.
	Position domain.Position
	// Rows is how many rows the rebuilt model has.
	Rows int64
	// Compared reports whether the live model stood at the same position
	// as the rebuilt one at the swap, so that Changed means something.
	Compared bool
	// Changed reports whether the rebuilt model differs from the live one
	// it replaced (ignoring updated_at columns). A projection that is a
	// pure function of the log never changes on a rebuild; a change means
	// the live model had drifted, for instance by a hand edit.
	Changed bool
}

// BeginRebuild starts rebuilding the read model of projection name, whose
// tables (in the schema the store's connections resolve) are tables. It
// fails with CodeConflict if a rebuild of name is already running.
func (s *Store) BeginRebuild(ctx context.Context, name string, tables []string) (*Rebuild, error) {
	if !projectionNameRE.MatchString(name) {
		return nil, domain.Errorf(domain.CodeInvalid, "invalid projection name %q: want 1 to 40 of [a-z0-9_], starting with a letter", name)
	}
	if len(tables) == 0 {
		return nil, domain.Errorf(domain.CodeInvalid, "rebuild %s: no tables", name)
	}
	for _, t := range tables {
		if !tableNameRE.MatchString(t) || t == "checkpoints" || t == "events" {
			return nil, domain.Errorf(domain.CodeInvalid, "rebuild %s: invalid table %q", name, t)
		}
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, classify("rebuild "+name, err)
	}
	rb := &Rebuild{live: s, lock: conn, name: name, schema: "roomlog_rebuild_" + name, tables: append([]string(nil), tables...)}
	var locked bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1, hashtext($2))", int32(rebuildLockClass), name).Scan(&locked); err != nil {
		conn.Release()
		return nil, classify("rebuild "+name+": lock", err)
	}
	if !locked {
		conn.Release()
		return nil, domain.Errorf(domain.CodeConflict, "a rebuild of %s is already running", name)
	}
	if err := rb.createShadow(ctx); err != nil {
		_ = rb.Close(ctx)
		return nil, err
	}
	return rb, nil
}

func (rb *Rebuild) createShadow(ctx context.Context) error {
	conn := rb.lock.Conn()
	var searchPath string
	if err := conn.QueryRow(ctx, "SHOW search_path").Scan(&searchPath); err != nil {
		return classify("rebuild "+rb.name+": search_path", err)
	}
	schema := pgx.Identifier{rb.schema}.Sanitize()
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, t := range append([]string{"checkpoints"}, rb.tables...) {
			var ok bool
			if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", t).Scan(&ok); err != nil {
				return err
			}
			if !ok {
				return domain.Errorf(domain.CodeInvalid, "rebuild %s: no table %s (migrations not applied?)", rb.name, t)
			}
		}
		stmts := []string{"DROP SCHEMA IF EXISTS " + schema + " CASCADE", "CREATE SCHEMA " + schema}
		for _, t := range append([]string{"checkpoints"}, rb.tables...) {
			id := pgx.Identifier{t}.Sanitize()
			stmts = append(stmts, "CREATE TABLE "+schema+"."+id+" (LIKE "+id+" INCLUDING ALL)")
		}
		for _, q := range stmts {
			if _, err := tx.Exec(ctx, q); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return classify("rebuild "+rb.name+": create shadow tables", err)
	}
	cfg := rb.live.pool.Config().Copy()
	cfg.MaxConns, cfg.MinConns = 2, 0
	if cfg.ConnConfig.RuntimeParams == nil {
		cfg.ConnConfig.RuntimeParams = map[string]string{}
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema + ", " + searchPath
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return classify("rebuild "+rb.name+": shadow pool", err)
	}
	rb.pool = pool
	// Not started: a shadow store reads the log and writes read models,
	// never appends.
	rb.shadow = New(pool, rb.live.logger.With("rebuild", rb.name), &rb.live.cfg)
	return nil
}

// Store returns the Store that writes the shadow model: run the
// projection's handler and checkpoint on it to build the model.
func (rb *Rebuild) Store() *Store { return rb.shadow }

// Swap replaces the live model and its checkpoint with the shadow ones in
// one transaction. After it has locked the live tables and checkpoint,
// it calls catchUp, which must bring the shadow model to the end of the
// log through Store (the live model's writers wait meanwhile, so keep the
// gap small by catching up once before Swap). Swap fails, changing
// nothing, if the shadow checkpoint is behind the live one.
func (rb *Rebuild) Swap(ctx context.Context, catchUp func(ctx context.Context) error) (RebuildResult, error) {
	var res RebuildResult
	op := "rebuild " + rb.name + ": swap"
	err := pgx.BeginFunc(ctx, rb.live.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "LOCK TABLE "+identList(rb.tables)+" IN EXCLUSIVE MODE"); err != nil {
			return classify(op+": lock tables", err)
		}
		var txid string
		var row int64
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO checkpoints (name, txid, event_row) VALUES ($1, '0', 0) ON CONFLICT (name) DO NOTHING`, rb.name)
		b.Queue(`SELECT txid::text, event_row FROM checkpoints WHERE name = $1 FOR UPDATE`, rb.name).
			QueryRow(func(r pgx.Row) error { return r.Scan(&txid, &row) })
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return classify(op+": lock checkpoint", err)
		}
		live, err := parsePosition(txid, row)
		if err != nil {
			return err
		}
		if err := catchUp(ctx); err != nil {
			return fmt.Errorf("%s: catch up: %w", op, err)
		}
		schema := pgx.Identifier{rb.schema}.Sanitize()
		err = tx.QueryRow(ctx, "SELECT txid::text, event_row FROM "+schema+".checkpoints WHERE name = $1", rb.name).Scan(&txid, &row)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			txid, row = "0", 0 // the log was empty
		case err != nil:
			return classify(op+": read shadow checkpoint", err)
		}
		if res.Position, err = parsePosition(txid, row); err != nil {
			return err
		}
		if res.Position.Less(live) {
			return fmt.Errorf("%s: the rebuilt model (at %v) is behind the live one (at %v)", op, res.Position, live)
		}
		if res.Position == live {
			res.Compared = true
			for _, t := range rb.tables {
				a, err := tableDigest(ctx, tx, t, pgx.Identifier{t}.Sanitize())
				if err != nil {
					return classify(op+": digest", err)
				}
				b, err := tableDigest(ctx, tx, t, schema+"."+pgx.Identifier{t}.Sanitize())
				if err != nil {
					return classify(op+": digest", err)
				}
				res.Changed = res.Changed || a != b
			}
		}
		for _, t := range rb.tables {
			id := pgx.Identifier{t}.Sanitize()
			if _, err := tx.Exec(ctx, "DELETE FROM "+id); err != nil {
				return classify(op+": clear "+t, err)
			}
			tag, err := tx.Exec(ctx, "INSERT INTO "+id+" SELECT * FROM "+schema+"."+id)
			if err != nil {
				return classify(op+": copy "+t, err)
			}
			res.Rows += tag.RowsAffected()
		}
		return rb.live.saveCheckpoint(ctx, tx, rb.name, res.Position)
	})
	if err != nil {
		return RebuildResult{}, err
	}
	return res, nil
}

// Close drops the shadow schema, closes the shadow pool and ends the
// rebuild. It is safe to call more than once and after a failed Swap.
func (rb *Rebuild) Close(ctx context.Context) error {
	if rb.lock == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if rb.pool != nil {
		rb.pool.Close()
	}
	_, err := rb.lock.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{rb.schema}.Sanitize()+" CASCADE")
	if err != nil {
		rb.live.logger.WarnContext(ctx, "could not drop a rebuild's shadow schema; the next rebuild drops it", "schema", rb.schema, "error", err)
		err = classify("rebuild "+rb.name+": drop shadow", err)
	}
	if _, uerr := rb.lock.Exec(ctx, "SELECT pg_advisory_unlock($1, hashtext($2))", int32(rebuildLockClass), rb.name); uerr != nil {
		// Losing the connection releases the lock too: destroy it.
		_ = rb.lock.Conn().Close(ctx)
	}
	rb.lock.Release()
	rb.lock = nil
	return err
}

// tableDigest returns an order-independent digest of table's rows, ignoring
// updated_at columns (they record when a row was written, not what the log
// says): the row count and the sum of 60 bits of each row's md5. columnsOf
// names the table whose columns are read (the live one; a shadow copy has
// the same).
func tableDigest(ctx context.Context, tx pgx.Tx, columnsOf, table string) (string, error) {
	var cols string
	err := tx.QueryRow(ctx, `SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute
		WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped AND attname <> 'updated_at'`, columnsOf).Scan(&cols)
	if err != nil {
		return "", err
	}
	var digest string
	err = tx.QueryRow(ctx, `SELECT count(*) || ':' || coalesce(sum(('x' || left(md5(r::text), 15))::bit(60)::bigint::numeric), 0)
		FROM (SELECT `+cols+` FROM `+table+`) r`).Scan(&digest)
	return digest, err
}

func identList(tables []string) string {
	ids := make([]string, len(tables))
	for i, t := range tables {
		ids[i] = pgx.Identifier{t}.Sanitize()
	}
	return strings.Join(ids, ", ")
}

func parsePosition(txid string, row int64) (domain.Position, error) {
	t, err := strconv.ParseUint(txid, 10, 64)
	if err != nil {
		return domain.Position{}, fmt.Errorf("parse txid %q: %w", txid, err)
	}
	return domain.Position{Txid: t, ID: row}, nil
}
