package socketio_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
)

// statusChanges returns the user-status-change payloads c received for
// user.
func statusChanges(t testing.TB, c *client, user string) []domain.UserStatusChange {
	t.Helper()
	var out []domain.UserStatusChange
	for _, m := range c.events(domain.EventUserStatusChange) {
		var p domain.UserStatusChange
		if err := json.Unmarshal(m.Args[0], &p); err != nil {
			t.Fatal(err)
		}
		if md := meta(t, m); md.Room != domain.RoomGlobal {
			t.Errorf("user-status-change through %s, want global", md.Room)
		}
		if p.UserID == user {
			out = append(out, p)
		}
	}
	return out
}

// settle appends a marker to global and waits until c has it: every event
// logged before it has then reached c.
func settle(t testing.TB, s *server, c *client) {
	t.Helper()
	m := appendEvent(t, s.Store, "x-settle", `{}`, domain.RoomGlobal)
	waitEvent(t, c, "x-settle", domain.RoomGlobal, m.Deliveries[0].Seq)
}

// expectStatuses waits until c has exactly want (statuses, in order) for
// user, and checks nothing more arrives before a marker.
func expectStatuses(t testing.TB, s *server, c *client, user string, want ...domain.PresenceStatus) []domain.UserStatusChange {
	t.Helper()
	var got []domain.UserStatusChange
	checkFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		got = statusChanges(t, c, user)
		if len(got) < len(want) {
			return fmt.Errorf("%s: %d status changes, want %d", user, len(got), len(want))
		}
		return nil
	})
	settle(t, s, c)
	got = statusChanges(t, c, user)
	if len(got) != len(want) {
		t.Fatalf("%s: got %d status changes %+v, want %v", user, len(got), got, want)
	}
	for i, p := range got {
		if p.Status != want[i] {
			t.Fatalf("%s: status change %d is %s, want %s", user, i, p.Status, want[i])
		}
	}
	return got
}

func presenceOf(t testing.TB, s *eventstore.Store, user string) eventstore.PresenceStatus {
	t.Helper()
	ps, err := s.Presence(context.Background(), []string{user})
	if err != nil {
		t.Fatal(err)
	}
	return ps[0]
}

