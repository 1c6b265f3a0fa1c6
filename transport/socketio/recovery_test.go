package socketio_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/transport/socketio"
)

// recOpts are wsOpts with socket.io-client's reconnection on: after a drop
// the Manager reconnects after delay and sends its pid and offset.
func recOpts(tok string, delay time.Duration) map[string]any {
	o := wsOpts(tok)
	o["reconnection"] = true
	o["reconnectionDelay"] = delay.Milliseconds()
	o["reconnectionDelayMax"] = delay.Milliseconds()
	o["randomizationFactor"] = 0
	return o
}

// connects returns c's connect reports, oldest first.
func (c *client) connects() []jsMsg {
	return c.n.find(func(m jsMsg) bool { return m.ID == c.id && m.T == "connect" })
}

// waitConnects waits until c has connected n times and returns the n-th
// connect report.
func (c *client) waitConnects(t testing.TB, n int) jsMsg {
	t.Helper()
	var got jsMsg
	checkFor(t, 30*time.Second, 5*time.Millisecond, func() error {
		cs := c.connects()
		if len(cs) >= n {
			got = cs[n-1]
			return nil
		}
		return fmt.Errorf("%s: %d connects, want %d", c.id, len(cs), n)
	})
	return got
}

// drop closes c's transport from the client side; with url the client
// reconnects to that server.
func (c *client) drop(url string) {
	c.n.send(map[string]any{"op": "drop", "id": c.id, "url": url})
}

func (c *client) waitDisconnects(t testing.TB, n int) {
	t.Helper()
	checkFor(t, 20*time.Second, 5*time.Millisecond, func() error {
		if k := len(c.n.find(func(m jsMsg) bool { return m.ID == c.id && m.T == "disconnect" })); k < n {
			return fmt.Errorf("%s: %d disconnects, want %d", c.id, k, n)
		}
		return nil
	})
}

// exactly checks that c received room's seqs from..to, each once, in order.
func exactly(t testing.TB, c *client, room domain.Room, from, to int64) error {
	return contiguous(seqsIn(t, c, room), from, to)
}

