package eventstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/roomlog/roomlog/domain"
)

// VerifyResult is the outcome of walking one room's hash chain.
type VerifyResult struct {
	Room domain.Room
	// OK is true when every row, the sequence and the head agree.
	OK bool
	// Checked is how many rows were examined.
	Checked int64
	// FirstBadSeq is the first seq at which the chain breaks (0 when OK).
	FirstBadSeq int64
	// Reason says what broke, for humans.
	Reason string
}

// Verify walks room's rows in seq order and recomputes the hash chain. It
// reports the first bad seq for a modified row (hash mismatch), a deleted
// row (seq gap), reordered rows (prev_hash mismatch), an inserted row
// (prev_hash mismatch or seq clash) and a truncated tail (the head names a
// seq or hash the rows do not reach). A room with no rows and no head is
// reported as OK with nothing checked.
func (s *Store) Verify(ctx context.Context, room domain.Room) (VerifyResult, error) {
	res := VerifyResult{Room: room}
	var headSeq int64
	var headHash []byte
	err := s.pool.QueryRow(ctx, "SELECT seq, hash FROM room_heads WHERE room = $1", string(room)).Scan(&headSeq, &headHash)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return res, classify("verify: read head", err)
	}
	prev := genesisHash
	expect := int64(1)
	const page = 2000
	for {
		rows, err := s.pool.Query(ctx, `SELECT seq, event_id::text, type, producer, created_at, payload::text, prev_hash, hash
			FROM events WHERE room = $1 AND seq >= $2 ORDER BY seq LIMIT $3`, string(room), expect, page)
		if err != nil {
			return res, classify("verify: read rows", err)
		}
		n := 0
		for rows.Next() {
			n++
			var seq int64
			var id, typ, producer, payload string
			var at time.Time
			var prevHash, hash []byte
			if err := rows.Scan(&seq, &id, &typ, &producer, &at, &payload, &prevHash, &hash); err != nil {
				rows.Close()
				return res, classify("verify: scan", err)
			}
			res.Checked++
			fail := func(reason string) {
				res.FirstBadSeq, res.Reason = expect, reason
			}
			eid, perr := uuid.Parse(id)
			switch {
			case seq != expect:
				fail(fmt.Sprintf("seq %d missing (next row has seq %d)", expect, seq))
			case perr != nil:
				fail("unparseable event id")
			case !bytes.Equal(prevHash, prev):
				fail("prev_hash does not match the previous row's hash")
			case !bytes.Equal(hash, rowHash(prev, seq, eid, string(room), typ, producer, at, []byte(payload))):
				fail("row content does not match its hash")
			}
			if res.FirstBadSeq != 0 {
				rows.Close()
				return res, nil
			}
			prev = hash
			expect++
		}
		if err := rows.Err(); err != nil {
			return res, classify("verify: read rows", err)
		}
		if n < page {
			break
		}
	}
	last := expect - 1
	switch {
	case headSeq > last:
		res.FirstBadSeq, res.Reason = last+1, fmt.Sprintf("head is seq %d but rows end at %d", headSeq, last)
	case headSeq < last:
		res.FirstBadSeq, res.Reason = headSeq+1, fmt.Sprintf("rows continue past the head (seq %d)", headSeq)
	case last > 0 && !bytes.Equal(headHash, prev):
		res.FirstBadSeq, res.Reason = last, "head hash does not match the last row"
	default:
		res.OK = true
	}
	return res, nil
}

// Rooms lists room names that have events, ascending, after the given name,
// for walking every room (e.g. verify all).
func (s *Store) Rooms(ctx context.Context, after string, limit int) ([]domain.Room, error) {
	rows, err := s.pool.Query(ctx, "SELECT room FROM room_heads WHERE room > $1 ORDER BY room LIMIT $2", after, clampLimit(limit))
	if err != nil {
		return nil, classify("list rooms", err)
	}
	defer rows.Close()
	var out []domain.Room
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			return nil, classify("list rooms: scan", err)
		}
		out = append(out, domain.Room(r))
	}
	return out, classify("list rooms", rows.Err())
}
