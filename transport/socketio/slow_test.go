package socketio_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/transport/socketio"
)

// TestSlowClient freezes one client (SIGSTOP on its Node process) while
// events pour into its room: the server disconnects it with a clear reason,
// the other clients keep receiving every event in order, and the frozen
// client, once thawed, catches up by replay.
func TestSlowClient(t *testing.T) {
	t.Parallel()
	t.Run("QueueOverflow", func(t *testing.T) {
		t.Parallel()
		slowClient(t, socketio.Config{OutboundQueue: 64, OutboundBytes: 512 << 10, WriteTimeout: time.Minute},
			"slow client: outbound queue overflow")
	})
	t.Run("WriteTimeout", func(t *testing.T) {
		t.Parallel()
		// A queue too large to overflow here: the transport that stays
		// busy gives the client away.
		slowClient(t, socketio.Config{OutboundQueue: 1 << 20, OutboundBytes: 1 << 30, WriteTimeout: time.Second},
			"slow client: the client did not accept data for 1s")
	})
}

func slowClient(t *testing.T, cfg socketio.Config, wantReason string) {
	srv := newServer(t, newDB(t), serverOpts{Config: cfg})
	healthy := startNode(t)
	frozen := startNode(t)
	join := emitSpec{Event: "join-seller-room", Args: nil}
	mk := func(n *nodeProc, user string, opts func(string) map[string]any) *client {
		j := join
		j.Args = []any{user}
		c := n.connect(user, srv.URL, opts(token(t, user, domain.RoleSeller)), j)
		c.connected(t)
		c.mustOK(t, "join-seller-room", user)
		return c
	}
	h1 := mk(healthy, "h1", wsOpts)
	h2 := mk(healthy, "h2", pollOpts)
	f := mk(frozen, "f1", wsOpts)

	if err := frozen.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("x", 16<<10)
	var last int64
	pump := func() {
		reqs := make([]eventstore.AppendRequest, 25)
		for i := range reqs {
			reqs[i] = eventstore.AppendRequest{Type: "x-bulk", Rooms: []domain.Room{domain.RoomSellers},
				Payload: json.RawMessage(fmt.Sprintf(`{"pad":%q}`, pad)), Producer: "test"}
		}
		res, err := srv.Store.AppendBatch(context.Background(), reqs)
		if err != nil {
			t.Fatal(err)
		}
		last = res[len(res)-1].Deliveries[0].Seq
	}
	// The healthy clients set the pace: a batch goes out only when both
	// have everything before it, so only the frozen one falls behind.
	caughtUp := func() error {
		for _, c := range []*client{h1, h2} {
			if err := contiguous(seqsIn(t, c, domain.RoomSellers), 1, last); err != nil {
				return fmt.Errorf("%s: %w", c.id, err)
			}
		}
		return nil
	}
	start := time.Now()
	for srv.Hub.Stats().SlowDisconnects == 0 {
		if last > 4000 {
			t.Fatalf("frozen client not disconnected after %d events", last)
		}
		pump()
		checkFor(t, 60*time.Second, 2*time.Millisecond, caughtUp)
	}
	t.Logf("frozen client dropped after %s and %d events of 16 KiB", time.Since(start).Round(time.Millisecond), last)
	pump() // the others keep receiving after the drop
	checkFor(t, 60*time.Second, 10*time.Millisecond, caughtUp)
	st := srv.Hub.Stats()
	if st.Disconnects[wantReason] != 1 || len(st.Disconnects) != 1 || st.SlowDisconnects != 1 {
		t.Errorf("disconnects: %v (%d slow), want the frozen client's only, as %q", st.Disconnects, st.SlowDisconnects, wantReason)
	}

	// Thawed, the client notices, reconnects and catches up from the last
	// seq it saw.
	if err := frozen.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	m := frozen.wait(t, 30*time.Second, "disconnect", func(m jsMsg) bool { return m.T == "disconnect" && m.ID == f.id })
	if m.Reason != "transport close" && m.Reason != "transport error" {
		t.Errorf("the dropped client saw %q, want a transport close (it then reconnects by itself)", m.Reason)
	}
	seen := seqsIn(t, f, domain.RoomSellers)
	var after int64
	if len(seen) > 0 {
		after = seen[len(seen)-1]
		if err := contiguous(seen, 1, after); err != nil {
			t.Fatalf("before the drop: %v", err)
		}
	}
	t.Logf("the frozen client had seen %d of %d events", len(seen), last)
	back := frozen.connect("f1-back", srv.URL, wsOpts(token(t, "f1", domain.RoleSeller)))
	back.connected(t)
	back.mustOK(t, "subscribe", map[string]any{"room": string(domain.RoomSellers), "after": after})
	checkFor(t, 60*time.Second, 10*time.Millisecond, func() error {
		return contiguous(seqsIn(t, back, domain.RoomSellers), after+1, last)
	})
}
