package socketio

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	gorilla "github.com/gorilla/websocket"
	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// The library's WebSocket transport sends every batch on a queue
// goroutine started for the burst, re-encodes each packet into a fresh
// buffer, and writes each frame with its own system call through gorilla's
// message writer. In a profile of the fan-out at 25,000 deliveries/s that
// path was 41% of roomlogd's CPU: the copy 9%, the goroutines' stack growth
// and event plumbing about 15%, and one write(2) per frame the rest.
//
// rawWebSocket keeps the library's transport for close handling, events
// and decoding, and writes frames itself: each batch is encoded into one
// pooled buffer and leaves in one write, on the caller's goroutine, under
// a write deadline. The Hub's writer also hands it its frames directly
// (writeFrames), so a socket's queued events go out together, a replay of
// thousands in a handful of writes. It also reads the connection itself:
// on Linux through the process's epoll poller, with no goroutine while
// the connection is idle (wspoll.go), elsewhere on a goroutine that keeps
// a small stack while it waits (startReader).
//
// Frames are complete in every write, and a net.Conn write is atomic with
// respect to other writes on the connection, so gorilla's own control
// frames (a close or pong it answers from the reader) never interleave
// with ours. A server frame is not masked; the payload is never
// compressed (RFC 7692 allows uncompressed messages on a connection that
// negotiated compression).
//
// Only connections that open on WebSocket get one. A connection that
// upgrades from polling keeps the library's transport: the engine may
// still flush packets it buffered during the upgrade, and only its own
// transport orders those before the Hub's.

// wsBuilder builds the WebSocket transports: rawWebSocket for a
// connection that opens on WebSocket, the library's for an upgrade.
type wsBuilder struct {
	transports.WebSocketBuilder
	// writeTimeout bounds each write: a client that accepts nothing for
	// that long has its connection closed.
	writeTimeout time.Duration
}

// New implements transports.TransportCtor.
func (b *wsBuilder) New(ctx *types.HttpContext) transports.Transport {
	if ctx.Query().Peek("sid") != "" || ctx.Websocket == nil || ctx.Websocket.Conn == nil {
		return b.WebSocketBuilder.New(ctx)
	}
	// The library's transport starts its reader once the engine grants
	// the read permission. It is built here with a permission of our own,
	// refused at once, so its reader never starts; rawWebSocket's starts
	// on the engine's permission instead.
	permission := ctx.TransportReadPermission()
	refused := make(chan bool)
	ctx.SetTransportReadPermission(refused)
	ws := transports.NewWebSocket(ctx)
	ctx.SetTransportReadPermission(permission)
	close(refused)
	raw := newRawWebSocket(ctx.Websocket.Conn, b.writeTimeout)
	raw.Websocket = ws
	raw.startReader(ctx.Websocket, ctx.IdleTimeout, permission)
	return raw
}

// newRawWebSocket returns the writer of c's network connection. It also
// answers the client's pings itself: gorilla's own answer would set the
// connection's write deadline to a second ahead, under the deadline this
// writer believes is set.
func newRawWebSocket(c *gorilla.Conn, timeout time.Duration) *rawWebSocket {
	w := &rawWebSocket{nc: c.NetConn(), timeout: timeout}
	c.SetPingHandler(func(data string) error {
		w.pong([]byte(data))
		return nil
	})
	return w
}

// pong answers a client's ping with its data, through the writer.
func (w *rawWebSocket) pong(data []byte) {
	b := appendFrameHeader(make([]byte, 0, len(data)+2), opPong, len(data))
	w.closeAfter(w.write(append(b, data...)), nil)
}

// rawWebSocket is the library's WebSocket transport with a Send of its own
// (see above).
type rawWebSocket struct {
	transports.Websocket

	nc      net.Conn
	timeout time.Duration

	// mu serialises writes; failed says a write failed and the connection
	// is being closed. deadline is the write deadline last set.
	mu       sync.Mutex
	failed   bool
	deadline time.Time
}

