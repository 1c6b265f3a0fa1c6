package socketio

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/roomlog/roomlog/eventstore/eventstoretest"
)

// readerServer serves WebSocket connections whose transports wsBuilder
// builds as the engine does, with the engine's read permission (see
// newReaderServerWith). Every transport's packets go to onPacket; built
// counts the transports, closed those that closed.
type readerServer struct {
	url    string
	built  atomic.Int64
	closed atomic.Int64
	// transports receives each transport built, while there is room.
	transports chan transports.Transport
}

// readerModes are the two readers a connection that opened on WebSocket
// may have: a goroutine of its own (wsraw.go) or the process's poller
// (wspoll.go).
var readerModes = []string{"goroutine", "poll"}

// readerTestLimit is the read limit of a readerServer's connections.
const readerTestLimit = 64 << 10

// newReaderServer starts a readerServer whose read permission is pending
// while a transport is built and granted after, as the engine's is.
func newReaderServer(t *testing.T, mode string, idle time.Duration, onPacket func(*packet.Packet)) *readerServer {
	return newReaderServerWith(t, mode, idle, "granted after", onPacket)
}

// newReaderServerWith is newReaderServer with the read permission given
// as permission says: "granted after" the transport is built (the
// engine's way), "granted before", "refused after" or "refused before"
// (closed without true, as when the engine gives up on the connection) or
// "none" (nil).
//
// mode is one of readerModes; "poll" fails the test where the system has
// no poller.
func newReaderServerWith(t *testing.T, mode string, idle time.Duration, permission string, onPacket func(*packet.Packet)) *readerServer {
	t.Helper()
	rs := &readerServer{transports: make(chan transports.Transport, 16)}
	var p *wsPoller
	if mode == "poll" {
		if p = defaultPoller(); p == nil {
			t.Fatal("no WebSocket poller on this system")
		}
	}
	var mu sync.Mutex
	var kept []transports.Transport
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := types.NewHttpContext(w, r)
		up := websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 1024}
		uw := w
		if p != nil {
			uw = pollHijacker{ResponseWriter: w, p: p, limit: readerTestLimit}
		}
		c, err := up.Upgrade(uw, r, nil)
		if err != nil {
			t.Errorf("upgrade: %v", err)
			return
		}
		c.SetReadLimit(readerTestLimit)
		if _, polled := c.NetConn().(*pollConn); polled != (p != nil) {
			t.Errorf("%s reader: connection %T", mode, c.NetConn())
		}
		ctx.Websocket = &types.WebSocketConn{EventEmitter: types.NewEventEmitter(), Conn: c}
		ctx.IdleTimeout = idle
		perm := make(chan bool, 1)
		switch permission {
		case "granted before":
			perm <- true
			close(perm)
			ctx.SetTransportReadPermission(perm)
		case "refused before":
			close(perm)
			ctx.SetTransportReadPermission(perm)
		case "granted after", "refused after":
			ctx.SetTransportReadPermission(perm)
		}
		tr := (&wsBuilder{writeTimeout: 5 * time.Second}).New(ctx)
		if _, ok := tr.(*rawWebSocket); !ok {
			t.Errorf("transport %T, want *rawWebSocket", tr)
		}
		_ = tr.On("packet", func(args ...any) { onPacket(args[0].(*packet.Packet)) })
		if st := tr.ReadyState(); st == "closing" || st == "closed" {
			rs.closed.Add(1) // closed while it was built
		} else {
			_ = tr.Once("close", func(...any) { rs.closed.Add(1) })
		}
		mu.Lock()
		kept = append(kept, tr)
		mu.Unlock()
		switch permission {
		case "granted after":
			perm <- true
			close(perm)
		case "refused after":
			close(perm)
		}
		rs.built.Add(1)
		select {
		case rs.transports <- tr:
		default:
		}
	}))
	t.Cleanup(func() {
		srv.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, tr := range kept {
			tr.Close()
		}
	})
	rs.url = "ws" + strings.TrimPrefix(srv.URL, "http")
	return rs
}

