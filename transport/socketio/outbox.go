package socketio

import (
	"context"
	"sync"

	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/roomlog/roomlog/domain"
)

// frame is one Socket.IO EVENT packet, encoded once and shared by every
// socket it goes to. Nothing may modify it after creation.
type frame struct {
	// text is the Socket.IO packet, e.g. `42["new-offer",{...},{...}]`.
	text []byte
	// ws is the Engine.IO message ("4" + text) that the WebSocket
	// transport sends as a prepared frame.
	ws types.BufferInterface
	// offset says the packet ends with pos as a recovery offset; plain is
	// then the same packet without it (nil for session-offset).
	offset bool
	pos    domain.Position
	plain  *frame
}

func newFrame(text []byte) *frame {
	ws := make([]byte, 0, len(text)+1)
	ws = append(ws, '4')
	ws = append(ws, text...)
	// Full slice expressions: an append by a reader can never write into the
	// shared arrays.
	return &frame{text: text[:len(text):len(text)], ws: types.NewStringBuffer(ws[:len(ws):len(ws)])}
}

// item is one entry of an outbox: a frame to write, or a function the
// writer runs in order with the frames (an ack that must follow a replay).
type item struct {
	f  *frame
	fn func()
}

func (it item) size() int {
	if it.f != nil {
		return len(it.f.text)
	}
	return 0
}

// outbox is a socket's bounded outbound queue. Producers never block on it
// (push fails when it is full) except replays, which wait for room with
// pushWait and leave half the capacity to live traffic. One writer takes
// items out in order. It is safe for concurrent use.
type outbox struct {
	maxItems, maxBytes int

	mu     sync.Mutex
	items  []item
	bytes  int
	closed bool
	wake   chan struct{} // cap 1: items are waiting for the writer
	space  chan struct{} // cap 1: the writer took items
}

func newOutbox(maxItems, maxBytes int) *outbox {
	return &outbox{
		maxItems: maxItems,
		maxBytes: maxBytes,
		wake:     make(chan struct{}, 1),
		space:    make(chan struct{}, 1),
	}
}

// push appends it unless that would exceed a bound. It reports false when
// the outbox is full; pushing to a closed outbox silently does nothing and
// reports true.
func (o *outbox) push(it item) bool {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return true
	}
	if len(o.items) >= o.maxItems || (len(o.items) > 0 && o.bytes+it.size() > o.maxBytes) {
		o.mu.Unlock()
		return false
	}
	o.items = append(o.items, it)
	o.bytes += it.size()
	o.mu.Unlock()
	signal(o.wake)
	return true
}

// pushWait appends it once the outbox is at most half full, waiting for the
// writer if needed. It returns ctx's error if ctx ends first and
// errOutboxClosed if the outbox is closed.
func (o *outbox) pushWait(ctx context.Context, it item) error {
	for {
		o.mu.Lock()
		if o.closed {
			o.mu.Unlock()
			return errOutboxClosed
		}
		if len(o.items) < o.maxItems/2 && (len(o.items) == 0 || o.bytes+it.size() <= o.maxBytes/2) {
			o.items = append(o.items, it)
			o.bytes += it.size()
			o.mu.Unlock()
			signal(o.wake)
			return nil
		}
		o.mu.Unlock()
		select {
		case <-o.space:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// take removes and returns every waiting item, oldest first.
func (o *outbox) take() []item {
	o.mu.Lock()
	items := o.items
	o.items = nil
	o.bytes = 0
	o.mu.Unlock()
	if len(items) > 0 {
		signal(o.space)
	}
	return items
}

// len returns how many items wait.
func (o *outbox) len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.items)
}

// close drops what waits and makes later pushes no-ops.
func (o *outbox) close() {
	o.mu.Lock()
	o.closed = true
	o.items = nil
	o.bytes = 0
	o.mu.Unlock()
	signal(o.space)
}

// signal does a non-blocking send on a channel of capacity one.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

type outboxError string

func (e outboxError) Error() string { return string(e) }

const errOutboxClosed = outboxError("socketio: socket closed")
