package eventstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/eventstoretest"
)

// statusEvents returns the user-status-change events in global, in order.
func statusEvents(t *testing.T, s *eventstore.Store) []domain.UserStatusChange {
	t.Helper()
	var out []domain.UserStatusChange
	var after int64
	for {
		page, err := s.ReadRoom(context.Background(), domain.RoomGlobal, after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range page.Events {
			after = d.Seq
			if d.Type != domain.EventUserStatusChange {
				continue
			}
			if d.Producer != eventstore.PresenceProducer {
				t.Errorf("status change produced by %q", d.Producer)
			}
			if err := domain.ValidatePublish(d.Type, []domain.Room{d.Room}, d.Payload); err != nil {
				t.Errorf("logged status change is invalid: %v", err)
			}
			var p domain.UserStatusChange
			if err := json.Unmarshal(d.Payload, &p); err != nil {
				t.Fatal(err)
			}
			out = append(out, p)
		}
		if !page.More {
			return out
		}
	}
}

func statuses(evs []domain.UserStatusChange, user string) []domain.PresenceStatus {
	var out []domain.PresenceStatus
	for _, e := range evs {
		if e.UserID == user {
			out = append(out, e.Status)
		}
	}
	return out
}

func sess(node, socket, user string) eventstore.PresenceSession {
	return eventstore.PresenceSession{Node: node, SocketID: socket, UserID: user}
}

func TestPresence(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	setup := func(t *testing.T) *eventstore.Store {
		return newStore(t, eventstoretest.New(t), nil)
	}
	at := time.Date(2026, 5, 1, 12, 0, 0, 123456000, time.UTC)

	t.Run("FirstAndLastSessionAnnounce", func(t *testing.T) {
		t.Parallel()
		s := setup(t)
		for _, step := range []struct {
			op          string
			node, sock  string
			wantChanged bool
		}{
			{"connect", "n1", "a", true},
			{"connect", "n1", "a", false}, // again
			{"connect", "n1", "b", false}, // another tab
			{"connect", "n2", "c", false}, // another node
			{"disconnect", "n1", "a", false},
			{"disconnect", "n1", "a", false}, // again
			{"disconnect", "n2", "c", false},
			{"disconnect", "n1", "b", true}, // the last one
			{"disconnect", "n9", "zz", false},
			{"connect", "n2", "d", true},
		} {
			var changed bool
			var err error
			if step.op == "connect" {
				changed, err = s.PresenceConnect(ctx, sess(step.node, step.sock, "u1"), at)
			} else {
				changed, err = s.PresenceDisconnect(ctx, step.node, step.sock, at.Add(time.Minute))
			}
			if err != nil {
				t.Fatal(err)
			}
			if changed != step.wantChanged {
				t.Fatalf("%s %s/%s: changed %v, want %v", step.op, step.node, step.sock, changed, step.wantChanged)
			}
		}
		evs := statusEvents(t, s)
		want := []domain.UserStatusChange{
			{UserID: "u1", Status: domain.StatusOnline, LastSeen: at},
			{UserID: "u1", Status: domain.StatusOffline, LastSeen: at.Add(time.Minute)},
			{UserID: "u1", Status: domain.StatusOnline, LastSeen: at},
		}
		if len(evs) != len(want) {
			t.Fatalf("events %+v, want %+v", evs, want)
		}
		for i := range want {
			if evs[i].UserID != want[i].UserID || evs[i].Status != want[i].Status || !evs[i].LastSeen.Equal(want[i].LastSeen) {
				t.Errorf("event %d = %+v, want %+v", i, evs[i], want[i])
			}
		}
		got, err := s.Presence(ctx, []string{"u1", "nobody", "u1"})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].UserID != "u1" || got[0].Status != domain.StatusOnline || got[0].LastSeen.IsZero() ||
			got[1].UserID != "nobody" || got[1].Status != domain.StatusOffline || !got[1].LastSeen.IsZero() {
			t.Errorf("Presence = %+v", got)
		}
		if _, err := s.PresenceDisconnect(ctx, "n2", "d", at.Add(2*time.Minute)); err != nil {
			t.Fatal(err)
		}
		got, err = s.Presence(ctx, []string{"u1"})
		if err != nil {
			t.Fatal(err)
		}
		if got[0].Status != domain.StatusOffline || !got[0].LastSeen.Equal(at.Add(2*time.Minute)) {
			t.Errorf("after the last goodbye: %+v", got[0])
		}
		if got, err := s.Presence(ctx, nil); err != nil || len(got) != 0 {
			t.Errorf("Presence(nil) = %v, %v", got, err)
		}
	})

	t.Run("InvalidSession", func(t *testing.T) {
		t.Parallel()
		s := setup(t)
		for _, bad := range []eventstore.PresenceSession{sess("", "a", "u1"), sess("n", "", "u1"), sess("n", "a", "bad id")} {
			if _, err := s.PresenceConnect(ctx, bad, at); domain.ErrorCode(err) != domain.CodeInvalid {
				t.Errorf("PresenceConnect(%+v) = %v, want invalid", bad, err)
			}
		}
	})

	t.Run("ConcurrentSocketsAcrossNodes", func(t *testing.T) {
		t.Parallel()
		// Many sockets of the same users come and go on three nodes at
		// once: every user's events must alternate online/offline and end
		// offline, whatever the interleaving.
		s := setup(t)
		const users, socketsPerUser = 4, 12
		var wg sync.WaitGroup
		for u := range users {
			for k := range socketsPerUser {
				wg.Go(func() {
					node := fmt.Sprintf("n%d", k%3)
					sock := fmt.Sprintf("s%d-%d", u, k)
					user := fmt.Sprintf("u%d", u)
					for range 3 {
						if _, err := s.PresenceConnect(ctx, sess(node, sock, user), at); err != nil {
							t.Error(err)
							return
						}
						if _, err := s.PresenceDisconnect(ctx, node, sock, at); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
		}
		wg.Wait()
		evs := statusEvents(t, s)
		for u := range users {
			st := statuses(evs, fmt.Sprintf("u%d", u))
			if len(st) == 0 || len(st)%2 != 0 {
				t.Fatalf("u%d: %v", u, st)
			}
			for i, x := range st {
				want := domain.StatusOnline
				if i%2 == 1 {
					want = domain.StatusOffline
				}
				if x != want {
					t.Fatalf("u%d: event %d is %s in %v", u, i, x, st)
				}
			}
		}
	})

	t.Run("SweepDeadNodes", func(t *testing.T) {
		t.Parallel()
		s := setup(t)
		if reg, err := s.PresenceHeartbeat(ctx, "alive"); err != nil || !reg {
			t.Fatalf("first heartbeat: %v, %v", reg, err)
		}
		if reg, err := s.PresenceHeartbeat(ctx, "alive"); err != nil || reg {
			t.Fatalf("second heartbeat: %v, %v", reg, err)
		}
		if _, err := s.PresenceHeartbeat(ctx, "dead"); err != nil {
			t.Fatal(err)
		}
		for _, x := range []eventstore.PresenceSession{
			sess("dead", "1", "only-dead"), sess("dead", "2", "only-dead"),
			sess("dead", "3", "both"), sess("alive", "4", "both"),
			sess("alive", "5", "only-alive"),
			sess("ghost", "6", "ghost-user"), // a node without a row
		} {
			if _, err := s.PresenceConnect(ctx, x, at); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Pool().Exec(ctx, `DELETE FROM presence_nodes WHERE node_id = 'ghost'`); err != nil {
			t.Fatal(err)
		}
		// Let "dead" miss its heartbeats: its row ages past the TTL.
		if _, err := s.Pool().Exec(ctx, `UPDATE presence_nodes SET heartbeat_at = now() - interval '1 minute' WHERE node_id = 'dead'`); err != nil {
			t.Fatal(err)
		}
		// Concurrent sweepers announce each user once.
		var wg sync.WaitGroup
		counts := make([]int, 3)
		for i := range counts {
			wg.Go(func() {
				n, err := s.PresenceSweep(ctx, 10*time.Second)
				if err != nil {
					t.Error(err)
				}
				counts[i] = n
			})
		}
		wg.Wait()
		if total := counts[0] + counts[1] + counts[2]; total != 2 {
			t.Errorf("sweeps announced %v users offline, want 2 (only-dead, ghost-user)", counts)
		}
		evs := statusEvents(t, s)
		for user, want := range map[string]string{
			"only-dead": "[online offline]", "ghost-user": "[online offline]",
			"both": "[online]", "only-alive": "[online]",
		} {
			if got := fmt.Sprint(statuses(evs, user)); got != want {
				t.Errorf("%s: %s, want %s", user, got, want)
			}
		}
		for _, e := range evs {
			if e.UserID == "only-dead" && e.Status == domain.StatusOffline && e.LastSeen.After(time.Now().Add(-50*time.Second)) {
				t.Errorf("offline lastSeen %s should be the dead node's last heartbeat", e.LastSeen)
			}
		}
		var nodes int
		if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM presence_nodes WHERE node_id = 'dead'`).Scan(&nodes); err != nil || nodes != 0 {
			t.Errorf("dead node row: %d, %v", nodes, err)
		}
		// A swept node that comes back learns it must re-register.
		if reg, err := s.PresenceHeartbeat(ctx, "dead"); err != nil || !reg {
			t.Errorf("heartbeat after the sweep: %v, %v; want registered", reg, err)
		}
		if n, err := s.PresenceSweep(ctx, 10*time.Second); err != nil || n != 0 {
			t.Errorf("second sweep: %d, %v", n, err)
		}
		if _, err := s.PresenceSweep(ctx, 0); domain.ErrorCode(err) != domain.CodeInvalid {
			t.Errorf("sweep with ttl 0: %v", err)
		}
	})

	t.Run("DropNode", func(t *testing.T) {
		t.Parallel()
		s := setup(t)
		for i := range 450 { // more than one chunk
			if _, err := s.PresenceConnect(ctx, sess("leaving", fmt.Sprint(i), fmt.Sprintf("u%d", i%300)), at); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.PresenceConnect(ctx, sess("staying", "x", "u7"), at); err != nil {
			t.Fatal(err)
		}
		n, err := s.PresenceDropNode(ctx, "leaving", at.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if n != 299 {
			t.Errorf("drop announced %d users offline, want 299 (u7 is still on another node)", n)
		}
		left, err := s.PresenceSessions(ctx, "leaving")
		if err != nil || len(left) != 0 {
			t.Errorf("sessions left: %v, %v", left, err)
		}
		kept, err := s.PresenceSessions(ctx, "staying")
		if err != nil || len(kept) != 1 || kept[0] != sess("staying", "x", "u7") {
			t.Errorf("sessions of the other node: %v, %v", kept, err)
		}
		ps, err := s.Presence(ctx, []string{"u7", "u8"})
		if err != nil {
			t.Fatal(err)
		}
		if ps[0].Status != domain.StatusOnline || ps[1].Status != domain.StatusOffline || !ps[1].LastSeen.Equal(at.Add(time.Hour)) {
			t.Errorf("presence after the drop: %+v", ps)
		}
	})

	t.Run("Volatile", func(t *testing.T) {
		t.Parallel()
		s := setup(t)
		lctx, cancel := context.WithCancel(ctx)
		ready := make(chan struct{}, 1)
		got := make(chan string, 10)
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.ListenVolatile(lctx, func() {
				select {
				case ready <- struct{}{}:
				default:
				}
			}, func(msg []byte) { got <- string(msg) })
		}()
		defer func() { cancel(); <-done }()
		<-ready
		for _, m := range []string{`{"a":1}`, `{"a":2}`} {
			if err := s.PublishVolatile(ctx, []byte(m)); err != nil {
				t.Fatal(err)
			}
		}
		for _, want := range []string{`{"a":1}`, `{"a":2}`} {
			select {
			case m := <-got:
				if m != want {
					t.Errorf("got %s, want %s", m, want)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("no volatile message")
			}
		}
		if err := s.PublishVolatile(ctx, make([]byte, eventstore.MaxVolatileBytes)); domain.ErrorCode(err) != domain.CodeTooLarge {
			t.Errorf("oversized volatile message: %v", err)
		}
		if page, err := s.ReadRoom(ctx, domain.RoomGlobal, 0, 10); err != nil || len(page.Events) != 0 {
			t.Errorf("volatile messages reached the log: %+v, %v", page, err)
		}
	})
}
