package socketio

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	gorilla "github.com/gorilla/websocket"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// Reading WebSocket connections without a goroutine each.
//
// A goroutine per connection that waits for the client's next frame costs
// its stack, 2 KiB at least, and its runtime record: about 2.4 KiB of the
// 17.6 an idle connection cost in cmd/roomlog-bench scenario d, where
// Node's socket.io costs 15. Clients send little (a PONG every
// PingInterval, their joins and events), so on Linux a connection that
// opened on WebSocket is read by a wsPoller instead: one epoll instance
// for the process, one goroutine that waits for it through the runtime's
// network poller (wspoll_linux.go), and a short-lived goroutine per burst
// of readable data that reads what is there, parses the frames
// (wsframe.go) and hands each message to the engine, strictly in order,
// one at a time, as the goroutine reader does. An idle connection then
// holds a pollConn (about 200 bytes) and no goroutine.
//
// Each connection is registered level-triggered and one-shot: after an
// event the kernel reports nothing more for it until the reader re-arms
// it, so only one goroutine ever reads a connection. Closing the
// connection (the engine closes it through gorilla, which calls
// pollConn.Close) is how the reader learns of a close on the server's
// side, as the goroutine reader learnt it from its failed read. The
// engine's idle timeout (no frame for IdleTimeout) is a sweep every
// pollSweepEvery instead of a read deadline.
//
// TLS connections (not a syscall.Conn), connections that negotiated
// compression, and other systems keep the goroutine reader (wsraw.go).

// pollSweepEvery is how often the poller looks for connections idle past
// their timeout: one closes between its timeout and that much later.
const pollSweepEvery = time.Second

// pollReadBuf is how much one read(2) takes; a burst of data is read in at
// most pollReadsPerWake reads before the connection is re-armed, so one
// client cannot hold a goroutine forever.
const (
	pollReadBuf      = 4 << 10
	pollReadsPerWake = 16
)

// pollBufs holds read buffers between bursts, so an idle connection holds
// none.
var pollBufs = sync.Pool{New: func() any { b := make([]byte, 0, pollReadBuf); return &b }}

// osPoller is the system's readiness notification: one-shot read
// readiness per file descriptor, reported as the token it was armed with.
type osPoller interface {
	// arm registers fd (add) or re-arms it after an event (!add).
	arm(fd uintptr, token uint64, add bool) error
	// disarm forgets fd.
	disarm(fd uintptr) error
	// wait blocks until events come and passes each token to ready.
	wait(ready func(token uint64)) error
}

// wsPoller reads the WebSocket connections registered with it (see above).
type wsPoller struct {
	os osPoller
	// mu guards the slot table: a token is a slot's index and generation,
	// so a late event for a connection that has gone is ignored.
	mu    sync.Mutex
	slots []*pollConn
	gens  []uint32
	free  []uint32
}

var sharedPoller struct {
	once sync.Once
	p    *wsPoller
}

// defaultPoller returns the process's poller, started on first use, or nil
// where there is none (not Linux, or epoll failed: logged once).
func defaultPoller() *wsPoller {
	sharedPoller.once.Do(func() {
		osp, err := newOSPoller()
		if err != nil {
			if !errors.Is(err, errors.ErrUnsupported) {
				slog.Warn("websocket poller unavailable; reading each connection on a goroutine", "err", err)
			}
			return
		}
		sharedPoller.p = startPoller(osp)
	})
	return sharedPoller.p
}

// startPoller starts p's event loop and idle sweep; they run for the
// life of the process, as the runtime's own network poller does.
func startPoller(osp osPoller) *wsPoller {
	p := &wsPoller{os: osp}
	go p.loop()
	go p.sweepLoop()
	return p
}

// loop passes the system's events to ready.
func (p *wsPoller) loop() {
	if err := p.os.wait(p.ready); err != nil {
		// Only a broken epoll descriptor gets here; the connections
		// registered then stay open until their ping timeout.
		slog.Error("websocket poller stopped", "err", err)
	}
}

// sweepLoop sweeps every pollSweepEvery.
func (p *wsPoller) sweepLoop() {
	for now := range time.Tick(pollSweepEvery) {
		p.sweep(now)
	}
}