func TestRecovery(t *testing.T) {
	t.Parallel()
	pool := newDB(t)
	a := newServer(t, pool, serverOpts{Membership: true})
	b := newServer(t, samePool(t, pool), serverOpts{})
	node := startNode(t)
	const chat = domain.Room("chat-rc1")
	a.grant(t, chat, "ru1", "ru2", "ru3") // seqs 1..3, internal

	t.Run("TransportDropThenLive", func(t *testing.T) {
		c := node.connect("drop1", a.URL, recOpts(token(t, "ru1"), 400*time.Millisecond))
		if m := c.connected(t); m.Recovered {
			t.Fatal("first connect reported recovered")
		}
		c.mustOK(t, socketio.EventJoinChatRoom, "rc1")
		c.mustOK(t, socketio.EventJoinUserRoom, "ru1")
		user := domain.Room("user-ru1")
		// One live event before the drop, so the client holds an offset
		// from an event as well as from session-offset.
		appendN(t, a.Store, user, 1)
		checkFor(t, 10*time.Second, 5*time.Millisecond, func() error { return exactly(t, c, user, 1, 1) })

		c.drop("")
		c.waitDisconnects(t, 1)
		const n = 25
		chatHead := appendN(t, a.Store, chat, n)
		appendN(t, a.Store, user, n)
		m := c.waitConnects(t, 2)
		if !m.Recovered {
			t.Fatal("reconnect: recovered = false, want true")
		}
		checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
			if err := exactly(t, c, chat, chatHead-n+1, chatHead); err != nil {
				return fmt.Errorf("chat: %w", err)
			}
			return exactly(t, c, user, 1, n+1)
		})
		// Then live, no gap and no duplicate at the hand-off.
		chatHead = appendN(t, a.Store, chat, 5)
		checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
			return exactly(t, c, chat, chatHead-n-5+1, chatHead)
		})
		// The client's rooms came back with it: a join ack is not needed.
		checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
			if st := a.Hub.Stats(); st.Recovered == 0 {
				return fmt.Errorf("stats: %+v", st)
			}
			return nil
		})
	})

	t.Run("NoEventBeforeDrop", func(t *testing.T) {
		// The client never received a logged event: session-offset alone
		// makes it recoverable.
		c := node.connect("drop2", a.URL, recOpts(token(t, "ru2"), 300*time.Millisecond))
		c.connected(t)
		c.mustOK(t, socketio.EventJoinUserRoom, "ru2")
		c.drop("")
		c.waitDisconnects(t, 1)
		user := domain.Room("user-ru2")
		appendN(t, a.Store, user, 7)
		if m := c.waitConnects(t, 2); !m.Recovered {
			t.Fatal("recovered = false")
		}
		checkFor(t, 10*time.Second, 5*time.Millisecond, func() error { return exactly(t, c, user, 1, 7) })
	})

	t.Run("OtherProcess", func(t *testing.T) {
		c := node.connect("drop3", a.URL, recOpts(token(t, "ru3"), 300*time.Millisecond))
		c.connected(t)
		c.mustOK(t, socketio.EventJoinChatRoom, "rc1")
		c.mustOK(t, socketio.EventJoinUserRoom, "ru3")
		user := domain.Room("user-ru3")
		appendN(t, a.Store, user, 3)
		checkFor(t, 10*time.Second, 5*time.Millisecond, func() error { return exactly(t, c, user, 1, 3) })
		first := int64(0)
		if s := seqsIn(t, c, chat); len(s) > 0 {
			first = s[0]
		}
		c.drop(b.URL)
		c.waitDisconnects(t, 1)
		chatHead := appendN(t, b.Store, chat, 10)
		appendN(t, a.Store, user, 10)
		if m := c.waitConnects(t, 2); !m.Recovered {
			t.Fatal("recovered on the second process = false")
		}
		// The stats move when the replay is written, which may be just
		// after the client saw its CONNECT.
		checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
			if b.Hub.Stats().Recovered == 0 {
				return errors.New("the second process did not recover the session")
			}
			return nil
		})
		checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
			if err := exactly(t, c, user, 1, 13); err != nil {
				return err
			}
			if first == 0 {
				return exactly(t, c, chat, chatHead-9, chatHead)
			}
			return exactly(t, c, chat, first, chatHead)
		})
		// Live from the second process.
		appendN(t, a.Store, user, 2)
		checkFor(t, 10*time.Second, 5*time.Millisecond, func() error { return exactly(t, c, user, 1, 15) })
	})

	t.Run("LeaveIsPersisted", func(t *testing.T) {
		c := node.connect("drop4", a.URL, recOpts(token(t, "ru1"), 300*time.Millisecond))
		c.connected(t)
		// Leaving a room is persisted: after recovery the socket is not in
		// it any more.
		c.mustOK(t, socketio.EventJoinChatRoom, "rc1")
		c.mustOK(t, socketio.EventLeaveChatRoom, "rc1")
		c.drop("")
		c.waitDisconnects(t, 1)
		appendN(t, a.Store, chat, 3)
		if m := c.waitConnects(t, 2); !m.Recovered {
			t.Fatal("recovered = false")
		}
		time.Sleep(300 * time.Millisecond) //nolint:forbidigo // waiting for events that must not come
		if s := seqsIn(t, c, chat); len(s) != 0 {
			t.Fatalf("got chat events %v after leaving the room", s)
		}
	})
}

func TestRecoveryPastWindow(t *testing.T) {
	t.Parallel()
	srv := newServer(t, newDB(t), serverOpts{Config: socketio.Config{RecoveryWindow: time.Second, HeartbeatInterval: 100 * time.Millisecond, PresenceTTL: time.Second}})
	node := startNode(t)
	// The client comes back 2.5 s after the drop, past the 1 s window.
	c := node.connect("late", srv.URL, recOpts(token(t, "lu1"), 2500*time.Millisecond))
	c.connected(t)
	c.mustOK(t, socketio.EventJoinUserRoom, "lu1")
	user := domain.Room("user-lu1")
	appendN(t, srv.Store, user, 2)
	checkFor(t, 10*time.Second, 5*time.Millisecond, func() error { return exactly(t, c, user, 1, 2) })
	c.drop("")
	c.waitDisconnects(t, 1)
	appendN(t, srv.Store, user, 4)
	m := c.waitConnects(t, 2)
	if m.Recovered {
		t.Fatal("recovered = true past the window")
	}
	// Nothing was replayed: the client catches up over REST.
	time.Sleep(200 * time.Millisecond) //nolint:forbidigo // waiting for events that must not come
	if err := exactly(t, c, user, 1, 2); err != nil {
		t.Fatal(err)
	}
	// Expired sessions are deleted.
	checkFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		var n int
		if err := srv.Store.Pool().QueryRow(context.Background(), "SELECT count(*) FROM socket_sessions WHERE expires_at <= now()").Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%d expired sessions left", n)
		}
		return nil
	})
}

