package socketio

import (
	"sync/atomic"
	"time"

	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/servers/engine/v3"
)

// The engine's heartbeat has a race (engine v3.0.6, socket.go): its ping
// timer sends the PING (schedulePing) and only then arms the timeout that
// the client's PONG is to clear (resetPingTimeout). A PONG handled between
// the two clears nothing; the timeout armed just after it then closes the
// connection pingTimeout later with "ping timeout", although the client
// answered. The Hub's WebSocket writer sends the PING before Send returns
// (wsraw.go), so a client on a fast network can answer inside that window,
// and under load the timer goroutine may wait for a CPU in it: with 1,000
// sockets on loopback pinged together, 158 were closed in 8 s, and the
// load tool lost 2% of an (a) run's deliveries to it.
//
// repeatPongs repairs it from outside the library: every PONG is handled
// a second time, pongRepeatDelay later, by emitting it again on the
// connection's current transport, as if the client had sent it twice. By
// then the timer goroutine has armed its timeout, and the second PONG
// clears it (it also restarts the ping interval, so pings come that much
// later). A client that stops answering sends no PONG to repeat, so its
// timeout still ends it. At most one repeat per connection waits at a
// time, so a client that sends PONGs unasked cannot make the Hub hold
// more than one timer for it.

// repeatedPong is the PONG repeatPongs emits; its identity tells it apart
// from the client's.
var repeatedPong = &packet.Packet{Type: packet.PONG}

// pongRepeatDelay is how long after a client's PONG repeatPongs handles it
// again: a second, or a quarter of the ping timeout if that is shorter,
// so that the repeat always comes before the timeout it must clear.
func pongRepeatDelay(pingTimeout time.Duration) time.Duration {
	return min(time.Second, pingTimeout/4)
}

// repeatPongs installs the repeat on conn (see above). It must run in an
// engine "connection" listener.
func (h *Hub) repeatPongs(conn engine.Socket) {
	delay := pongRepeatDelay(h.cfg.PingTimeout)
	var pending atomic.Bool
	_ = conn.On("packet", func(args ...any) {
		if len(args) == 0 {
			return
		}
		p, ok := args[0].(*packet.Packet)
		if !ok || p == nil || p.Type != packet.PONG || p == repeatedPong || !pending.CompareAndSwap(false, true) {
			return
		}
		time.AfterFunc(delay, func() {
			pending.Store(false)
			if conn.ReadyState() == "open" {
				conn.Transport().Emit("packet", repeatedPong)
			}
		})
	})
}