// wrap returns c as a pollConn, or nil if p cannot read it.
func (p *wsPoller) wrap(c net.Conn, limit int) *pollConn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return &pollConn{Conn: c, rc: rc, p: p, parser: wsFrameParser{limit: limit}}
}

// ready starts a read of the connection token names, if it is still
// registered and armed.
func (p *wsPoller) ready(token uint64) {
	idx, gen := uint32(token), uint32(token>>32)
	p.mu.Lock()
	var pc *pollConn
	if int(idx) < len(p.slots) && p.gens[idx] == gen {
		pc = p.slots[idx]
	}
	p.mu.Unlock()
	if pc == nil {
		return
	}
	if pc.leaveArmed(pollBusy) {
		go pc.serve()
	}
}

// add gives pc a slot and returns its token.
func (p *wsPoller) add(pc *pollConn) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var idx uint32
	if n := len(p.free); n > 0 {
		idx = p.free[n-1]
		p.free = p.free[:n-1]
		p.slots[idx] = pc
	} else {
		idx = uint32(len(p.slots))
		p.slots = append(p.slots, pc)
		p.gens = append(p.gens, 0)
	}
	return uint64(p.gens[idx])<<32 | uint64(idx)
}

// remove frees the slot of token; a later event for it is ignored.
func (p *wsPoller) remove(token uint64) {
	idx := uint32(token)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.slots[idx] == nil || p.gens[idx] != uint32(token>>32) {
		return
	}
	p.slots[idx] = nil
	p.gens[idx]++
	p.free = append(p.free, idx)
}

// sweep closes the armed connections that have had no frame for their
// idle timeout.
func (p *wsPoller) sweep(now time.Time) {
	var stale []*pollConn
	t := now.UnixNano()
	p.mu.Lock()
	for _, pc := range p.slots {
		if pc != nil && pc.idle > 0 && t-pc.last.Load() > int64(pc.idle) {
			stale = append(stale, pc)
		}
	}
	p.mu.Unlock()
	for _, pc := range stale {
		pc.expire()
	}
}

// pollHijacker hands gorilla's Upgrader a connection the poller reads.
type pollHijacker struct {
	http.ResponseWriter
	p     *wsPoller
	limit int
}

// Hijack implements http.Hijacker.
func (h pollHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := h.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("response does not implement http.Hijacker")
	}
	c, rw, err := hj.Hijack()
	if err != nil {
		return c, rw, err
	}
	if pc := h.p.wrap(c, h.limit); pc != nil {
		return pc, rw, nil
	}
	return c, rw, nil
}

// pollConn states.
const (
	pollNew   = iota // not registered yet
	pollArmed        // registered, waiting for data
	pollBusy         // a goroutine is reading it
	pollDone         // finished: the transport has heard of the close
)

// pollConn is a hijacked network connection the poller reads. Writes go
// straight to the connection (rawWebSocket); reads are the poller's.
type pollConn struct {
	net.Conn
	rc syscall.RawConn
	p  *wsPoller

	// Set by start.
	w     *rawWebSocket
	conn  *types.WebSocketConn
	idle  time.Duration
	token uint64
	// registered says token names a slot (set under mu before pollArmed).
	registered bool

	// last is when the last frame was read or handled (UnixNano).
	last atomic.Int64

	// closed says Close was called. The reader also reads it between
	// messages, to stop handing a closed connection's messages on.
	closed atomic.Bool

	mu    sync.Mutex
	state int
	// expired says the idle sweep closed the connection.
	expired bool

	// Touched only by the goroutine in state pollBusy (or start).
	parser wsFrameParser
	in     *[]byte // unparsed bytes, nil when none
	msg    []byte  // a fragmented message so far
	msgOp  byte
}

// Close closes the connection. A connection waiting for data then
// finishes at once: the transport hears of the close, as it did from the
// goroutine reader's failed read.
func (pc *pollConn) Close() error {
	pc.closed.Store(true)
	err := pc.Conn.Close()
	if pc.leaveArmed(pollDone) {
		go pc.finish(net.ErrClosed)
	}
	return err
}

