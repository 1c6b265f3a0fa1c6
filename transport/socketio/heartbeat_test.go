package socketio_test

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/transport/socketio"
)

// TestHeartbeatKeepsAnsweringClients: a client that answers every ping at
// once stays connected, however fast its answer. The engine arms a ping's
// timeout only after the PING has left, and a PONG handled before that
// cleared nothing: the timeout armed after it then closed the connection
// ("ping timeout") although the client had answered (heartbeat.go).
func TestHeartbeatKeepsAnsweringClients(t *testing.T) {
	t.Parallel()
	// The ping interval is longer than the timeout, as by default (25 s
	// and 20 s): a timeout left armed then fires before the next ping
	// would clear it. 200 sockets pinged together keep the timer
	// goroutines waiting for CPUs, as a busy server's do.
	const (
		sockets  = 200
		interval = 1200 * time.Millisecond
		timeout  = time.Second
		run      = 5 * time.Second
	)
	srv := newServer(t, newDB(t), serverOpts{Config: socketio.Config{PingInterval: interval, PingTimeout: timeout}})
	var pings atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, sockets)
	conns := make([]*rawSocket, sockets)
	for i := range conns {
		c, err := dialRaw(srv.URL, token(t, fmt.Sprintf("hb-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.ws.SetReadDeadline(time.Time{})
			for {
				_, msg, err := c.ws.ReadMessage()
				if err != nil {
					errs <- err
					return
				}
				if string(msg) == "2" {
					pings.Add(1)
					if err := c.ws.WriteMessage(websocket.TextMessage, []byte("3")); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	time.Sleep(run)
	st := srv.Hub.Stats()
	for _, c := range conns {
		c.ws.Close()
	}
	wg.Wait()
	close(errs)
	closed := 0
	for err := range errs {
		// Our own Close ends the others' reads with net.ErrClosed.
		if !errors.Is(err, net.ErrClosed) {
			closed++
			t.Logf("socket ended by the server: %v", err)
		}
	}
	// At least a third of the pings the run should see, so that the test
	// cannot pass by pinging too little to meet the race.
	if least := int64(sockets * int(run/interval) / 3); pings.Load() < least {
		t.Fatalf("the clients answered %d pings, want at least %d", pings.Load(), least)
	}
	if closed > 0 || st.Sockets != sockets || st.Disconnects["ping timeout"] > 0 {
		t.Fatalf("after %d answered pings: %d of %d sockets closed by the server, %d still connected, disconnects %v",
			pings.Load(), closed, sockets, st.Sockets, st.Disconnects)
	}
	t.Logf("%d sockets answered %d pings; none was closed", sockets, pings.Load())
}

// TestHeartbeatEndsSilentClients: repeating a client's PONG never keeps
// alive a client that stopped answering: one that answers the first ping
// and then no other is closed with "ping timeout".
func TestHeartbeatEndsSilentClients(t *testing.T) {
	t.Parallel()
	srv := newServer(t, newDB(t), serverOpts{Config: socketio.Config{PingInterval: 300 * time.Millisecond, PingTimeout: 200 * time.Millisecond}})
	c, err := dialRaw(srv.URL, token(t, "hb-silent"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.ws.Close()
	_ = c.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	answered := false
	for {
		_, msg, err := c.ws.ReadMessage()
		if err != nil {
			if !answered {
				t.Fatalf("closed before the first ping: %v", err)
			}
			break // the server closed the connection
		}
		if string(msg) == "2" && !answered {
			answered = true
			if err := c.ws.WriteMessage(websocket.TextMessage, []byte("3")); err != nil {
				t.Fatal(err)
			}
		}
	}
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if d := srv.Hub.Stats().Disconnects; d["ping timeout"] != 1 {
			return fmt.Errorf("disconnects %v, want one ping timeout", d)
		}
		return nil
	})
}

// TestHeartbeatOfficialClients: the official socket.io-client, over
// WebSocket (the Hub's own reader and writer), stays connected through
// several heartbeats and still gets its events after them. The ping
// interval is longer than the timeout, as by default.
func TestHeartbeatOfficialClients(t *testing.T) {
	t.Parallel()
	const (
		sockets  = 40
		interval = 1200 * time.Millisecond
		timeout  = time.Second
		run      = 5 * time.Second // about four pings per socket
	)
	srv := newServer(t, newDB(t), serverOpts{Config: socketio.Config{PingInterval: interval, PingTimeout: timeout}})
	node := startNode(t)
	clients := make([]*client, sockets)
	for i := range clients {
		user := fmt.Sprintf("hbjs%d", i)
		clients[i] = node.connect(user, srv.URL, wsOpts(token(t, user)), emitSpec{Event: "join-user-room", Args: []any{user}})
	}
	for _, c := range clients {
		c.connected(t)
	}
	time.Sleep(run)
	if d := node.find(func(m jsMsg) bool { return m.T == "disconnect" }); len(d) > 0 {
		t.Fatalf("%d of %d official clients disconnected during heartbeats, first %s: %s", len(d), sockets, d[0].ID, d[0].Reason)
	}
	// At least a third of the pings the run should see, so that the test
	// cannot pass without heartbeats.
	pings := len(node.find(func(m jsMsg) bool { return m.T == "ping" }))
	if want := sockets * int(run/interval) / 3; pings < want {
		t.Fatalf("%d pings answered by %d clients in %v, want at least %d", pings, sockets, run, want)
	}
	for i, c := range clients {
		room := domain.Room(fmt.Sprintf("user-hbjs%d", i))
		res := appendEvent(t, srv.Store, "unread-count-update", `{"unreadCount":1}`, room)
		waitEvent(t, c, "unread-count-update", room, res.Deliveries[0].Seq)
	}
	t.Logf("%d official clients answered %d pings in %v (interval %v, timeout %v); none disconnected", sockets, pings, run, interval, timeout)
}
