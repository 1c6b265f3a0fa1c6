package socketio_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/roomlog/roomlog/domain"
)

// maxIdleGoroutines is how many goroutines an idle WebSocket socket may
// cost the server: none on Linux, where the process's epoll poller reads
// the connections (wspoll.go), with room for a few of the test's own;
// elsewhere its transport's reader (rawWebSocket's). The library's
// heartbeat timers hold none (roomlog's patch of its SetTimeout, see
// transport/third_party/socket.io-v3/PATCHES.md), and the Hub adds none:
// its writer runs only while a socket has something to send.
func maxIdleGoroutines() float64 {
	if runtime.GOOS == "linux" {
		return 0.05
	}
	return 1
}

// TestIdleSocketFootprint opens idle WebSocket sockets, each subscribed to
// its own room, and checks what they cost the server in goroutines and that
// they do not keep their handshake's headers, query and auth; it logs
// the heap and stack bytes per socket (client and server share the
// process, so those are indicative only: cmd/roomlog-bench scenario d
// measures the server alone). A socket whose writer went idle still gets
// its events. Not parallel: it counts the process's goroutines.
func TestIdleSocketFootprint(t *testing.T) {
	srv := newServer(t, newDB(t), serverOpts{})
	const n = 100
	settle := func() (int, runtime.MemStats) {
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return runtime.NumGoroutine(), ms
	}
	// Let the server's own loops start before counting.
	time.Sleep(300 * time.Millisecond)
	g0, m0 := settle()

	conns := make([]*rawSocket, n)
	for i := range conns {
		c, err := dialRaw(srv.URL, token(t, fmt.Sprintf("idle%d", i)))
		if err != nil {
			t.Fatalf("socket %d: %v", i, err)
		}
		t.Cleanup(func() { c.ws.Close() })
		if err := c.call(fmt.Sprintf(`["subscribe",{"room":"user-idle%d"}]`, i)); err != nil {
			t.Fatalf("socket %d: %v", i, err)
		}
		conns[i] = c
	}
	// Goroutines that finish the subscribes (session writes, the
	// library's write queues) exit on their own.
	var g1 int
	var m1 runtime.MemStats
	checkFor(t, 10*time.Second, 100*time.Millisecond, func() error {
		g1, m1 = settle()
		if per := float64(g1-g0) / n; per > maxIdleGoroutines() {
			return fmt.Errorf("%d goroutines for %d idle sockets (%.2f each, want at most %.2f)", g1-g0, n, per, maxIdleGoroutines())
		}
		return nil
	})
	// What the library keeps of each handshake was released once the
	// socket was authenticated.
	if n := srv.Hub.RetainedHandshakes(); n != 0 {
		t.Errorf("%d of %d sockets still hold their handshake's headers, query or auth", n, len(conns))
	}
	// The Hub keeps the rooms; the library's Socket.Rooms still names
	// them (besides the socket's own id).
	if got := srv.Hub.LibraryRooms("idle0"); len(got) != 3 || !slices.Contains(got, "global") || !slices.Contains(got, "user-idle0") {
		t.Errorf("Socket.Rooms of idle0 = %v, want its id, global and user-idle0", got)
	}
	t.Logf("%d idle sockets: %.2f goroutines, %.1f KiB heap in use, %.1f KiB stacks per socket (client side included)",
		n, float64(g1-g0)/n, float64(int64(m1.HeapInuse)-int64(m0.HeapInuse))/n/1024, float64(int64(m1.StackInuse)-int64(m0.StackInuse))/n/1024)

	// An idle socket's writer starts again for the next event.
	for _, i := range []int{0, n - 1} {
		room := domain.Room(fmt.Sprintf("user-idle%d", i))
		appendEvent(t, srv.Store, "x-idle", `{"i":1}`, room)
		msg, err := conns[i].until(`42["x-idle",`)
		if err != nil {
			t.Fatalf("socket %d: %v", i, err)
		}
		if !bytes.Contains(msg, []byte(`"room":"`+string(room)+`"`)) {
			t.Fatalf("socket %d got %s", i, msg)
		}
	}
}

// rawSocket is a Socket.IO v4 client on a raw WebSocket that reads only
// when told to, so that it costs the test no goroutine while idle.
type rawSocket struct {
	ws  *websocket.Conn
	ack int
}

// dialRaw opens a WebSocket Engine.IO session and connects the main
// namespace with auth {token}.
func dialRaw(base, tok string) (*rawSocket, error) {
	url := "ws" + strings.TrimPrefix(base, "http") + "/socket.io/?EIO=4&transport=websocket"
	ws, _, err := websocket.DefaultDialer.Dial(url, http.Header{"Origin": {frontend}})
	if err != nil {
		return nil, err
	}
	c := &rawSocket{ws: ws}
	if _, err := c.until("0{"); err != nil {
		ws.Close()
		return nil, fmt.Errorf("open: %w", err)
	}
	auth, _ := json.Marshal(map[string]string{"token": tok})
	if err := ws.WriteMessage(websocket.TextMessage, append([]byte("40"), auth...)); err != nil {
		ws.Close()
		return nil, err
	}
	if _, err := c.until("40{"); err != nil {
		ws.Close()
		return nil, fmt.Errorf("connect: %w", err)
	}
	return c, nil
}

// call emits the event array with an ack id and waits for {ok: true}.
func (c *rawSocket) call(event string) error {
	c.ack++
	id := fmt.Sprint(c.ack)
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte("42"+id+event)); err != nil {
		return err
	}
	msg, err := c.until("43" + id + "[")
	if err != nil {
		return fmt.Errorf("%s: %w", event, err)
	}
	if !bytes.Contains(msg, []byte(`"ok":true`)) {
		return fmt.Errorf("%s: %s", event, msg)
	}
	return nil
}

// until reads packets, answering pings, until one starts with prefix.
func (c *rawSocket) until(prefix string) ([]byte, error) {
	_ = c.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, msg, err := c.ws.ReadMessage()
		if err != nil {
			return nil, err
		}
		switch {
		case bytes.HasPrefix(msg, []byte(prefix)):
			return msg, nil
		case string(msg) == "2":
			if err := c.ws.WriteMessage(websocket.TextMessage, []byte("3")); err != nil {
				return nil, err
			}
		case bytes.HasPrefix(msg, []byte("44")) || bytes.HasPrefix(msg, []byte("41")):
			return nil, fmt.Errorf("refused: %s", msg)
		}
	}
}