// leaveArmed moves pc from pollArmed to state to and reports whether it
// did: whoever moves a connection out of pollArmed owns it next (reads it,
// or finishes it).
func (pc *pollConn) leaveArmed(to int) bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.state != pollArmed {
		return false
	}
	pc.state = to
	return true
}

// errPollIdle is the read error of a connection closed for idleness.
var errPollIdle = fmt.Errorf("websocket: no frame within the idle timeout: %w", os.ErrDeadlineExceeded)

// expire closes pc for idleness if it is still waiting for data.
func (pc *pollConn) expire() {
	pc.mu.Lock()
	if pc.state != pollArmed {
		pc.mu.Unlock()
		return
	}
	pc.expired = true
	pc.mu.Unlock()
	_ = pc.Close()
}

// start registers pc with the poller for w's transport: the reader's
// start, once the engine has given permission to read.
func (pc *pollConn) start(w *rawWebSocket, conn *types.WebSocketConn, idle time.Duration) {
	pc.w, pc.conn, pc.idle = w, conn, idle
	pc.last.Store(time.Now().UnixNano())
	pc.mu.Lock()
	if pc.state != pollNew {
		pc.mu.Unlock()
		return
	}
	if pc.closed.Load() {
		pc.state = pollDone
		pc.mu.Unlock()
		go pc.finish(net.ErrClosed)
		return
	}
	pc.token, pc.registered = pc.p.add(pc), true
	pc.state = pollArmed
	pc.mu.Unlock()
	pc.arm(true)
}

// arm registers pc (add) or re-arms it. If that fails, pc finishes with
// the error, unless Close took it over meanwhile.
func (pc *pollConn) arm(add bool) {
	var err error
	if cerr := pc.rc.Control(func(fd uintptr) { err = pc.p.os.arm(fd, pc.token, add) }); cerr != nil {
		err = cerr
	}
	if err == nil {
		return
	}
	if pc.leaveArmed(pollDone) {
		pc.finish(fmt.Errorf("websocket poller: %w", err))
	}
}

// serve reads what the connection has, handles every whole frame in it,
// and re-arms the connection, or finishes it on an error or a close.
func (pc *pollConn) serve() {
	for range pollReadsPerWake {
		n, full, err := pc.read()
		if err == syscall.EAGAIN {
			break
		}
		if err == nil && n == 0 {
			err = errWSPeerGone
		}
		if err == nil {
			pc.last.Store(time.Now().UnixNano())
			err = pc.consume()
		}
		if err != nil {
			pc.mu.Lock()
			pc.state = pollDone
			pc.mu.Unlock()
			pc.finish(err)
			return
		}
		if !full {
			break // drained, most likely: the next read would say EAGAIN
		}
	}
	pc.releaseIn()
	pc.last.Store(time.Now().UnixNano())
	pc.mu.Lock()
	if pc.closed.Load() {
		pc.state = pollDone
		pc.mu.Unlock()
		pc.finish(net.ErrClosed)
		return
	}
	pc.state = pollArmed
	pc.mu.Unlock()
	pc.arm(false)
}

// read reads once into pc.in without waiting: EAGAIN when there is
// nothing to read, 0 bytes at the end of the stream. full says the read
// filled the room it had, so more may be waiting.
func (pc *pollConn) read() (n int, full bool, err error) {
	if pc.in == nil {
		pc.in = pollBufs.Get().(*[]byte)
		*pc.in = (*pc.in)[:0]
	}
	b := *pc.in
	if cap(b)-len(b) < pollReadBuf {
		nb := make([]byte, len(b), 2*cap(b)+pollReadBuf)
		copy(nb, b)
		b = nb
	}
	room := b[len(b):cap(b)]
	var rerr error
	err = pc.rc.Read(func(fd uintptr) bool {
		for {
			n, rerr = syscall.Read(int(fd), room)
			if rerr != syscall.EINTR {
				return true
			}
		}
	})
	if err != nil {
		return 0, false, err
	}
	if rerr != nil {
		if rerr == syscall.EAGAIN {
			return 0, false, syscall.EAGAIN
		}
		return 0, false, os.NewSyscallError("read", rerr)
	}
	*pc.in = b[:len(b)+n]
	return n, n == len(room), nil
}

