package socketio

import (
	"sync"
	"time"

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
// or nothing until its ping timeout). pollingGuard serialises the two:
// whichever comes second either was only a NOOP (dropped: the poll is being
// answered anyway) or is real data, which waits, still holding the
// socket's flush lock so nothing overtakes it, for the next poll or for the
// upgraded transport.

// pollingBuilder builds guarded polling transports.
type pollingBuilder struct{ transports.PollingBuilder }

// New implements transports.TransportCtor.
func (b *pollingBuilder) New(ctx *types.HttpContext) transports.Transport {
	inner, ok := b.PollingBuilder.New(ctx).(transports.Polling)
	if !ok {
		return b.PollingBuilder.New(ctx)
	}
	g := &pollingGuard{Polling: inner, ready: make(chan struct{}, 1), moved: make(chan struct{})}
	// Registered before the engine socket's own listeners.
	_ = inner.On("ready", func(...any) { signal(g.ready) })
	return g
}

// pollingGuard is the library's polling transport with a Send that never
// sends twice on one poll.
type pollingGuard struct {
	transports.Polling

	mu        sync.Mutex
	ready     chan struct{} // a new poll arrived
	owner     engine.Socket // set once the engine socket exists
	moved     chan struct{} // closed when the socket upgraded away or closed
	movedOnce sync.Once
}

// maxPollWait bounds how long a send that lost its poll waits for the next.
const maxPollWait = 30 * time.Second

// Send implements transports.Transport.
func (g *pollingGuard) Send(packets []*packet.Packet) {
	deadline := time.NewTimer(maxPollWait)
	defer deadline.Stop()
	for {
		g.mu.Lock()
		if g.Writable() {
			g.Polling.Send(packets) // marks the transport not writable
			g.mu.Unlock()
			return
		}
		owner := g.owner
		g.mu.Unlock()
		if onlyNoops(packets) {
			return // the pending poll is being answered already
		}
		select {
		case <-g.ready:
		case <-g.moved:
			if owner != nil {
				if t := owner.Transport(); t != nil && t != transports.Transport(g) && owner.ReadyState() != "closed" {
					t.Send(packets)
				}
			}
			return
		case <-deadline.C:
			g.Polling.Send(packets) // what the library would have done
			return
		}
	}
}

// adopt ties g to its engine socket, whose upgrade or close releases sends
// waiting for a poll.
func (g *pollingGuard) adopt(conn engine.Socket) {
	g.mu.Lock()
	g.owner = conn
	g.mu.Unlock()
	release := func(...any) { g.movedOnce.Do(func() { close(g.moved) }) }
	_ = conn.On("upgrade", release)
	_ = conn.Once("close", release)
}

func onlyNoops(packets []*packet.Packet) bool {
	for _, p := range packets {
		if p.Type != packet.NOOP {
			return false
		}
	}
	return true
}
