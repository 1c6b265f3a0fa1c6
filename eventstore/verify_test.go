package eventstore_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/eventstoretest"
)

// tamper runs statements as a superuser who bypasses the append-only
// triggers, as an attacker with database access would.
func tamper(t *testing.T, pool *pgxpool.Pool, stmts ...string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SET session_replication_role = replica"); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(ctx, "SET session_replication_role = origin") //nolint:errcheck
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	const room = "chat-v"
	setup := func(t *testing.T) (*eventstore.Store, *pgxpool.Pool) {
		pool := eventstoretest.New(t)
		s := newStore(t, pool, nil)
		for i := 1; i <= 6; i++ {
			// Other rooms in between, so the chain is per room.
			if _, err := s.Append(context.Background(), req("x-v", fmt.Sprintf(`{"i":%d,"text":"héllo"}`, i), room, "user-other")); err != nil {
				t.Fatal(err)
			}
		}
		return s, pool
	}
	tests := []struct {
		name    string
		tamper  []string
		wantBad int64
	}{
		{"Intact", nil, 0},
		{"ModifiedPayload", []string{`UPDATE events SET payload = '{"i":3,"text":"forged"}' WHERE room = 'chat-v' AND seq = 3`}, 3},
		{"ModifiedType", []string{`UPDATE events SET type = 'x-forged' WHERE room = 'chat-v' AND seq = 4`}, 4},
		{"DeletedMiddle", []string{`DELETE FROM events WHERE room = 'chat-v' AND seq = 2`}, 2},
		{"Reordered", []string{
			`UPDATE events SET seq = 100 WHERE room = 'chat-v' AND seq = 2`,
			`UPDATE events SET seq = 2 WHERE room = 'chat-v' AND seq = 3`,
			`UPDATE events SET seq = 3 WHERE room = 'chat-v' AND seq = 100`,
		}, 2},
		{"Inserted", []string{
			// Shift 4..6 up and forge a new row 4 that copies row 3's
			// hash fields but not a valid chain link.
			`UPDATE events SET seq = seq + 1000 WHERE room = 'chat-v' AND seq >= 4`,
			`UPDATE events SET seq = seq - 999 WHERE room = 'chat-v' AND seq >= 1000`,
			`INSERT INTO events (event_id, room, seq, type, payload, producer, created_at, prev_hash, hash)
			 SELECT gen_random_uuid(), room, 4, 'x-v', '{"forged":true}', producer, created_at, hash, hash FROM events WHERE room = 'chat-v' AND seq = 3`,
			`UPDATE room_heads SET seq = 7 WHERE room = 'chat-v'`,
		}, 4},
		{"TruncatedTail", []string{`DELETE FROM events WHERE room = 'chat-v' AND seq >= 5`}, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, pool := setup(t)
			tamper(t, pool, tt.tamper...)
			res, err := s.Verify(context.Background(), room)
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantBad == 0 {
				if !res.OK || res.Checked != 6 {
					t.Fatalf("intact room: %+v", res)
				}
				return
			}
			if res.OK || res.FirstBadSeq != tt.wantBad {
				t.Fatalf("got %+v, want first bad seq %d", res, tt.wantBad)
			}
			// The untouched room still verifies.
			other, err := s.Verify(context.Background(), "user-other")
			if err != nil || !other.OK {
				t.Fatalf("other room: %+v, %v", other, err)
			}
		})
	}
}
