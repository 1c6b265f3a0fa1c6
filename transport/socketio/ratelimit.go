package socketio

import (
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/roomlog/roomlog/domain"
)

// DefaultEventRate is how many client events per second one socket may
// send by default.
const DefaultEventRate = 50

// RateLimit bounds the client events of one socket with a token bucket: a
// socket may send Burst events at once and Rate per second after that. An
// event over the limit is not handled: its ack, if any, answers
// {ok: false, error: {code: "rate_limited"}}. A socket that goes on
// sending past the limit, so that more than DisconnectAfter of its events
// are refused within 10 seconds, is disconnected. The zero value means the
// defaults.
type RateLimit struct {
	// Rate is the sustained events per second per socket. Default
	// DefaultEventRate; negative disables the limit.
	Rate float64
	// Burst is how many events a socket may send at once. Default
	// 2 × Rate (at least 1).
	Burst int
	// DisconnectAfter is how many refused events within 10 seconds
	// disconnect the socket. Default 5 × Rate (at least 10).
	DisconnectAfter int
}

// abuseWindow is the window DisconnectAfter counts refusals in.
const abuseWindow = 10 * time.Second

// withDefaults returns r with zero fields replaced by their defaults.
func (r RateLimit) withDefaults() RateLimit {
	if r.Rate == 0 {
		r.Rate = DefaultEventRate
	}
	if r.Burst <= 0 {
		r.Burst = max(1, int(math.Ceil(2*r.Rate)))
	}
	if r.DisconnectAfter <= 0 {
		r.DisconnectAfter = max(10, int(math.Ceil(5*r.Rate)))
	}
	return r
}

// socketLimiter is one socket's bucket. Its middleware runs on the
// library's packet path, before the event is queued for a handler.
type socketLimiter struct {
	c   *conn
	cfg RateLimit
	now func() time.Time

	mu          sync.Mutex
	tokens      float64
	at          time.Time
	windowStart time.Time
	refused     int
	dropped     bool
}

// rateLimit returns the socket's event middleware (socket.Use).
func (c *conn) rateLimit() socket.SocketMiddleware {
	cfg := c.h.cfg.Rate.withDefaults()
	now := c.h.now
	if now == nil {
		now = time.Now
	}
	l := &socketLimiter{c: c, cfg: cfg, now: now, tokens: float64(cfg.Burst), at: now()}
	return l.middleware
}

// errRateLimited is what the library receives for a refused event; it
// reaches no client.
var errRateLimited = domain.Errorf(domain.CodeRateLimited, "rate limited")

func (l *socketLimiter) middleware(event []any, next func(error)) {
	if len(event) == 0 {
		next(errBadEvent)
		return
	}
	if _, ok := event[0].(string); !ok {
		// An event whose name is not a string is no client's: the
		// library would dispatch it under the name "" and, with an ack
		// id, leave the ack pending. Treat it as a protocol violation.
		next(errBadEvent)
		l.closeTransport("malformed event")
		return
	}
	if l.cfg.Rate < 0 {
		next(nil)
		return
	}
	ok, drop := l.take()
	if ok {
		next(nil)
		return
	}
	if _, ack := splitAck(event); ack != nil {
		err := domain.Errorf(domain.CodeRateLimited, "more than %g events per second on this socket; slow down", l.cfg.Rate)
		ack([]any{ackResponse(err)}, nil)
	}
	next(errRateLimited)
	if drop {
		l.c.h.logger.Warn("disconnecting socket over its event rate limit", "socket", l.c.id, "user", l.c.p.UserID, "refused", l.cfg.DisconnectAfter, "window", abuseWindow)
		// The client may reconnect, at the cost of a new handshake.
		l.closeTransport("rate limited")
	}
}

// closeGrace is how long a socket dropped for flooding keeps its transport
// before it is closed.
const closeGrace = 250 * time.Millisecond

// errBadEvent is what the library receives for a malformed event.
var errBadEvent = domain.Errorf(domain.CodeInvalid, "malformed event")

// closeTransport closes the socket's connection with reason, which the
// Hub's disconnect stats show, off the packet path (the transport's own).
func (l *socketLimiter) closeTransport(reason string) {
	go func() {
		// Give the transport a moment to flush the rate_limited acks
		// already written, so the client learns why it is dropped;
		// OnClose discards whatever is still buffered.
		time.Sleep(closeGrace)
		if closer, ok := l.c.sock.Conn().(interface{ OnClose(string, ...error) }); ok {
			closer.OnClose(reason)
			return
		}
		l.c.sock.Conn().Close(true)
	}()
}

// take takes a token. When none is left it counts a refusal and reports
// drop once the refusals in the window exceed DisconnectAfter.
func (l *socketLimiter) take() (ok, drop bool) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tokens = min(float64(l.cfg.Burst), l.tokens+now.Sub(l.at).Seconds()*l.cfg.Rate)
	l.at = now
	if l.tokens >= 1 {
		l.tokens--
		return true, false
	}
	if now.Sub(l.windowStart) > abuseWindow {
		l.windowStart, l.refused = now, 0
	}
	l.refused++
	if l.refused > l.cfg.DisconnectAfter && !l.dropped {
		l.dropped = true
		return false, true
	}
	return false, false
}

func (r RateLimit) String() string {
	return fmt.Sprintf("%g/s burst %d disconnect after %d refused in %s", r.Rate, r.Burst, r.DisconnectAfter, abuseWindow)
}