// TestRecoveryConcurrent: publishers on two processes append to shared
// rooms while clients drop and recover repeatedly, alternating between the
// processes; every client ends with each room's seqs exactly 1..N.
func TestRecoveryConcurrent(t *testing.T) {
	t.Parallel()
	pool := newDB(t)
	a := newServer(t, pool, serverOpts{})
	b := newServer(t, samePool(t, pool), serverOpts{})
	servers := []*server{a, b}
	node := startNode(t)
	const nClients, drops = 6, 4
	// Global and sellers need no membership: every client reads both.
	rooms := []domain.Room{domain.RoomGlobal, domain.RoomSellers}
	clients := make([]*client, nClients)
	for i := range clients {
		u := fmt.Sprintf("cu%d", i)
		clients[i] = node.connect(u, servers[i%2].URL, recOpts(token(t, u, domain.RoleSeller), 100*time.Millisecond))
		clients[i].connected(t)
		clients[i].mustOK(t, socketio.EventJoinSellerRoom, u)
	}
	// Publish concurrently from both processes' stores.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var published atomic.Int64
	for p, s := range []*eventstore.Store{a.Store, b.Store} {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				room := rooms[(i+p)%len(rooms)]
				reqs := []eventstore.AppendRequest{{Type: "x-msg", Rooms: []domain.Room{room}, Payload: json.RawMessage(fmt.Sprintf(`{"p":%d,"i":%d}`, p, i)), Producer: "test"}}
				if _, err := s.AppendBatch(context.Background(), reqs); err != nil {
					t.Error(err)
					return
				}
				published.Add(1)
				time.Sleep(2 * time.Millisecond) //nolint:forbidigo // pacing the publishers
			}
		})
	}
	for d := 1; d <= drops; d++ {
		for i, c := range clients {
			c.drop(servers[(i+d)%2].URL)
		}
		for _, c := range clients {
			if m := c.waitConnects(t, d+1); !m.Recovered {
				t.Fatalf("%s: drop %d: recovered = false", c.id, d)
			}
		}
		time.Sleep(150 * time.Millisecond) //nolint:forbidigo // let events flow between drops
	}
	cancel()
	wg.Wait()
	heads := map[domain.Room]int64{}
	for _, r := range rooms {
		h, err := a.Store.Head(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		heads[r] = h
	}
	for _, c := range clients {
		for _, r := range rooms {
			checkFor(t, 20*time.Second, 10*time.Millisecond, func() error {
				got := seqsIn(t, c, r)
				if len(got) == 0 {
					return fmt.Errorf("%s: nothing in %s", c.id, r)
				}
				// The client joined after some events: from its first seq
				// on, every seq exactly once, in order, to the head.
				return exactly(t, c, r, got[0], heads[r])
			})
		}
	}
	t.Logf("published %d events; %d clients × %d drops, every room gap-free and duplicate-free", published.Load(), nClients, drops)
}

