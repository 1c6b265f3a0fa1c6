package eventstore

import (
	"context"
	"fmt"
	"slices"
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

// MembershipSnapshot is the membership read model's answer for one user
// and some rooms, together with the events the model has not applied yet
// that may change it, all read from one snapshot.
type MembershipSnapshot struct {
	// Members are those of the asked rooms whose membership lists the
	// user in the model.
	Members []domain.Room
	// Pending are the events of the asked types after the model's
	// checkpoint (one delivery per room the event went to), in tail order.
	Pending []domain.Delivery
	// Truncated says more events were pending than the limit: Pending is
	// then incomplete and must not be applied.
	Truncated bool
}

// membershipSnapshotSQL reads, in one statement and so one snapshot, the
// model's rows for $2 in rooms $3 (model = true) and the events of types
// $4 after checkpoint $1 (all of them if it has none), at most $5.
const membershipSnapshotSQL = `
WITH cp AS MATERIALIZED (
	SELECT coalesce(max(txid), '0'::xid8) AS t, coalesce(max(event_row), 0) AS r
	FROM checkpoints WHERE name = $1
), pending AS (
	-- Scalar subqueries, not a join with cp: as parameters they bound
	-- the scan of events_tail instead of filtering the whole log.
	SELECT e.id, e.txid, e.event_id, e.room, e.seq, e.type, e.payload, e.producer, e.created_at
	FROM events e
	WHERE (e.txid, e.id) > ((SELECT t FROM cp), (SELECT r FROM cp)) AND e.type = ANY($4::text[])
	ORDER BY e.txid, e.id
	LIMIT $5
)
SELECT true, 0::int8, '0', '', m.room, 0::int8, '', NULL::json, '', now()
FROM room_members m WHERE m.user_id = $2 AND m.room = ANY($3::text[])
UNION ALL
SELECT false, p.id, p.txid::text, p.event_id::text, p.room, p.seq, p.type, p.payload, p.producer, p.created_at
FROM pending p`

// MembershipSnapshot returns the membership model's rows for userID among
// rooms and up to limit events of types that committed after the model's
// checkpoint (checkpoint names the projection), from one snapshot. A
// reader that applies Pending to Members sees every membership change as
// soon as it commits, however far the projection lags.
func (s *Store) MembershipSnapshot(ctx context.Context, checkpoint, userID string, rooms []domain.Room, types []string, limit int) (MembershipSnapshot, error) {
	var snap MembershipSnapshot
	if len(rooms) == 0 {
		return snap, nil
	}
	names := roomNames(rooms)
	rows, err := s.pool.Query(ctx, membershipSnapshotSQL, checkpoint, userID, names, types, limit+1)
	if err != nil {
		return snap, classify("membership snapshot", err)
	}
	defer rows.Close()
	for rows.Next() {
		var model bool
		var d domain.Delivery
		var txid, room string
		var payload []byte
		if err := rows.Scan(&model, &d.Position.ID, &txid, &d.ID, &room, &d.Seq, &d.Type, &payload, &d.Producer, &d.OccurredAt); err != nil {
			return snap, classify("membership snapshot", err)
		}
		if model {
			snap.Members = append(snap.Members, domain.Room(room))
			continue
		}
		if d.Position.Txid, err = strconv.ParseUint(txid, 10, 64); err != nil {
			return snap, fmt.Errorf("membership snapshot: txid %q: %w", txid, err)
		}
		d.Room, d.Payload = domain.Room(room), payload
		snap.Pending = append(snap.Pending, d)
	}
	if err := rows.Err(); err != nil {
		return snap, classify("membership snapshot", err)
	}
	// UNION ALL keeps no order: put the events back in tail order.
	slices.SortFunc(snap.Pending, func(a, b domain.Delivery) int {
		switch {
		case a.Position.Less(b.Position):
			return -1
		case b.Position.Less(a.Position):
			return 1
		}
		return 0
	})
	if len(snap.Pending) > limit {
		snap.Pending, snap.Truncated = snap.Pending[:limit], true
	}
	return snap, nil
}
