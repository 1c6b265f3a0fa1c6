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