// TestPresence runs four server processes over one database: a, b, a
// crashing one and a gracefully stopping one.
func TestPresence(t *testing.T) {
	t.Parallel()
	pool := newDB(t)
	a := newServer(t, pool, serverOpts{Membership: true})
	b := newServer(t, samePool(t, pool), serverOpts{})
	node := startNode(t)
	obs := node.connect("observer", a.URL, wsOpts(token(t, "watcher")))
	obs.connected(t)

	t.Run("TabsAndDevicesAcrossServers", func(t *testing.T) {
		tab1 := node.connect("u1-tab1", a.URL, wsOpts(token(t, "u1")))
		tab2 := node.connect("u1-tab2", b.URL, pollOpts(token(t, "u1")))
		tab3 := node.connect("u1-tab3", a.URL, wsOpts(token(t, "u1")))
		for _, c := range []*client{tab1, tab2, tab3} {
			c.connected(t)
		}
		if p := presenceOf(t, a.Store, "u1"); p.Status != domain.StatusOffline || !p.LastSeen.IsZero() {
			t.Fatalf("never seen user: %+v", p)
		}
		start := time.Now()
		tab1.mustOK(t, "user-online", "u1")
		tab1.mustOK(t, "user-online", "u1") // again: nothing new
		got := expectStatuses(t, a, obs, "u1", domain.StatusOnline)
		if d := got[0].LastSeen.Sub(start); d < -time.Second || d > 10*time.Second {
			t.Errorf("online lastSeen %s is not about now (%s)", got[0].LastSeen, start)
		}
		if p := presenceOf(t, b.Store, "u1"); p.Status != domain.StatusOnline {
			t.Errorf("presence after the first tab: %+v", p)
		}
		// user-online joins the user's room.
		r := appendEvent(t, a.Store, domain.EventUnreadCountUpdate, `{"unreadCount":1}`, "user-u1")
		waitEvent(t, tab1, domain.EventUnreadCountUpdate, "user-u1", r.Deliveries[0].Seq)

		tab2.mustOK(t, "user-online", "u1") // another server
		tab3.mustOK(t, "user-online", "u1") // another tab on the same server
		expectStatuses(t, a, obs, "u1", domain.StatusOnline)

		tab1.disconnect()
		tab3.disconnect()
		checkFor(t, 20*time.Second, 10*time.Millisecond, func() error {
			if n := a.Hub.Stats().Sockets; n != 1 {
				return fmt.Errorf("%d sockets on a", n)
			}
			return nil
		})
		expectStatuses(t, a, obs, "u1", domain.StatusOnline)

		beforeLast := time.Now()
		tab2.disconnect() // the last one, on b
		got = expectStatuses(t, a, obs, "u1", domain.StatusOnline, domain.StatusOffline)
		if d := got[1].LastSeen.Sub(beforeLast); d < -time.Second || d > 10*time.Second {
			t.Errorf("offline lastSeen %s is not about the disconnect (%s)", got[1].LastSeen, beforeLast)
		}
		p := presenceOf(t, a.Store, "u1")
		if p.Status != domain.StatusOffline || !p.LastSeen.Equal(got[1].LastSeen) {
			t.Errorf("presence %+v, want offline last seen %s (the event's)", p, got[1].LastSeen)
		}
	})

	t.Run("OnlyOwnUser", func(t *testing.T) {
		c := node.connect("liar", a.URL, wsOpts(token(t, "u2")))
		c.connected(t)
		if ack := c.call(t, "user-online", "u9"); ack.OK || ack.Error.Code != "forbidden" {
			t.Fatalf("user-online for another user = %s", ack)
		}
		expectStatuses(t, a, obs, "u9")
		if p := presenceOf(t, a.Store, "u9"); p.Status != domain.StatusOffline {
			t.Errorf("u9: %+v", p)
		}
	})

	t.Run("CrashedServerSwept", func(t *testing.T) {
		crashy := newServer(t, samePool(t, pool), serverOpts{})
		u3 := node.connect("u3", crashy.URL, wsOpts(token(t, "u3")))
		u3.connected(t)
		u3.mustOK(t, "user-online", "u3")
		expectStatuses(t, a, obs, "u3", domain.StatusOnline)
		crashed := time.Now()
		crashy.Hub.Crash()
		// a and b sweep it within PresenceTTL (1s) + a heartbeat.
		var got []domain.UserStatusChange
		checkFor(t, 20*time.Second, 10*time.Millisecond, func() error {
			if got = statusChanges(t, obs, "u3"); len(got) < 2 {
				return fmt.Errorf("u3 not offline yet")
			}
			return nil
		})
		if took := time.Since(crashed); took > 5*time.Second {
			t.Errorf("crashed server's user went offline after %s", took)
		}
		got = expectStatuses(t, a, obs, "u3", domain.StatusOnline, domain.StatusOffline)
		if got[1].LastSeen.After(crashed.Add(time.Second)) {
			t.Errorf("lastSeen %s is after the crash (%s): want the last heartbeat", got[1].LastSeen, crashed)
		}
	})

	t.Run("GracefulStopAnnouncesOffline", func(t *testing.T) {
		leaving := newServer(t, samePool(t, pool), serverOpts{})
		u4 := node.connect("u4", leaving.URL, wsOpts(token(t, "u4")))
		u4b := node.connect("u4-on-a", a.URL, wsOpts(token(t, "u4")))
		u5 := node.connect("u5", leaving.URL, wsOpts(token(t, "u5")))
		for _, c := range []*client{u4, u4b, u5} {
			c.connected(t)
			c.mustOK(t, "user-online", c.id[:2])
		}
		expectStatuses(t, a, obs, "u4", domain.StatusOnline)
		expectStatuses(t, a, obs, "u5", domain.StatusOnline)
		leaving.Hub.Stop(context.Background())
		m := node.wait(t, 20*time.Second, "u5 disconnect", func(m jsMsg) bool { return m.T == "disconnect" && m.ID == "u5" })
		// Not "io server disconnect", after which socket.io-client would
		// not reconnect (to another server).
		if m.Reason != "transport close" && m.Reason != "transport error" {
			t.Errorf("client saw %q at shutdown, want a transport close", m.Reason)
		}
		// u5 had no other socket; u4 is still on a.
		expectStatuses(t, a, obs, "u5", domain.StatusOnline, domain.StatusOffline)
		expectStatuses(t, a, obs, "u4", domain.StatusOnline)
	})
}
