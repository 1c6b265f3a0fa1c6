package socketio

import (
	"context"
	"sync"

	"github.com/roomlog/roomlog/domain"
)

// frame is one Socket.IO EVENT packet, encoded once and shared by every
// socket it goes to. Nothing may modify it after creation.
type frame struct {
	// text is the Socket.IO packet, e.g. `42["new-offer",{...},{...}]`.
	text []byte
	// offset says the packet ends with pos as a recovery offset; plain is
	// then the same packet without it (nil for session-offset).
	offset bool
	pos    domain.Position
	plain  *frame
}

func newFrame(text []byte) *frame {
	// A full slice expression: an append by a reader can never write into
	// the shared array.
	return &frame{text: text[:len(text):len(text)]}
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
// pushWait and leave half the capacity to live traffic. One writer at a
// time takes items out in order. The writer is not a goroutine per socket:
// once setWriter installed its starter, the first push into an idle outbox
// starts it, and it stops (takeOrStop) when it finds the outbox empty, so an
// idle socket costs no goroutine. It is safe for concurrent use.
type outbox struct {
	maxItems, maxBytes int

	mu     sync.Mutex
	items  []item
	bytes  int
	closed bool
	// start starts the writer (nil until setWriter: items wait). running
	// says a writer was started and has not stopped; it stays true after
	// a writer gave up on the socket, or could not start, so that none is
	// started again.
	start   func()
	running bool
	space   chan struct{} // cap 1, made by the first pushWait: the writer took items
}

func newOutbox(maxItems, maxBytes int) *outbox {
	return &outbox{maxItems: maxItems, maxBytes: maxBytes}
}

// setWriter installs start, which runs a writer loop on the Hub's writer
// pool (or, if it cannot, closes the socket), and starts one at once if
// items wait. The
// writer must loop on takeOrStop until it returns nil.
func (o *outbox) setWriter(start func()) {
	o.mu.Lock()
	o.start = start
	o.unlockAndRun()
}

// unlockAndRun unlocks o.mu, which must be held, and starts a writer if
// items wait and none runs.
func (o *outbox) unlockAndRun() {
	run := o.start != nil && !o.running && !o.closed && len(o.items) > 0
	o.running = o.running || run
	o.mu.Unlock()
	if run {
		o.start()
	}
}

// appendAndRun appends it, unlocks o.mu, which must be held, and starts a
// writer if none runs.
func (o *outbox) appendAndRun(it item) {
	o.items = append(o.items, it)
	o.bytes += it.size()
	o.unlockAndRun()
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
	o.appendAndRun(it)
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
			o.appendAndRun(it)
			return nil
		}
		if o.space == nil {
			o.space = make(chan struct{}, 1)
		}
		space := o.space
		o.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// takeOrStop is the writer's take: it removes and returns every waiting
// item, oldest first, or, if none waits, records that the writer stopped
// and returns nil. The writer must then exit; the next push starts another.
func (o *outbox) takeOrStop() []item {
	o.mu.Lock()
	items := o.items
	if len(items) == 0 {
		o.running = false
		o.mu.Unlock()
		return nil
	}
	o.items = nil
	o.bytes = 0
	space := o.space
	o.mu.Unlock()
	if space != nil {
		signal(space)
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
	space := o.space
	o.mu.Unlock()
	if space != nil {
		signal(space)
	}
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