// startReader starts the connection's reader through the library's
// transports.StartReader, with the same permission rules as the library's
// own reader: true starts it, false or a channel closed without true
// cancels it (closing the transport if that was settled already), and a
// nil permission starts it at once.
//
// A connection the Hub opened through the poller (a *pollConn) is
// registered with it (wspoll.go); the rest of this comment is about the
// goroutine reader every other connection gets.
//
// The reader is the library's websocket.message with one change: each
// message is read in full and handled (decoded, and the engine's and the
// Hub's handlers run) on a goroutine of its own while the reader waits,
// so messages are still handled strictly in order, one at a time.
//
// Handling a message takes a deep stack (about 8 KiB: the engine, the
// Socket.IO decoder, the Hub's handlers; reading it in full allocates),
// and a goroutine keeps the stack it grew to: the GC halves a stack only
// while less than a quarter of it is in use, so the library's reader,
// which handles its messages itself, kept 8 KiB for life, and one that
// outgrew its first 2 KiB by a few bytes keeps 4 KiB. The reader here only
// waits for the next frame, in a loop that is its goroutine's first frame
// and small (StartReader's function only starts that goroutine, so none
// of StartReader's frames sit under it), and stays within 2 KiB: about
// 1,040 bytes of frames from the loop through gorilla's NextReader down
// to the netpoller's park, against the 1,120 a 2 KiB stack leaves beside
// the runtime's guard (TestRawReaderStack checks it). A reader started
// while the process is busy may still start at 4 KiB, as the runtime
// starts goroutines with the average stack in use at the last GC. The
// cost is a goroutine per client message, and clients send few: a PONG
// per ping, their joins and events.
func (w *rawWebSocket) startReader(conn *types.WebSocketConn, idle time.Duration, permission <-chan bool) {
	if pc, ok := conn.NetConn().(*pollConn); ok {
		transports.StartReader(w, permission, func() { pc.start(w, conn, idle) })
		return
	}
	rd := &wsReader{w: w, conn: conn, idle: idle, done: make(chan error, 1)}
	read := func() {
		for {
			mt, r, err := conn.NextReader()
			if !rd.handle(mt, r, err) {
				return
			}
		}
	}
	transports.StartReader(w, permission, func() {
		if idle > 0 {
			_ = conn.SetReadDeadline(time.Now().Add(idle))
		}
		go read()
	})
}

// wsReader is what a rawWebSocket's reader needs besides the connection.
type wsReader struct {
	w    *rawWebSocket
	conn *types.WebSocketConn
	// idle is the engine's idle timeout: the longest wait for a frame.
	idle time.Duration
	// done carries each message's handling result back to the reader.
	done chan error
}

// handle handles what the reader's NextReader returned: a message is
// read in full and handled on a goroutine of its own (see startReader),
// then the idle timeout starts again for the next one. An error ends the
// connection. It reports whether the reader goes on.
//
// It is kept out of line so its frame is not on the reader's stack while
// the reader waits.
//
//go:noinline
func (rd *wsReader) handle(mt int, r io.Reader, err error) bool {
	if err == nil && (mt == gorilla.TextMessage || mt == gorilla.BinaryMessage) {
		go func() {
			var err error
			defer func() { rd.done <- err }()
			var data types.BufferInterface = types.NewBytesBuffer(nil)
			if mt == gorilla.TextMessage {
				data = types.NewStringBuffer(nil)
			}
			if _, err = data.ReadFrom(r); err == nil {
				rd.w.OnData(data)
			}
		}()
		err = <-rd.done
	}
	if err != nil {
		readEnded(rd.w, rd.conn, err)
		return false
	}
	if rd.idle > 0 {
		_ = rd.conn.SetReadDeadline(time.Now().Add(rd.idle))
	}
	return true
}

// readEnded ends the connection after a read error as the library's
// transport does: "close" for a closed connection (a *gorilla.CloseError
// or net.ErrClosed), "error" (which the transport reports and then closes
// on) for anything else; then, as the library's reader does on its way
// out, "close" if the transport has not closed yet. Both readers end
// here.
func readEnded(w *rawWebSocket, conn *types.WebSocketConn, err error) {
	if gorilla.IsUnexpectedCloseError(err) || errors.Is(err, net.ErrClosed) {
		conn.Emit("close")
	} else {
		conn.Emit("error", err)
	}
	if w.ReadyState() != "closed" {
		conn.Emit("close")
	}
}

// errRawClosed is returned for writes after a write failed.
var errRawClosed = errors.New("websocket: connection closed after a failed write")

// maxRawWrite is the most one write call carries; a longer batch is split
// at frame boundaries.
const maxRawWrite = 256 << 10

