package eventstore

import (
	"context"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/roomlog/roomlog/domain"
)

// MembershipChange is one change to apply to the membership read model,
// with the log position of the event that implied it.
type MembershipChange struct {
	domain.MembershipChange
	Position domain.Position
}

// ApplyMembership applies changes in order and saves checkpoint name at
// next, in one transaction: a crash never applies a batch twice or skips
// one.
func (s *Store) ApplyMembership(ctx context.Context, name string, changes []MembershipChange, next domain.Position) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for _, c := range changes {
			if c.Added {
				b.Queue(`INSERT INTO room_members (room, user_id, since_txid, since_row) VALUES ($1, $2, $3::text::xid8, $4)
					ON CONFLICT (room, user_id) DO NOTHING`,
					string(c.Room), c.UserID, strconv.FormatUint(c.Position.Txid, 10), c.Position.ID)
			} else {
				b.Queue(`DELETE FROM room_members WHERE room = $1 AND user_id = $2`, string(c.Room), c.UserID)
			}
		}
		if b.Len() > 0 {
			if err := tx.SendBatch(ctx, b).Close(); err != nil {
				return classify("apply membership", err)
			}
		}
		return s.SaveCheckpointTx(ctx, tx, name, next)
	})
}

// IsMember reports whether userID is a member of the shared room.
func (s *Store) IsMember(ctx context.Context, room domain.Room, userID string) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM room_members WHERE room = $1 AND user_id = $2)", string(room), userID).Scan(&ok)
	if err != nil {
		return false, classify("is member", err)
	}
	return ok, nil
}

// Members lists the members of a shared room, ascending.
func (s *Store) Members(ctx context.Context, room domain.Room) ([]string, error) {
	rows, err := s.pool.Query(ctx, "SELECT user_id FROM room_members WHERE room = $1 ORDER BY user_id", string(room))
	if err != nil {
		return nil, classify("members", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, classify("members", err)
	}
	return out, nil
}
