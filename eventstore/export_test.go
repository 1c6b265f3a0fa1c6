package eventstore

import (
	"context"
	"errors"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/roomlog/roomlog/domain"
)

// ReadRoomsSorted is ReadRooms' fallback read, sorted by the server, which
// ReadRooms uses only if rows ever arrive out of order.
func (s *Store) ReadRoomsSorted(ctx context.Context, cursors map[domain.Room]int64, limit int, opts *ReadOptions) ([]Page, error) {
	maxBytes := int64(math.MaxInt64)
	if opts != nil && opts.MaxBytes > 0 {
		maxBytes = int64(opts.MaxBytes)
	}
	var rooms []string
	var afters []int64
	for r, a := range cursors {
		rooms = append(rooms, string(r))
		afters = append(afters, a)
	}
	pages, _, err := s.readRooms(ctx, readRoomsSortedSQL, rooms, afters, limit, maxBytes)
	return pages, err
}

// ProjectionSetting runs an empty projection transaction for checkpoint
// name and returns the value of setting inside it.
func (s *Store) ProjectionSetting(ctx context.Context, name, setting string) (string, error) {
	var v string
	err := s.inProjection(ctx, name, []string{UnreadTable}, domain.Position{}, func(tx pgx.Tx, _ domain.Position) error {
		return tx.QueryRow(ctx, "SELECT current_setting($1)", setting).Scan(&v)
	})
	return v, err
}

// AppendRoundTrips appends reqs as the group-commit writer does and
// returns the result and the statements of each round trip.
func (s *Store) AppendRoundTrips(ctx context.Context, reqs []AppendRequest) (AppendResult, [][]string, error) {
	sub, err := s.newSubmission(ctx, reqs)
	if err != nil {
		return AppendResult{}, nil, err
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return AppendResult{}, nil, err
	}
	rec := &recordingSender{q: conn}
	res, subErrs, _, err := s.appendOwn(ctx, rec, conn.Conn().PgConn(), []*submission{sub})
	if err != nil {
		s.release(ctx, conn)
		return AppendResult{}, rec.batches, err
	}
	conn.Release()
	if subErrs[0] != nil {
		return AppendResult{}, rec.batches, subErrs[0]
	}
	return res[0][0], rec.batches, nil
}

// RememberedHead returns the head the store remembers for room.
func (s *Store) RememberedHead(room domain.Room) (seq int64, ok bool) {
	s.heads.mu.Lock()
	defer s.heads.mu.Unlock()
	h, ok := s.heads.m[room]
	return h.seq, ok
}

// recordingSender runs batches on q and records their statements.
type recordingSender struct {
	q       batchSender
	sql     []string
	batches [][]string
}

func (r *recordingSender) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	var batch []string
	for _, qq := range b.QueuedQueries {
		batch = append(batch, qq.SQL)
	}
	r.sql = append(r.sql, batch...)
	r.batches = append(r.batches, batch)
	return r.q.SendBatch(ctx, b)
}

// AppendStatements appends reqs as the group-commit writer does (ownTx: in
// a transaction of its own on a pooled connection) or as AppendTx does
// (inside tx, which the caller commits), and returns the statements sent.
func (s *Store) AppendStatements(ctx context.Context, tx pgx.Tx, reqs []AppendRequest) ([]string, error) {
	sub, err := s.newSubmission(ctx, reqs)
	if err != nil {
		return nil, err
	}
	rec := &recordingSender{}
	if tx != nil {
		rec.q = tx
		_, _, _, err = s.appendInTx(ctx, rec, []*submission{sub}, false, false)
		return rec.sql, err
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	rec.q = conn
	_, _, _, err = s.appendInTx(ctx, rec, []*submission{sub}, true, false)
	return rec.sql, err
}

// WithoutHeadCache makes every group commit of s read the heads first
// (two round trips), as before the one-round-trip append. Call it before
// the first append.
func (s *Store) WithoutHeadCache() { s.heads = nil }

// ReadRoomsStepped is ReadRooms' byte-bounded read (readRoomsStepped),
// which also returns how many rows PostgreSQL sent.
func (s *Store) ReadRoomsStepped(ctx context.Context, cursors map[domain.Room]int64, limit, maxBytes int) ([]Page, int, error) {
	var rooms []string
	var afters []int64
	for r, a := range cursors {
		rooms = append(rooms, string(r))
		afters = append(afters, a)
	}
	pages, ordered, fetched, err := s.readRoomsStepped(ctx, rooms, afters, limit, int64(maxBytes))
	if err == nil && !ordered {
		err = errors.New("rows out of order")
	}
	return pages, fetched, err
}

// SetBatchTimeout sets the bound of one group commit; call it before
// Start.
func (s *Store) SetBatchTimeout(d time.Duration) { s.batchTimeout = d }

// RoomLockKey is the advisory lock key an append takes for room.
func RoomLockKey(room string) int64 { return lockKey("room", room) }