// TestRecoveryOtherUser: a session id alone is not a credential. Another
// user's token presenting a live session's pid and offset is refused, and
// the owner still recovers afterwards.
func TestRecoveryOtherUser(t *testing.T) {
	t.Parallel()
	srv := newServer(t, newDB(t), serverOpts{})
	node := startNode(t)
	victim := node.connect("victim", srv.URL, recOpts(token(t, "ou1"), 1500*time.Millisecond))
	victim.connected(t)
	victim.mustOK(t, socketio.EventJoinUserRoom, "ou1")
	user := domain.Room("user-ou1")
	appendN(t, srv.Store, user, 2)
	checkFor(t, 10*time.Second, 5*time.Millisecond, func() error { return exactly(t, victim, user, 1, 2) })
	node.send(map[string]any{"op": "state", "id": "victim"})
	st := node.wait(t, 10*time.Second, "victim state", func(m jsMsg) bool { return m.T == "state" && m.ID == "victim" })
	if st.PID == nil || st.Offset == nil {
		t.Fatalf("victim has no recovery session: %+v", st)
	}
	victim.drop("")
	victim.waitDisconnects(t, 1)
	appendN(t, srv.Store, user, 3)

	session := map[string]any{"pid": *st.PID, "offset": *st.Offset}
	node.send(map[string]any{"op": "connect", "id": "thief", "url": srv.URL, "opts": wsOpts(token(t, "ou2")), "session": session})
	m := node.wait(t, 20*time.Second, "thief connect", func(m jsMsg) bool {
		return m.ID == "thief" && (m.T == "connect" || m.T == "connect_error")
	})
	if m.T != "connect_error" || m.Message != "unauthorized" {
		t.Fatalf("another user's token with the victim's pid: %s %s recovered=%v", m.T, m.Message, m.Recovered)
	}
	if got := node.find(func(m jsMsg) bool { return m.ID == "thief" && m.T == "event" }); len(got) != 0 {
		t.Fatalf("the thief received %d events", len(got))
	}
	if m := victim.waitConnects(t, 2); !m.Recovered {
		t.Fatal("the owner did not recover after the refused attempt")
	}
	checkFor(t, 10*time.Second, 5*time.Millisecond, func() error { return exactly(t, victim, user, 1, 5) })
}

// TestRecoveryRevokedRoom: a restored session keeps only the rooms its
// token may still read, as of the log: the membership projection does not
// run here, so only the membership events after its (absent) checkpoint
// can tell the Hub that the user was removed.
func TestRecoveryRevokedRoom(t *testing.T) {
	t.Parallel()
	srv := newServer(t, newDB(t), serverOpts{})
	node := startNode(t)
	const chat = domain.Room("chat-rv1")
	srv.grant(t, chat, "vu1")
	c := node.connect("rv", srv.URL, recOpts(token(t, "vu1"), 800*time.Millisecond))
	c.connected(t)
	c.mustOK(t, socketio.EventJoinChatRoom, "rv1")
	c.mustOK(t, socketio.EventJoinUserRoom, "vu1")
	c.drop("")
	c.waitDisconnects(t, 1)
	// Removed from the chat while away.
	appendEvent(t, srv.Store, domain.EventRoomMemberRemoved, `{"userId":"vu1"}`, chat)
	appendN(t, srv.Store, chat, 3)
	user := domain.Room("user-vu1")
	appendN(t, srv.Store, user, 2)
	if m := c.waitConnects(t, 2); !m.Recovered {
		t.Fatal("recovered = false")
	}
	checkFor(t, 10*time.Second, 5*time.Millisecond, func() error { return exactly(t, c, user, 1, 2) })
	if s := seqsIn(t, c, chat); len(s) != 0 {
		t.Fatalf("got events %v of a chat the user was removed from", s)
	}
}

// TestLiveRevocation: a producer's room-member-removed takes the user's
// live sockets out of the room at once; they receive nothing more of it.
func TestLiveRevocation(t *testing.T) {
	t.Parallel()
	srv := newServer(t, newDB(t), serverOpts{Membership: true})
	node := startNode(t)
	const chat = domain.Room("chat-lr1")
	srv.grant(t, chat, "lu1", "lu2")
	gone := node.connect("lr-gone", srv.URL, wsOpts(token(t, "lu1")))
	gone.connected(t)
	gone.mustOK(t, socketio.EventJoinChatRoom, "lr1")
	stays := node.connect("lr-stays", srv.URL, wsOpts(token(t, "lu2")))
	stays.connected(t)
	stays.mustOK(t, socketio.EventJoinChatRoom, "lr1")
	first := appendN(t, srv.Store, chat, 2) - 1
	checkFor(t, 10*time.Second, 5*time.Millisecond, func() error { return exactly(t, gone, chat, first, first+1) })
	removal := appendEvent(t, srv.Store, domain.EventRoomMemberRemoved, `{"userId":"lu1"}`, chat)
	head := appendN(t, srv.Store, chat, 3)
	// The other member gets every seq, the membership event included: no
	// gap in the room.
	checkFor(t, 10*time.Second, 5*time.Millisecond, func() error { return exactly(t, stays, chat, first, head) })
	// The removed member gets the removal and nothing after it.
	want := []int64{first, first + 1, removal.Deliveries[0].Seq}
	if s := seqsIn(t, gone, chat); !slices.Equal(s, want) {
		t.Fatalf("removed member received %v, want %v", s, want)
	}
}
