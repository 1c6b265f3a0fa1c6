package eventstore

import (
	"context"
	"math"

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

// recordingSender runs batches on q and records their statements.
type recordingSender struct {
	q   batchSender
	sql []string
}

func (r *recordingSender) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	for _, qq := range b.QueuedQueries {
		r.sql = append(r.sql, qq.SQL)
	}
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
		_, _, _, err = s.appendInTx(ctx, rec, []*submission{sub}, false)
		return rec.sql, err
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	rec.q = conn
	_, _, _, err = s.appendInTx(ctx, rec, []*submission{sub}, true)
	return rec.sql, err
}
