package eventstore_test

import (
	"context"
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