// releaseIn returns the read buffer to the pool when it holds nothing,
// so an idle connection keeps none.
func (pc *pollConn) releaseIn() {
	if pc.in == nil || len(*pc.in) != 0 {
		return
	}
	if cap(*pc.in) <= 64<<10 {
		pollBufs.Put(pc.in)
	}
	pc.in = nil
}

// errWSPeerGone ends a connection whose client went without a close
// frame: gorilla's own error for it, so both readers report it alike.
var errWSPeerGone = &gorilla.CloseError{Code: gorilla.CloseAbnormalClosure, Text: io.ErrUnexpectedEOF.Error()}

// consume handles the whole frames in pc.in and keeps the rest.
func (pc *pollConn) consume() error {
	b := *pc.in
	off := 0
	defer func() {
		rest := copy(b, b[off:])
		*pc.in = b[:rest]
	}()
	for {
		if pc.closed.Load() {
			// A handler closed the connection: nothing more is handed on.
			return net.ErrClosed
		}
		f, used, err := pc.parser.next(b[off:])
		if err == errWSIncomplete {
			return nil
		}
		if err != nil {
			var pe *wsProtocolError
			if errors.As(err, &pe) {
				pc.writeClose(pe.code)
			}
			return err
		}
		off += used
		switch f.op {
		case opPing:
			pc.w.pong(f.payload)
		case opPong:
		case opClose:
			// Answer with the client's code, as gorilla does, and end
			// with gorilla's error for it.
			code := gorilla.CloseNoStatusReceived
			if len(f.payload) >= 2 {
				code = int(binary.BigEndian.Uint16(f.payload))
			}
			pc.writeClose(code)
			return &gorilla.CloseError{Code: code, Text: string(f.payload[min(2, len(f.payload)):])}
		case opText, opBinary:
			pc.msgOp = f.op
			fallthrough
		default: // a continuation
			if f.fin && pc.msg == nil {
				pc.deliver(pc.msgOp, append([]byte(nil), f.payload...))
				continue
			}
			pc.msg = append(pc.msg, f.payload...)
			if f.fin {
				msg := pc.msg
				pc.msg = nil
				pc.deliver(pc.msgOp, msg)
			}
		}
	}
}

// deliver hands one message to the engine, as the goroutine reader does.
func (pc *pollConn) deliver(op byte, msg []byte) {
	var data types.BufferInterface
	if op == opText {
		data = types.NewStringBuffer(msg)
	} else {
		data = types.NewBytesBuffer(msg)
	}
	pc.w.OnData(data)
	pc.last.Store(time.Now().UnixNano())
}

// writeClose sends a close frame with code (none for
// gorilla.CloseNoStatusReceived), as gorilla.FormatCloseMessage words it.
func (pc *pollConn) writeClose(code int) {
	payload := gorilla.FormatCloseMessage(code, "")
	f := appendFrameHeader(make([]byte, 0, 2+len(payload)), opClose, len(payload))
	_ = pc.w.write(append(f, payload...))
}

// finish ends the reader: the slot is freed and the transport hears of
// the end as from the goroutine reader (readEnded). A connection closed on
// this side reports net.ErrClosed (errPollIdle if the idle sweep closed
// it) whatever its last read said, unless the client's close came first.
// It runs once, by whoever set pollDone.
func (pc *pollConn) finish(err error) {
	var ce *gorilla.CloseError
	if pc.closed.Load() && !errors.As(err, &ce) {
		err = net.ErrClosed
		if pc.expired {
			err = errPollIdle
		}
	}
	if pc.registered {
		pc.p.remove(pc.token)
		_ = pc.rc.Control(func(fd uintptr) { _ = pc.p.os.disarm(fd) })
	}
	pc.msg = nil
	if pc.in != nil {
		*pc.in = (*pc.in)[:0]
		pc.releaseIn()
	}
	readEnded(pc.w, pc.conn, err)
}
