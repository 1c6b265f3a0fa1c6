package socketio

import (
	"sync"
	"time"

	"github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// The CONNECT race of zishang520/socket.io v3.0.6, and how the gate closes
// it.
//
// When a client's CONNECT packet passes the middlewares, the library's
// namespace._doConnect runs on the socket's task-queue goroutine: it writes
// the CONNECT reply to the client first and only then stores the socket in
// the client's namespace table (Client.nsps). A client that emits at once on
// "connect" (the product's client emits join-* there) can get its EVENT
// packet decoded by the transport's read goroutine inside that window;
// Client.ondecoded then finds no socket, logs "invalid state" and closes the
// whole connection. A client that pipelines CONNECT and an EVENT without
// waiting for the reply hits the same path every time.
//
// The gate is an Engine.IO "data" listener installed before the Socket.IO
// client's own (the Hub registers its engine "connection" listener before
// Server.Bind, and listeners run in registration order on the goroutine that
// read the packet). When a CONNECT for the main namespace arrives, the gate
// closes; any later packet of that connection waits — blocking only that
// connection's read path — until the Hub's "connection" handler opens the
// gate again. That handler runs right after the library stored the socket,
// on the same task queue that will process the packet, so the packet always
// finds its socket. A refused handshake, a closed connection or
// Config.ConnectTimeout also open the gate, so nothing can wait forever. The
// library itself is not modified.
type gate struct {
	mu      sync.Mutex
	pending chan struct{} // non-nil while a CONNECT awaits its socket
	timeout time.Duration
}

// onData inspects one Engine.IO message before the Socket.IO client decodes
// it. args[0] is the message body (a text or binary buffer).
func (g *gate) onData(args ...any) {
	if len(args) == 0 {
		return
	}
	// Text messages are packets; binary ones are attachments of a packet
	// already seen.
	if text, ok := args[0].(*types.StringBuffer); ok && isMainConnect(text.Bytes()) {
		g.close()
		return
	}
	g.wait()
}

// close makes later packets wait until open.
func (g *gate) close() {
	g.mu.Lock()
	if g.pending == nil {
		g.pending = make(chan struct{})
	}
	g.mu.Unlock()
}

// open lets waiting and later packets through. It is idempotent.
func (g *gate) open() {
	g.mu.Lock()
	if g.pending != nil {
		close(g.pending)
		g.pending = nil
	}
	g.mu.Unlock()
}

// wait blocks while the gate is closed, at most g.timeout.
func (g *gate) wait() {
	g.mu.Lock()
	p := g.pending
	g.mu.Unlock()
	if p == nil {
		return
	}
	t := time.NewTimer(g.timeout)
	defer t.Stop()
	select {
	case <-p:
	case <-t.C:
		// Let the library handle the packet as it would have; it closes
		// the connection if the socket is still missing.
		g.open()
	}
}

// isMainConnect reports whether the text message b is a Socket.IO CONNECT
// packet for the main namespace "/": "0", "0{...}" or "0/,{...}".
func isMainConnect(b []byte) bool {
	if len(b) == 0 || b[0] != '0' {
		return false
	}
	rest := b[1:]
	if len(rest) == 0 || rest[0] != '/' {
		return true
	}
	// "0/nsp,..." names a namespace; only "/" itself is the main one.
	for i, c := range rest {
		if c == ',' {
			return i == 1
		}
	}
	return len(rest) == 1
}

// installGate puts a gate in front of conn's Socket.IO client. It must run
// in an engine "connection" listener registered before Server.Bind.
func (h *Hub) installGate(conn engine.Socket) {
	if h.noGate.Load() {
		return
	}
	g := &gate{timeout: h.cfg.ConnectTimeout}
	id := conn.Id()
	h.gates.Store(id, g)
	_ = conn.On("data", g.onData)
	_ = conn.Once("close", func(...any) {
		h.gates.CompareAndDelete(id, g)
		g.open()
	})
}

// openGate opens the gate of the Engine.IO connection with the given id.
func (h *Hub) openGate(engineID string) {
	if g, ok := h.gates.Load(engineID); ok {
		g.(*gate).open()
	}
}