// dial opens a client connection to rs; the client reads nothing.
func (rs *readerServer) dial(t *testing.T) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial(rs.url, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// sendThree sends three messages on each of conns and waits until
// handled has counted them all.
func sendThree(t *testing.T, conns []*websocket.Conn, handled *atomic.Int64) {
	t.Helper()
	for i, c := range conns {
		for j := range 3 {
			if err := c.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, "4message %d of %d", j, i)); err != nil {
				t.Fatalf("client %d: %v", i, err)
			}
		}
	}
	eventstoretest.CheckFor(t, 30*time.Second, 10*time.Millisecond, func() error {
		if got := handled.Load(); got != int64(3*len(conns)) {
			return fmt.Errorf("%d of %d messages handled", got, 3*len(conns))
		}
		return nil
	})
}

// deepStack recurses through about depth KiB of stack, as the engine, the
// Socket.IO decoder and the Hub's handlers do when they handle a message.
//
//go:noinline
func deepStack(depth int) byte {
	var pad [1024]byte
	pad[depth%len(pad)] = byte(depth)
	if depth == 0 {
		return pad[0]
	}
	return deepStack(depth-1) + pad[depth%len(pad)]
}

// TestRawReaderStack: a connection's reader keeps the smallest stack
// (2 KiB) after its messages were handled on a deep stack, because it
// handles none itself. The library's reader, which runs the handlers,
// kept 8 KiB per connection for life (docs/benchmarks.md, "Where an idle
// connection's memory goes"). Under the race detector every stack needs
// more room, so there the figure is only logged.
//
// The runtime starts a goroutine with the average stack it found in use
// at the last GC (GODEBUG adaptivestackstart), and a test process's
// average is large, so the measurement runs in a child process that
// starts every goroutine at 2 KiB, as roomlogd's idle average does.
func TestRawReaderStack(t *testing.T) {
	const child = "ROOMLOG_TEST_READER_STACK"
	if os.Getenv(child) == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestRawReaderStack$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), child+"=1", "GODEBUG="+strings.TrimPrefix(os.Getenv("GODEBUG")+",adaptivestackstart=0", ","))
		out, err := cmd.CombinedOutput()
		t.Logf("child process:\n%s", out)
		if err != nil {
			t.Fatalf("child process: %v", err)
		}
		return
	}
	const n = 300
	var handled atomic.Int64
	rs := newReaderServer(t, "goroutine", time.Minute, func(p *packet.Packet) {
		deepStack(16)
		handled.Add(1)
	})
	stacks := func() uint64 {
		var ms runtime.MemStats
		for range 3 { // a GC halves a stack at most once
			runtime.GC()
		}
		runtime.ReadMemStats(&ms)
		return ms.StackInuse
	}
	before := stacks()
	conns := make([]*websocket.Conn, n)
	for i := range conns {
		conns[i] = rs.dial(t)
	}
	eventstoretest.CheckFor(t, 30*time.Second, 10*time.Millisecond, func() error {
		if got := rs.built.Load(); got != n {
			return fmt.Errorf("%d of %d transports built", got, n)
		}
		return nil
	})
	sendThree(t, conns, &handled)
	// The goroutines that handled the messages have ended by now or are
	// about to; let them, so only the readers are left.
	time.Sleep(100 * time.Millisecond)
	per := (float64(stacks()) - float64(before)) / n
	t.Logf("%d idle connections: %.0f bytes of stack each", n, per)
	if !raceEnabled && per >= 3<<10 {
		t.Errorf("%.0f bytes of stack per idle connection after deep handlers, want the reader's 2 KiB (under 3 KiB)", per)
	}
	if got := rs.closed.Load(); got != 0 {
		t.Errorf("%d transports closed, want none", got)
	}
}

// TestRawReaderOrder: a connection's messages are handled in the order
// they came, one at a time, and the idle timeout counts from the end of
// the last one: a client that keeps sending stays, one that goes silent
// is closed.
func TestRawReaderOrder(t *testing.T) {
	t.Parallel()
	for _, mode := range readerModes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			testRawReaderOrder(t, mode)
		})
	}
}

