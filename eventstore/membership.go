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

// ApplyMembership applies changes, which must be in log order, and advances
// checkpoint name to next, in one transaction that locks the checkpoint:
// changes at or before the stored checkpoint are skipped, so a crash, a
// redelivered batch or a second process running the same projection never
// applies a change twice or moves the checkpoint backwards.
func (s *Store) ApplyMembership(ctx context.Context, name string, changes []MembershipChange, next domain.Position) error {
	return s.inProjection(ctx, name, []string{MembershipTable}, next, func(tx pgx.Tx, done domain.Position) error {
		b := &pgx.Batch{}
		for _, c := range changes {
			if !done.Less(c.Position) {
				continue
			}
			if c.Added {
				b.Queue(`INSERT INTO room_members (room, user_id, since_txid, since_row) VALUES ($1, $2, $3::text::xid8, $4)
					ON CONFLICT (room, user_id) DO NOTHING`,
					string(c.Room), c.UserID, strconv.FormatUint(c.Position.Txid, 10), c.Position.ID)
			} else {
				b.Queue(`DELETE FROM room_members WHERE room = $1 AND user_id = $2`, string(c.Room), c.UserID)
			}
		}
		if b.Len() == 0 {
			return nil
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return classify("apply membership", err)
		}
		return nil
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
