package socketio_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/transport/socketio"
)

// seqsIn returns the seqs of the events c received through room, in
// arrival order.
func seqsIn(t testing.TB, c *client, room domain.Room) []int64 {
	var out []int64
	for _, m := range c.events() {
		if len(m.Args) >= 2 {
			if md := meta(t, m); md.Room == room {
				out = append(out, md.Seq)
			}
		}
	}
	return out
}

// contiguous checks that seqs is exactly from, from+1, ..., to.
func contiguous(seqs []int64, from, to int64) error {
	if int64(len(seqs)) != to-from+1 {
		return fmt.Errorf("got %d events, want %d (seq %d..%d)", len(seqs), to-from+1, from, to)
	}
	for i, s := range seqs {
		if s != from+int64(i) {
			return fmt.Errorf("event %d has seq %d, want %d", i, s, from+int64(i))
		}
	}
	return nil
}

func appendN(t testing.TB, s *eventstore.Store, room domain.Room, n int) int64 {
	t.Helper()
	reqs := make([]eventstore.AppendRequest, n)
	for i := range reqs {
		reqs[i] = eventstore.AppendRequest{Type: "x-msg", Rooms: []domain.Room{room}, Payload: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i)), Producer: "test"}
	}
	res, err := s.AppendBatch(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	return res[len(res)-1].Deliveries[0].Seq
}

func TestSubscribeReplay(t *testing.T) {
	t.Parallel()
	// A small page makes replays page; the queue leaves the replay 64
	// frames, so it also waits for the writer.
	srv := newServer(t, newDB(t), serverOpts{Membership: true, Config: socketio.Config{ReplayPageSize: 7, OutboundQueue: 128}})
	const room = domain.Room("chat-c1")
	srv.Hub.SetPendingMax(3)
	srv.grant(t, room, "b1") // seq 1
	head := appendN(t, srv.Store, room, 40)
	node := startNode(t)

	t.Run("NoGapNoDuplicateWhileAppending", func(t *testing.T) {
		afters := []int64{0, 10, 25, head - 1, head}
		clients := make([]*client, len(afters))
		for i := range afters {
			opts := wsOpts(token(t, "b1"))
			if i%2 == 1 {
				opts = pollOpts(token(t, "b1"))
			}
			clients[i] = node.connect(fmt.Sprintf("r%d", i), srv.URL, opts)
			clients[i].connected(t)
		}
		// Live appends run while the sockets replay.
		var wg sync.WaitGroup
		var last int64
		wg.Go(func() {
			for range 12 {
				last = appendN(t, srv.Store, room, 5)
			}
		})
		acks := make([]ackResp, len(clients))
		var cwg sync.WaitGroup
		for i, c := range clients {
			cwg.Go(func() { acks[i] = c.call(t, "subscribe", map[string]any{"room": string(room), "after": afters[i]}) })
		}
		cwg.Wait()
		wg.Wait()
		for i, c := range clients {
			if !acks[i].OK {
				t.Fatalf("%s subscribe after %d: %s", c.id, afters[i], acks[i])
			}
			checkFor(t, 20*time.Second, 10*time.Millisecond, func() error {
				return contiguous(seqsIn(t, c, room), afters[i]+1, last)
			})
		}
		// The ack follows the replayed events.
		for i, c := range clients {
			if afters[i] >= head {
				continue
			}
			var ackAt, replayedAt int = -1, -1
			for j, m := range node.all() {
				if m.ID != c.id {
					continue
				}
				if m.T == "ack" && ackAt < 0 {
					ackAt = j
				}
				if m.T == "event" && meta(t, m).Seq == head {
					replayedAt = j
				}
			}
			if ackAt < replayedAt {
				t.Errorf("%s: ack arrived before replayed seq %d", c.id, head)
			}
		}
	})

	st := srv.Hub.Stats()
	if st.SlowDisconnects != 0 {
		t.Errorf("%d sockets dropped as slow", st.SlowDisconnects)
	}
	t.Logf("%d replays, %d read live events again from the log", st.Replays, st.ReplayRereads)

	t.Run("ResubscribeReplaysAgain", func(t *testing.T) {
		c := node.connect("again", srv.URL, wsOpts(token(t, "b1")))
		c.connected(t)
		c.mustOK(t, "join-chat-room", "c1")
		live := appendN(t, srv.Store, room, 3)
		checkFor(t, 20*time.Second, 10*time.Millisecond, func() error { return contiguous(seqsIn(t, c, room), live-2, live) })
		c.mustOK(t, "subscribe", map[string]any{"room": string(room), "after": live - 5})
		next := appendN(t, srv.Store, room, 2)
		want := []int64{live - 2, live - 1, live}
		for s := live - 4; s <= next; s++ {
			want = append(want, s)
		}
		checkFor(t, 20*time.Second, 10*time.Millisecond, func() error {
			got := seqsIn(t, c, room)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				return fmt.Errorf("got %v, want %v", got, want)
			}
			return nil
		})
	})

	t.Run("Errors", func(t *testing.T) {
		c := node.connect("errs", srv.URL, wsOpts(token(t, "b1")))
		x := node.connect("outsider", srv.URL, wsOpts(token(t, "x1")))
		c.connected(t)
		x.connected(t)
		h, err := srv.Store.Head(context.Background(), room)
		if err != nil {
			t.Fatal(err)
		}
		if a := c.call(t, "subscribe", map[string]any{"room": string(room), "after": h + 100}); a.OK || a.Error.Code != "invalid" {
			t.Errorf("subscribe beyond the head = %s, want invalid", a)
		}
		if a := x.call(t, "subscribe", map[string]any{"room": string(room), "after": 0}); a.OK || a.Error.Code != "forbidden" {
			t.Errorf("non-member subscribe = %s, want forbidden", a)
		}
		c.mustOK(t, "subscribe", map[string]any{"room": "user-b1", "after": 0}) // empty room
		last := appendN(t, srv.Store, room, 1)
		c.mustOK(t, "join-user-room", "b1")
		marker := appendEvent(t, srv.Store, "x-done", `{}`, "user-b1")
		waitEvent(t, c, "x-done", "user-b1", marker.Deliveries[0].Seq)
		if got := seqsIn(t, c, room); len(got) != 0 {
			t.Errorf("a refused subscribe left the socket in the room: got %v (last %d)", got, last)
		}
		if got := seqsIn(t, x, room); len(got) != 0 {
			t.Errorf("outsider got %v", got)
		}
	})

	t.Run("Unsubscribe", func(t *testing.T) {
		c := node.connect("unsub", srv.URL, wsOpts(token(t, "b1")))
		c.connected(t)
		c.mustOK(t, "subscribe", map[string]any{"room": string(room)})
		first := appendN(t, srv.Store, room, 1)
		waitEvent(t, c, "x-msg", room, first)
		c.mustOK(t, "unsubscribe", map[string]any{"room": string(room)})
		appendN(t, srv.Store, room, 2)
		c.mustOK(t, "join-user-room", "b1")
		marker := appendEvent(t, srv.Store, "x-done", `{}`, "user-b1")
		waitEvent(t, c, "x-done", "user-b1", marker.Deliveries[0].Seq)
		if got := seqsIn(t, c, room); len(got) != 1 {
			t.Errorf("got %v after unsubscribing, want only %d", got, first)
		}
	})
}