// rawBufs holds write buffers between writes, so an idle connection holds
// none.
var rawBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// Send implements transports.Transport: the engine's packets (handshake,
// pings, acks, the Socket.IO CONNECT) in one write. The transport stays
// writable, so the engine never buffers behind it, and "drain" fires
// before Send returns (the engine runs its send callbacks on it).
func (w *rawWebSocket) Send(packets []*packet.Packet) {
	bp := rawBufs.Get().(*[]byte)
	b := (*bp)[:0]
	var err error
	for _, p := range packets {
		data, encErr := w.Parser().EncodePacket(p, w.SupportsBinary())
		if encErr != nil {
			err = fmt.Errorf("encode packet: %w", encErr)
			break
		}
		op := byte(opText)
		if _, ok := data.(*types.StringBuffer); !ok {
			op = opBinary
		}
		b = appendFrameHeader(b, op, data.Len())
		b = append(b, data.Bytes()...)
	}
	if err == nil {
		err = w.write(b)
	}
	putRawBuf(bp, b)
	w.closeAfter(err, nil)
	w.Emit("drain")
}

// writeFrames writes Socket.IO packets, each as an Engine.IO MESSAGE in
// its own text frame, in as few writes as maxRawWrite allows. After an
// error nothing more is written, and the caller closes the connection
// (with a reason, for a client too slow to take the frames).
func (w *rawWebSocket) writeFrames(texts [][]byte) error {
	bp := rawBufs.Get().(*[]byte)
	b := (*bp)[:0]
	var err error
	for _, t := range texts {
		if len(b) > 0 && len(b)+len(t)+11 > maxRawWrite {
			if err = w.write(b); err != nil {
				break
			}
			b = b[:0]
		}
		b = appendFrameHeader(b, opText, len(t)+1)
		b = append(b, '4') // Engine.IO MESSAGE
		b = append(b, t...)
	}
	if err == nil && len(b) > 0 {
		err = w.write(b)
	}
	putRawBuf(bp, b)
	return err
}

// write sends b, whole frames, under the write deadline. After a failed
// write part of a frame may have left, so nothing more is written.
//
// Setting a deadline costs a timer update (7% of the CPU of a fan-out
// profile when done per write), so it is moved only once less than half
// the timeout is left: a write may take between half the timeout and the
// whole of it before it fails.
func (w *rawWebSocket) write(b []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failed {
		return errRawClosed
	}
	var err error
	if now := time.Now(); now.Add(w.timeout / 2).After(w.deadline) {
		w.deadline = now.Add(w.timeout)
		err = w.nc.SetWriteDeadline(w.deadline)
	}
	if err == nil {
		_, err = w.nc.Write(b)
	}
	if err != nil {
		w.failed = true
		return fmt.Errorf("websocket: write: %w", err)
	}
	return nil
}

// close closes the network connection; the reader then fails and closes
// the transport, as for any network error.
func (w *rawWebSocket) close() { _ = w.nc.Close() }

// closeAfter ends the connection if err, from a write or the encoding
// before it, is not nil: after a failed write part of a frame may have
// left, so nothing more can be written. A write that timed out goes to
// onTimeout instead, if it is not nil, to close the connection with a
// reason; anything else closes it at once. It reports whether err was nil.
func (w *rawWebSocket) closeAfter(err error, onTimeout func()) bool {
	if err == nil {
		return true
	}
	var ne net.Error
	if onTimeout != nil && errors.As(err, &ne) && ne.Timeout() {
		onTimeout()
	} else {
		w.close()
	}
	return false
}

func putRawBuf(bp *[]byte, b []byte) {
	if cap(b) > 64<<10 {
		return // a replay's buffer: let it go
	}
	*bp = b[:0]
	rawBufs.Put(bp)
}

// WebSocket opcodes (RFC 6455, 5.2).
const (
	opText   = 0x1
	opBinary = 0x2
	opPong   = 0xA
)

// appendFrameHeader appends the header of a final, unmasked frame of op
// carrying n payload bytes.
func appendFrameHeader(b []byte, op byte, n int) []byte {
	b = append(b, 0x80|op)
	switch {
	case n < 126:
		return append(b, byte(n))
	case n <= 0xffff:
		return append(b, 126, byte(n>>8), byte(n))
	default:
		u := uint64(n)
		return append(b, 127, byte(u>>56), byte(u>>48), byte(u>>40), byte(u>>32), byte(u>>24), byte(u>>16), byte(u>>8), byte(u))
	}
}
