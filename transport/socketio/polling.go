package socketio

import (
	"sync"

	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// The library's polling transport has a second race, in the upgrade to
// WebSocket (engine v3.0.6, socket.go): while a client upgrades, a timer
// sends a NOOP on the pending poll "if the transport is writable", and the
// socket's flush sends its buffer "if the transport is writable". Neither
// holds a lock across the check and the send, so under load both can send
// on one poll; the second finds no request, reports "polling write error"
// and the server closes the connection (the client sees a transport close,
// or nothing until its ping timeout).
//
// pollingGuard serialises the two. A NOOP that finds the poll taken is
// dropped (the poll is being answered anyway). Real data that finds it
// taken is queued in the guard, and Send returns at once; the queue goes
// out, oldest batch first, on the next poll (the guard's "ready" listener
// runs before the engine socket's flush) or on the transport the socket
// upgrades to, before anything newer: while the queue is not empty, every
// later batch joins it.
//
// Send must not wait for the next poll. The flush that loses the race
// usually runs in the engine's "ready" listener, on the goroutine that
// serves the poll request itself, and the library finishes an HTTP
// response only when that goroutine returns (Server.HandleRequest waits
// for it; net/http sends the buffered body after the handler). A Send that
// waited there kept the NOOP that won the race from reaching the client,
// and the client, which pauses polling for the upgrade, waits for exactly
// that response before it polls again or sends the UPGRADE packet: nothing
// could end the wait but a timeout, and all the while the socket's flush
// lock stalled every write to it (acks, pings, the Hub's writer, which
// then dropped the socket as slow).

// pollingBuilder builds guarded polling transports.
type pollingBuilder struct{ transports.PollingBuilder }

// New implements transports.TransportCtor.
func (b *pollingBuilder) New(ctx *types.HttpContext) transports.Transport {
	inner, ok := b.PollingBuilder.New(ctx).(transports.Polling)
	if !ok {
		return b.PollingBuilder.New(ctx)
	}
	return newPollingGuard(inner)
}

// pollingGuard is the library's polling transport with a Send that never
// sends twice on one poll and never blocks.
type pollingGuard struct {
	transports.Polling

	mu sync.Mutex
	// queued holds batches that found no poll, oldest first; each goes
	// out whole, as one response (one "drain"), as the library would
	// have sent it.
	queued [][]*packet.Packet
	// next is the transport the socket is upgrading to, while it is open.
	next transports.Transport
	// moved is the transport the socket upgraded to: once set, sends go
	// there.
	moved transports.Transport
}

func newPollingGuard(inner transports.Polling) *pollingGuard {
	g := &pollingGuard{Polling: inner}
	// Registered before the engine socket's own "ready" listener (its
	// flush), so queued data leaves before the socket's newer buffer.
	_ = inner.On("ready", func(...any) { g.onPoll() })
	return g
}

// Send implements transports.Transport.
func (g *pollingGuard) Send(packets []*packet.Packet) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.moved != nil {
		g.moved.Send(packets)
		return
	}
	if onlyNoops(packets) {
		if len(g.queued) == 0 {
			if g.Writable() {
				g.Polling.Send(packets)
			}
			// Else the pending poll is being answered already.
			return
		}
		// A poll for the NOOP: it takes queued data instead.
	} else {
		g.queued = append(g.queued, packets)
	}
	g.sendQueuedLocked()
}

// onPoll runs when a poll request arrives, before the engine socket's
// flush.
func (g *pollingGuard) onPoll() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sendQueuedLocked()
}

// sendQueuedLocked answers the pending poll, if there is one, with the
// oldest queued batch. g.mu must be held.
func (g *pollingGuard) sendQueuedLocked() {
	if len(g.queued) == 0 || !g.Writable() {
		return
	}
	b := g.queued[0]
	g.queued[0] = nil
	g.queued = g.queued[1:]
	g.Polling.Send(b) // marks the transport not writable
}

// Discard implements transports.Transport. The engine socket discards its
// polling transport when the client's UPGRADE packet arrives, just before
// it switches to the new transport; queued data goes there now, ahead of
// anything the socket flushes to it after the switch.
func (g *pollingGuard) Discard() {
	g.mu.Lock()
	if g.next != nil {
		g.moveLocked(g.next)
	}
	g.mu.Unlock()
	g.Polling.Discard()
}

// moveLocked sends what is queued on t and every later batch too. g.mu
// must be held.
func (g *pollingGuard) moveLocked(t transports.Transport) {
	if g.moved != nil {
		return
	}
	g.moved = t
	for _, b := range g.queued {
		t.Send(b) // a WebSocket queues its sends in order
	}
	g.queued = nil
}

// upgrading records t as the transport the socket may upgrade to.
func (g *pollingGuard) upgrading(t transports.Transport) {
	g.mu.Lock()
	g.next = t
	g.mu.Unlock()
	_ = t.Once("close", func(...any) {
		g.mu.Lock()
		if g.next == t {
			g.next = nil
		}
		g.mu.Unlock()
	})
}

// upgraded moves what is still queued to t, the socket's new transport
// (Discard normally did it already).
func (g *pollingGuard) upgraded(t transports.Transport) {
	g.mu.Lock()
	g.moveLocked(t)
	g.mu.Unlock()
}

// adopt ties g to its engine socket, whose upgrade takes over what g holds.
func (g *pollingGuard) adopt(conn engine.Socket) {
	_ = conn.On("upgrading", func(args ...any) {
		if t, ok := args[0].(transports.Transport); ok {
			g.upgrading(t)
		}
	})
	_ = conn.On("upgrade", func(args ...any) {
		if t, ok := args[0].(transports.Transport); ok {
			g.upgraded(t)
		}
	})
}

func onlyNoops(packets []*packet.Packet) bool {
	for _, p := range packets {
		if p.Type != packet.NOOP {
			return false
		}
	}
	return true
}
