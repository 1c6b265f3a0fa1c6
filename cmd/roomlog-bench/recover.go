package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// recoveryClient is a Socket.IO client that does what socket.io-client
// does for connection state recovery: it keeps the pid of the CONNECT ack
// and the last string argument of every event (the offset, roomlog's
// session-offset included) and sends {token, pid, offset} when it
// reconnects. Scenarios (e) and (f) use it.
type recoveryClient struct {
	token, room string
	// onEvent, if set, is called with every x-bench frame, in order, from
	// one goroutine at a time (connect's until the CONNECT ack, then the
	// reader's). Set it only while no connection is open.
	onEvent func(msg []byte)

	wmu  sync.Mutex // one writer at a time (pongs, subscribe)
	ws   *websocket.Conn
	acks chan []byte
	done chan struct{} // closed when the reader ends

	mu          sync.Mutex
	pid, offset string
	events      atomic.Int64 // x-bench events received
}

func (c *recoveryClient) write(msg []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.ws.WriteMessage(websocket.TextMessage, msg)
}

// connect opens a connection with auth, keeps the pid of the CONNECT ack
// (see state) and returns it; then a reader keeps the offset and answers
// pings. Events that
// arrive before the ack (socket.io sends a recovered socket's missed
// packets first) are handled like the others.
func (c *recoveryClient) connect(ctx context.Context, base string, auth map[string]string) (string, error) {
	ws, err := openSIO(ctx, base, auth, 30*time.Second)
	if err != nil {
		return "", err
	}
	acks := make(chan []byte, 4)
	for {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			ws.Close()
			return "", fmt.Errorf("connect: %w", err)
		}
		switch {
		case len(msg) == 1 && msg[0] == '2':
			_ = ws.WriteMessage(websocket.TextMessage, []byte("3"))
		case bytes.HasPrefix(msg, []byte("44")):
			ws.Close()
			return "", fmt.Errorf("connect_error: %s", msg[2:])
		case bytes.HasPrefix(msg, []byte("40")):
			var ack struct{ Pid string }
			_ = json.Unmarshal(msg[2:], &ack)
			c.mu.Lock()
			c.pid = ack.Pid
			c.mu.Unlock()
			_ = ws.SetReadDeadline(time.Time{})
			done := make(chan struct{})
			c.wmu.Lock()
			c.ws, c.acks, c.done = ws, acks, done
			c.wmu.Unlock()
			go c.read(ws, acks, done)
			return ack.Pid, nil
		default:
			c.handle(msg, acks)
		}
	}
}

func (c *recoveryClient) read(ws *websocket.Conn, acks chan<- []byte, done chan struct{}) {
	defer close(done)
	for {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			return
		}
		if len(msg) == 1 && msg[0] == '2' {
			c.wmu.Lock()
			_ = ws.WriteMessage(websocket.TextMessage, []byte("3"))
			c.wmu.Unlock()
			continue
		}
		c.handle(msg, acks)
	}
}

var benchEventPrefix = []byte(`42["x-bench",`)

// handle takes one packet other than a ping: an ack goes to acks, an event
// updates the offset and, if it is an x-bench event, is counted and
// passed to onEvent.
func (c *recoveryClient) handle(msg []byte, acks chan<- []byte) {
	switch {
	case bytes.HasPrefix(msg, []byte("43")):
		select {
		case acks <- msg:
		default:
		}
	case bytes.HasPrefix(msg, []byte("42[")):
		if off, ok := lastStringArg(msg); ok {
			c.mu.Lock()
			c.offset = off
			c.mu.Unlock()
		}
		if bytes.HasPrefix(msg, benchEventPrefix) {
			c.events.Add(1)
			if c.onEvent != nil {
				c.onEvent(msg)
			}
		}
	}
}

// lastStringArg returns the last argument of event frame msg (42[…]) when
// there are at least two and the last is a string, as socket.io-client
// takes its offset. It scans from the end instead of decoding the frame (a
// replay of 10,000 events must not be timed as JSON decoding); a string
// with escapes, which no offset has, falls back to decoding.
func lastStringArg(msg []byte) (string, bool) {
	n := len(msg)
	if n < 6 || msg[n-1] != ']' || msg[n-2] != '"' {
		return "", false
	}
	i := bytes.LastIndexByte(msg[:n-2], '"')
	if i > 0 && msg[i-1] == ',' && bytes.IndexByte(msg[i:n-1], '\\') < 0 {
		return string(msg[i+1 : n-2]), true
	}
	var args []json.RawMessage
	if json.Unmarshal(msg[2:], &args) != nil || len(args) < 2 {
		return "", false
	}
	var off string
	if json.Unmarshal(args[len(args)-1], &off) != nil {
		return "", false
	}
	return off, true
}

func (c *recoveryClient) subscribe() error {
	if err := c.write(subscribePacket(c.room)); err != nil {
		return err
	}
	select {
	case msg := <-c.acks:
		return subscribeAcked(c.room, msg)
	case <-c.done:
		return fmt.Errorf("subscribe %s: connection closed", c.room)
	case <-time.After(30 * time.Second):
		return fmt.Errorf("subscribe %s: no ack in 30s", c.room)
	}
}