func testRawReaderOrder(t *testing.T, mode string) {
	const idle = 2 * time.Second
	var mu sync.Mutex
	var got []string
	var busy, overlaps atomic.Int64
	rs := newReaderServer(t, mode, idle, func(p *packet.Packet) {
		if busy.Add(1) > 1 {
			overlaps.Add(1)
		}
		time.Sleep(time.Millisecond) // a slow handler
		mu.Lock()
		got = append(got, p.Data.(fmt.Stringer).String())
		mu.Unlock()
		busy.Add(-1)
	})
	c := rs.dial(t)
	const n = 200
	for i := range n {
		if err := c.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, "4m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	eventstoretest.CheckFor(t, 30*time.Second, 10*time.Millisecond, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(got) != n {
			return fmt.Errorf("%d of %d messages handled", len(got), n)
		}
		return nil
	})
	for i, m := range got {
		if want := fmt.Sprintf("m%d", i); m != want {
			t.Fatalf("message %d handled was %q, want %q", i, m, want)
		}
	}
	if o := overlaps.Load(); o != 0 {
		t.Errorf("%d messages were handled while another was", o)
	}

	// Messages every idle/5 for two and a half idle timeouts keep it open.
	for i := range 12 {
		time.Sleep(idle / 5)
		if err := c.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, "4k%d", i)); err != nil {
			t.Fatalf("keep-alive %d: %v", i, err)
		}
	}
	time.Sleep(idle / 5)
	if rs.closed.Load() != 0 {
		t.Fatalf("closed while the client kept sending within the idle timeout")
	}
	// Silence closes it.
	eventstoretest.CheckFor(t, 10*idle, 10*time.Millisecond, func() error {
		if rs.closed.Load() != 1 {
			return fmt.Errorf("not closed %v after the client went silent", 10*idle)
		}
		return nil
	})
}

// TestRawReaderPermission: the reader starts once the engine's read
// permission says true, whether it came before or after the transport was
// built, and at once without one; refused, it never reads, and a
// transport built after the refusal closes.
func TestRawReaderPermission(t *testing.T) {
	t.Parallel()
	for _, mode := range readerModes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			testRawReaderPermission(t, mode)
		})
	}
}

func testRawReaderPermission(t *testing.T, mode string) {
	for _, permission := range []string{"granted after", "granted before", "none", "refused after", "refused before"} {
		t.Run(permission, func(t *testing.T) {
			t.Parallel()
			var handled atomic.Int64
			rs := newReaderServerWith(t, mode, time.Minute, permission, func(*packet.Packet) { handled.Add(1) })
			c := rs.dial(t)
			if err := c.WriteMessage(websocket.TextMessage, []byte("4hello")); err != nil {
				t.Fatal(err)
			}
			eventstoretest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
				if rs.built.Load() != 1 {
					return fmt.Errorf("transport not built")
				}
				return nil
			})
			if strings.HasPrefix(permission, "refused") {
				time.Sleep(300 * time.Millisecond)
				if n := handled.Load(); n != 0 {
					t.Fatalf("%d messages handled without permission to read", n)
				}
				if closed := rs.closed.Load(); permission == "refused before" && closed != 1 {
					t.Fatalf("transport built after the refusal not closed")
				}
				return
			}
			eventstoretest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
				if handled.Load() != 1 {
					return fmt.Errorf("message not handled")
				}
				return nil
			})
		})
	}
}

// TestRawReaderClose: a client that closes its connection closes the
// transport, and so does a message over the read limit.
func TestRawReaderClose(t *testing.T) {
	t.Parallel()
	for _, mode := range readerModes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			testRawReaderClose(t, mode)
		})
	}
}

func testRawReaderClose(t *testing.T, mode string) {
	rs := newReaderServer(t, mode, time.Minute, func(*packet.Packet) {})
	c := rs.dial(t)
	eventstoretest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if rs.built.Load() != 1 {
			return fmt.Errorf("transport not built")
		}
		return nil
	})
	_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	_ = c.Close()
	eventstoretest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if rs.closed.Load() != 1 {
			return fmt.Errorf("transport not closed after the client closed")
		}
		return nil
	})
}
