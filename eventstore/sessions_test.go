package eventstore_test

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/eventstoretest"
)

// TestExtendSessionsStale: a refresh with a stale bound leaves sessions
// that expire late enough untouched and pushes the others; stale 0 pushes
// every unexpired session.
func TestExtendSessionsStale(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := eventstoretest.New(t)
	s := newStore(t, pool, nil)
	expiry := func(pid string) time.Duration {
		t.Helper()
		var left float64
		if err := pool.QueryRow(ctx, "SELECT extract(epoch FROM expires_at - now()) FROM socket_sessions WHERE pid = $1", pid).Scan(&left); err != nil {
			t.Fatal(err)
		}
		return time.Duration(left * float64(time.Second))
	}
	for _, pid := range []string{"fresh", "old"} {
		sess := eventstore.SocketSession{PID: pid, SID: "sid-" + pid, UserID: "u1", Node: "n1", Rooms: map[domain.Room]domain.Position{"user-u1": {Txid: 1}}}
		if err := s.SaveSession(ctx, sess, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	// "old" was last extended long ago: 20 minutes of its hour are gone.
	if _, err := pool.Exec(ctx, "UPDATE socket_sessions SET expires_at = now() + interval '40 minutes' WHERE pid = 'old'"); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		ttl   time.Duration
		stale time.Duration
		fresh [2]time.Duration // expected range of time left
		old   [2]time.Duration
	}{
		{"a refresh skips what expires late enough", time.Hour, 10 * time.Minute,
			[2]time.Duration{59 * time.Minute, time.Hour}, [2]time.Duration{59 * time.Minute, time.Hour}},
		{"stale 0 rewrites every row", 2 * time.Hour, 0,
			[2]time.Duration{119 * time.Minute, 2 * time.Hour}, [2]time.Duration{119 * time.Minute, 2 * time.Hour}},
		{"nothing is stale for a short refresh", time.Minute, 30 * time.Second,
			[2]time.Duration{119 * time.Minute, 2 * time.Hour}, [2]time.Duration{119 * time.Minute, 2 * time.Hour}},
	}
	for _, tt := range tests {
		if err := s.ExtendSessions(ctx, []string{"fresh", "old"}, tt.ttl, tt.stale); err != nil {
			t.Fatal(err)
		}
		for pid, want := range map[string][2]time.Duration{"fresh": tt.fresh, "old": tt.old} {
			if got := expiry(pid); got < want[0] || got > want[1] {
				t.Errorf("%s: %s expires in %s, want %s..%s", tt.name, pid, got, want[0], want[1])
			}
		}
	}
}

// TestReadRecoveryDeliveries checks ReadRecovery's deliveries against
// ReadTail's independent scan of the same rows: page after page below one
// horizon, each room after its own position, merged in (txid, id) order,
// with payloads larger than a payload chunk and event ids shared by rooms.
func TestReadRecoveryDeliveries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, eventstoretest.New(t), nil)
	big := `{"big":"` + strings.Repeat("y", 100<<10) + `"}`
	for batch := range 3 {
		var reqs []eventstore.AppendRequest
		for i := range 10 {
			switch {
			case i == 3:
				reqs = append(reqs, req("x-big", big, "user-1"))
			case i%2 == 0:
				reqs = append(reqs, req("x-a", fmt.Sprintf(`{"i":%d,"s":"é \"q\" \u2028"}`, batch*10+i), "user-1", "chat-1"))
			default:
				reqs = append(reqs, req("x-b", fmt.Sprintf(`[%d, {"k": null}]`, batch*10+i), "chat-1", "user-2"))
			}
		}
		if _, err := s.AppendBatch(ctx, reqs); err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.ReadTail(ctx, domain.Position{}, eventstore.MaxReadLimit)
	if err != nil {
		t.Fatal(err)
	}
	// user-1 from the start, chat-1 after its 5th delivery, user-2 not
	// at all.
	from := map[domain.Room]domain.Position{"user-1": {}}
	var want []domain.Delivery
	seen := 0
	for _, d := range all {
		if d.Room == "chat-1" {
			if seen++; seen == 5 {
				from["chat-1"] = d.Position
			}
		}
	}
	for _, d := range all {
		if p, ok := from[d.Room]; ok && p.Less(d.Position) {
			want = append(want, d)
		}
	}
	horizon, err := s.WriterHorizon(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, limit := range []int{1, 7, 1000} {
		after := maps.Clone(from)
		var got []domain.Delivery
		for {
			page, err := s.ReadRecovery(ctx, after, horizon, limit)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, page...)
			for _, d := range page {
				for r, p := range after {
					if p.Less(d.Position) {
						after[r] = d.Position
					}
				}
			}
			if len(page) < limit {
				break
			}
		}
		if len(got) != len(want) {
			t.Fatalf("limit %d: read %d deliveries, want %d", limit, len(got), len(want))
		}
		for i, d := range want {
			g := got[i]
			if g.ID != d.ID || g.Type != d.Type || string(g.Payload) != string(d.Payload) || g.Producer != d.Producer ||
				!g.OccurredAt.Equal(d.OccurredAt) || g.OccurredAt.Location() != time.UTC || g.Room != d.Room || g.Seq != d.Seq || g.Position != d.Position {
				t.Fatalf("limit %d: #%d:\n got %+v\nwant %+v", limit, i, g, d)
			}
			if cap(g.Payload) != len(g.Payload) {
				t.Fatalf("limit %d: #%d: payload can grow into its neighbour (cap %d > len %d)", limit, i, cap(g.Payload), len(g.Payload))
			}
		}
	}
	if _, err := s.ReadRecovery(ctx, from, 0, 10); err == nil {
		t.Fatal("ReadRecovery read without a horizon")
	}
}
