package socketio

import (
	"context"
	"sort"
	"sync"

	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/servers/engine/v3"
)

// Crash stops h as if its process had died: heartbeats stop, its sockets
// are cut without presence goodbyes and its sessions stay in the database
// for the other nodes' sweepers.
func (h *Hub) Crash() {
	h.crashed.Store(true)
	h.Stop(context.Background())
}

// DisableGate turns the CONNECT-race workaround off for connections made
// from now on, to show what the library does without it.
func (h *Hub) DisableGate() { h.noGate.Store(true) }

// SetPendingMax lowers how many live events a replaying socket holds per
// room before it gives them up and reads them from the log. Call it before
// any socket connects.
func (h *Hub) SetPendingMax(n int) { h.pendingMax = n }

// RetainedHandshakes counts the Hub's sockets whose library objects still
// hold the handshake's headers, query or auth (see releaseHandshake).
func (h *Hub) RetainedHandshakes() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	n := 0
	for _, c := range h.conns {
		hs, hc := c.sock.Handshake(), c.sock.Request()
		if len(hs.Headers) > 0 || len(hs.Query) > 0 || len(hs.Auth) > 0 ||
			len(hc.Headers().All()) > 0 || len(hc.Query().All()) > 0 || len(hc.Request().Header) > 0 {
			n++
		}
	}
	return n
}

// LibraryRooms returns, sorted, what the library's Socket.Rooms says of
// the first socket of user it finds ("" if none).
func (h *Hub) LibraryRooms(user string) []string {
	h.mu.RLock()
	var c *conn
	for _, x := range h.conns {
		if x.p.UserID == user {
			c = x
			break
		}
	}
	h.mu.RUnlock()
	if c == nil {
		return nil
	}
	var out []string
	for _, r := range c.sock.Rooms().Keys() {
		out = append(out, string(r))
	}
	sort.Strings(out)
	return out
}

// StealPollOnFlush makes, for connections made from now on, the library's
// fast-upgrade NOOP win its race with the socket's first flush: the NOOP is
// sent on the pending poll from inside the flush, between its check that
// the transport is writable and its send, as the upgrade timer does under
// CPU starvation.
func (h *Hub) StealPollOnFlush() {
	_ = h.eio.On("connection", func(args ...any) {
		conn, ok := args[0].(engine.Socket)
		if !ok {
			return
		}
		var once sync.Once
		_ = conn.On("flush", func(...any) {
			once.Do(func() { conn.Transport().Send([]*packet.Packet{{Type: packet.NOOP}}) })
		})
	})
}

// TransportKinds counts the Hub's sockets whose transport writes its own
// frames (rawWebSocket) and those on the library's transports.
func (h *Hub) TransportKinds() (raw, library int) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, c := range h.conns {
		if _, ok := c.sock.Conn().Transport().(*rawWebSocket); ok {
			raw++
		} else {
			library++
		}
	}
	return raw, library
}