func (c *recoveryClient) state() (pid, offset string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pid, c.offset
}

// dropTransport closes the connection's socket without a DISCONNECT
// packet or a close frame, as a network drop does, so the server keeps
// the session for recovery; it waits (at most 10 s) for the reader to end.
func (c *recoveryClient) dropTransport() {
	c.wmu.Lock()
	ws, done := c.ws, c.done
	c.wmu.Unlock()
	if ws == nil {
		return
	}
	ws.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
}

// recoveryRun is one catch-up through Socket.IO connection state
// recovery.
type recoveryRun struct {
	ack  time.Duration // reconnect -> CONNECT ack with the old pid
	took time.Duration // reconnect -> the last missed event received
	// oldestXact is the cluster's oldest xid-holding transaction seen
	// during the replay (the replay reads below the writer horizon).
	oldestXact xactSample
	// extensions is the WebSocket extensions the JS client negotiated
	// (permessage-deflate or none), for the progress lines.
	extensions string
}

// runRecoveryCatchUp is scenario (e) via Socket.IO: a client connects,
// subscribes to room and receives one live event (so it holds an event's
// offset: the Node peer recovers only from a buffered packet's offset);
// its transport drops (no DISCONNECT, so the session stays recoverable);
// n events are published to room; then it reconnects with {token, pid,
// offset}. It measures the time from the reconnect to the arrival of the
// n-th missed event, and checks that the CONNECT ack carried the old pid
// (recovered) and that exactly the n events arrived, in order (payload
// "i", and meta seq where the server sends one).
func runRecoveryCatchUp(ctx context.Context, s *server, room string, n int, watch *xactWatch) (recoveryRun, error) {
	client := &http.Client{Timeout: 60 * time.Second}
	defer client.CloseIdleConnections()
	c := &recoveryClient{token: s.token("recover"), room: room}
	defer c.dropTransport()
	if _, err := c.connect(ctx, s.base, map[string]string{"token": c.token}); err != nil {
		return recoveryRun{}, fmt.Errorf("connect: %w", err)
	}
	if err := c.subscribe(); err != nil {
		return recoveryRun{}, err
	}
	stopWatch := watch.start(ctx)
	t1 := time.Now()
	if err := s.publish(ctx, client, room, fmt.Appendf(nil, `{"i":0,"pad":"%s"}`, payloadPad)); err != nil {
		stopWatch()
		return recoveryRun{}, fmt.Errorf("publish the first event: %w", err)
	}
	waitFor(ctx, func() bool { return c.events.Load() >= 1 }, 30*time.Second)
	xact := stopWatch()
	pid, off := c.state()
	if c.events.Load() < 1 || off == "" {
		return recoveryRun{}, fmt.Errorf("the first live event (published and acknowledged) did not arrive within %v of its publish (%d received, offset %q; oldest cluster xact meanwhile %s)", time.Since(t1).Round(time.Millisecond), c.events.Load(), off, xact)
	}
	c.dropTransport()
	if err := seedRoom(ctx, s, client, room, 1, n); err != nil {
		return recoveryRun{}, err
	}

	// The hook runs on connect's goroutine, then on the reader's: next
	// and lastSeq are only touched there; the rest is shared.
	var got, arrivedAt atomic.Int64
	var bad atomic.Pointer[error]
	next, lastSeq := int64(1), int64(-1)
	fail := func(err error) { bad.CompareAndSwap(nil, &err) }
	c.onEvent = func(msg []byte) {
		i, ok := intField(msg, `"i":`)
		switch {
		case !ok:
			fail(fmt.Errorf("event without payload i: %.120s", msg))
		case i != next:
			fail(fmt.Errorf("event i=%d, want %d (missing, duplicated or out of order)", i, next))
		}
		if seq, ok := intField(msg, `"seq":`); ok {
			if lastSeq >= 0 && seq != lastSeq+1 {
				fail(fmt.Errorf("seq %d after %d", seq, lastSeq))
			}
			lastSeq = seq
		}
		next = i + 1
		if got.Add(1) == int64(n) {
			arrivedAt.Store(time.Now().UnixNano())
		}
	}
	stopWatch = watch.start(ctx)
	t0 := time.Now()
	pid2, err := c.connect(ctx, s.base, map[string]string{"token": c.token, "pid": pid, "offset": off})
	if err != nil {
		stopWatch()
		return recoveryRun{}, fmt.Errorf("reconnect: %w", err)
	}
	run := recoveryRun{ack: time.Since(t0)}
	if pid2 != pid {
		stopWatch()
		return run, fmt.Errorf("not recovered: CONNECT ack pid %q, want %q", pid2, pid)
	}
	waitFor(ctx, func() bool { return got.Load() >= int64(n) || bad.Load() != nil }, 60*time.Second)
	run.oldestXact = stopWatch()
	if got.Load() >= int64(n) {
		run.took = time.Duration(arrivedAt.Load() - t0.UnixNano())
		time.Sleep(100 * time.Millisecond) // anything more would be a duplicate
	}
	if p := bad.Load(); p != nil {
		return run, *p
	}
	if g := got.Load(); g != int64(n) {
		return run, fmt.Errorf("received %d of the %d missed events", g, n)
	}
	return run, nil
}
