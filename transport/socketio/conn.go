package socketio

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
)

// conn is the Hub's state for one socket.
type conn struct {
	h    *Hub
	sock *socket.Socket
	id   string
	p    domain.Principal
	out  *outbox

	// ctx ends when the socket disconnects.
	ctx    context.Context
	cancel context.CancelFunc
	// drained is signalled when the transport has taken everything
	// written to it (see watchTransport).
	drained chan struct{}
	// dropReason is set once when the Hub disconnects the socket itself.
	dropReason atomic.Pointer[string]
	// gone is set once the Hub has forgotten the socket.
	gone atomic.Bool

	// mu guards rooms, closed and expiry. Lock order: conn.mu before
	// Hub.mu.
	mu     sync.Mutex
	rooms  map[domain.Room]*roomState
	closed bool
	// expiry closes the connection when the token expires (nil if it
	// does not); onDisconnect stops it.
	expiry *time.Timer

	// pmu serialises presence work for the socket; online says whether
	// its presence session is registered.
	pmu    sync.Mutex
	online bool

	// Connection state recovery (see recovery.go). pid is the socket's
	// private session id ("" without a SessionStore).
	pid string
	// maxPos is the highest log position queued for the socket with an
	// offset; guarded by mu. A room joined later starts after it, so the
	// socket's offsets only ever grow.
	maxPos domain.Position
	// recovering is true while a recovered socket replays what it missed;
	// live events then wait in held (at most Hub.pendingMax, else
	// heldOverflow and the replay reads them from the log). Guarded by mu.
	recovering   bool
	held         []pendingFrame
	heldOverflow bool
	// hw is the last offset written to the client; only the writer uses
	// it (one writer goroutine at a time, ordered by the outbox's lock).
	hw domain.Position
	// smu serialises session writes; sessionGone stops them after an
	// explicit disconnect deleted the session.
	smu         sync.Mutex
	sessionGone bool
}

// roomState is one room of one socket.
type roomState struct {
	// from is the log position the socket joined the room at: live
	// events at or before it are not the socket's (they committed before
	// the join) and recovery does not replay them either.
	from domain.Position
	// lastSeq is the last seq delivered (live or replayed); live events
	// at or below it are duplicates and skipped.
	lastSeq int64
	// catchingUp is true while subscribe replays the room; live events
	// then wait in pending and are handed over after the replay.
	catchingUp bool
	pending    []pendingFrame
	// overflowed says live events were dropped from pending; the replay
	// must read the log again before it hands over.
	overflowed bool
}

type pendingFrame struct {
	seq int64
	pos domain.Position
	f   *frame
}

func newConn(h *Hub, s *socket.Socket, p domain.Principal) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	return &conn{
		h:       h,
		sock:    s,
		id:      string(s.Id()),
		p:       p,
		out:     newOutbox(h.cfg.OutboundQueue, h.cfg.OutboundBytes),
		ctx:     ctx,
		cancel:  cancel,
		drained: make(chan struct{}, 1),
		rooms:   map[domain.Room]*roomState{},
	}
}

// expireAt ends the connection when the token expires at at: a transport
// close, so the client reconnects, re-authenticates with a fresh token and
// recovers its session.
func (c *conn) expireAt(at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.expiry = time.AfterFunc(at.Sub(c.h.now()), func() {
		c.h.logger.Info("token expired; closing socket", "socket", c.id, "user", c.p.UserID)
		c.sock.Conn().Close(true)
	})
}

// deliver queues a logged event of room for the socket, unless the socket
// already has it or is replaying the room.
func (c *conn) deliver(room domain.Room, seq int64, pos domain.Position, f *frame) {
	c.mu.Lock()
	st := c.rooms[room]
	if st == nil || c.closed || !st.from.Less(pos) {
		c.mu.Unlock()
		return
	}
	if c.recovering {
		c.hold(&c.held, &c.heldOverflow, pendingFrame{seq: seq, pos: pos, f: f})
		c.mu.Unlock()
		return
	}
	if st.catchingUp {
		c.hold(&st.pending, &st.overflowed, pendingFrame{seq: seq, pos: pos, f: f})
		c.mu.Unlock()
		return
	}
	if seq <= st.lastSeq {
		c.mu.Unlock()
		return
	}
	st.lastSeq = seq
	if c.maxPos.Less(pos) {
		c.maxPos = pos
	}
	ok := c.out.push(item{f: f})
	c.mu.Unlock()
	if !ok {
		c.drop("outbound queue overflow")
	}
}

// hold keeps p in *held while a replay (a recovery's or a subscribe's)
// runs, at most Hub.pendingMax frames. Past that, too much live traffic
// arrives to hold: *held is forgotten and *overflowed set, and the replay
// reads those events from the log instead. c.mu must be held.
func (c *conn) hold(held *[]pendingFrame, overflowed *bool, p pendingFrame) {
	switch {
	case *overflowed:
		// The replay reads it from the log.
	case len(*held) >= c.h.pendingMax:
		*held, *overflowed = nil, true
		c.h.stats.rereads.Add(1)
	default:
		*held = append(*held, p)
	}
}

// pushVolatile queues a volatile frame; if the queue is full the frame is
// dropped, which volatile events allow.
func (c *conn) pushVolatile(f *frame) {
	_ = c.out.push(item{f: f})
}

// drop disconnects a socket that cannot keep up. The client sees its
// transport close and reconnects; events it missed are in the log.
func (c *conn) drop(reason string) {
	r := "slow client: " + reason
	if !c.dropReason.CompareAndSwap(nil, &r) {
		return
	}
	c.h.stats.slow.Add(1)
	c.h.logger.Warn("disconnecting slow socket", "socket", c.id, "user", c.p.UserID, "reason", r)
	// Closing the Engine.IO socket with a reason closes the network
	// connection at once, which also unblocks a write stuck on a client
	// that stopped reading. Nothing here waits on that client.
	if closer, ok := c.sock.Conn().(interface{ OnClose(string, ...error) }); ok {
		closer.OnClose(r)
		return
	}
	c.sock.Conn().Close(true)
}

// startWriter lets the outbox start a writer loop on the Hub's writer
// pool whenever it gets work (see outbox): an idle socket has none. A
// connection that opened on WebSocket keeps its rawWebSocket for life and
// writes through it (writeRawLoop), with no drain to watch; the others go
// through the engine (writeLoop).
func (c *conn) startWriter() {
	loop := c.writeLoop
	if raw, ok := c.sock.Conn().Transport().(*rawWebSocket); ok {
		loop = func() { c.writeRawLoop(raw) }
	} else {
		c.watchTransport()
	}
	c.out.setWriter(func() {
		if !c.h.writers.run(loop) {
			c.sock.Conn().Close(true) // the Hub is stopping; the client reconnects elsewhere
		}
	})
}

// watchTransport signals c.drained whenever the current transport reports
// "ready" and is still writable after the engine flushed its buffer: then
// everything written before has left the process (WebSocket) or was
// fetched by the client's next poll (polling). It follows upgrades.
func (c *conn) watchTransport() {
	eng := c.sock.Conn()
	// Clients upgrade polling to WebSocket, never a WebSocket (the
	// library would let a client that forged an upgrade of its own
	// WebSocket session do it; its writes then time out and it is
	// dropped), so only polling needs the listener. It goes first so that
	// an upgrade racing this call cannot leave the old transport watched
	// alone.
	if eng.Transport().Name() != transports.WEBSOCKET {
		_ = eng.On("upgrade", func(args ...any) {
			if t, ok := args[0].(transports.Transport); ok {
				c.watch(t)
			}
			signal(c.drained)
		})
	}
	c.watch(eng.Transport())
}

func (c *conn) watch(t transports.Transport) {
	// Listeners run in registration order, so the engine's own "ready"
	// listener (which flushes its buffer) has run when this one checks,
	// and before it a polling guard's, which answers the poll with what
	// it queued (polling.go): a poll that took data is not writable.
	_ = t.On("ready", func(...any) {
		if t.Writable() {
			signal(c.drained)
		}
	})
}

// writeLoop writes the outbox to the Engine.IO socket (polling, or a
// WebSocket upgraded from it) batch by batch and,
// after each batch, waits until the transport has taken it. A client that
// stops reading therefore leaves frames in the bounded outbox, not in the
// engine's unbounded buffer, and is dropped when the outbox overflows or
// the transport stays busy for WriteTimeout. It returns when the outbox is
// empty (the next push starts it again) or the socket is done.
func (c *conn) writeLoop() {
	for {
		items := c.out.takeOrStop()
		if items == nil {
			return
		}
		select {
		case <-c.drained:
		default:
		}
		for _, it := range items {
			if it.f != nil {
				c.write(it.f)
			} else {
				it.fn()
			}
		}
		if !c.awaitDrain() {
			return
		}
	}
}

func (c *conn) awaitDrain() bool {
	t := time.NewTimer(c.h.cfg.WriteTimeout)
	defer t.Stop()
	select {
	case <-c.drained:
		return true
	case <-c.ctx.Done():
		return false
	case <-t.C:
		c.dropStalled()
		return false
	}
}

// dropStalled drops a socket whose client stopped taking data.
func (c *conn) dropStalled() {
	c.drop(fmt.Sprintf("the client did not accept data for %s", c.h.cfg.WriteTimeout))
}

// writeRawLoop is writeLoop for a rawWebSocket.
func (c *conn) writeRawLoop(raw *rawWebSocket) {
	for {
		items := c.out.takeOrStop()
		if items == nil || !c.writeRaw(raw, items) {
			return
		}
	}
}

// write hands one frame to the Engine.IO socket. The frame's bytes are
// shared by every socket; only the small reader around them is per socket.
// No prepared WebSocket frame goes with it: the library would build a
// gorilla PreparedMessage per socket and per frame (a throwaway connection
// with 8 KiB of buffers each time, about a sixth of the fan-out's CPU in
// a profile), where a plain write goes through the connection's own
// buffer.
//
// A frame with an offset whose position is not beyond the last offset the
// client got (a subscribe hand-off after later events of another room) is
// written without it, so the client's offset never moves backwards: an
// offset that went back would make the next recovery repeat events.
func (c *conn) write(f *frame) {
	if f = c.outgoing(f); f != nil {
		c.sock.Conn().Write(types.NewStringBuffer(f.text), nil, nil)
		c.h.stats.written.Add(1)
	}
}

// outgoing returns the frame to write for f: f itself, its plain form,
// or nil to write nothing (see write).
func (c *conn) outgoing(f *frame) *frame {
	if f.offset {
		if c.hw.Less(f.pos) {
			c.hw = f.pos
		} else {
			return f.plain
		}
	}
	return f
}

// writeRaw writes items to a connection that opened on WebSocket (see
// wsraw.go): the frames between two functions in one go, each function
// after the frames before it. The write returns once the kernel has the
// frames, so there is no drain to wait for; a client that takes nothing
// for WriteTimeout is dropped. It reports whether the socket can go on.
func (c *conn) writeRaw(raw *rawWebSocket, items []item) bool {
	tp := rawTexts.Get().(*[][]byte)
	texts := (*tp)[:0]
	defer func() {
		clear(texts) // flush did, unless a panic cut it short: pin no frame
		if cap(texts) <= maxPooledTexts {
			*tp = texts[:0]
			rawTexts.Put(tp)
		}
	}()
	flush := func() bool {
		if len(texts) == 0 {
			return true
		}
		err := raw.writeFrames(texts)
		if err == nil {
			c.h.stats.written.Add(uint64(len(texts)))
		}
		clear(texts)
		texts = texts[:0]
		return raw.closeAfter(err, c.dropStalled)
	}
	for _, it := range items {
		if it.f == nil {
			if !flush() {
				return false
			}
			it.fn()
			continue
		}
		if f := c.outgoing(it.f); f != nil {
			texts = append(texts, f.text)
		}
	}
	return flush() && c.ctx.Err() == nil
}

// rawTexts recycles writeRaw's lists of frame texts from one burst to the
// next, whichever socket writes it; maxPooledTexts (a full outbox at the
// default OutboundQueue) keeps a long replay's list from being kept.
var rawTexts = sync.Pool{New: func() any { return new([][]byte) }}

const maxPooledTexts = 1024

// addRooms puts the socket in rooms (which must be authorised) for live
// delivery. It reports an error if that would exceed MaxRoomsPerSocket.
func (c *conn) addRooms(rooms ...domain.Room) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	var added []domain.Room
	for _, r := range rooms {
		if c.rooms[r] == nil {
			added = append(added, r)
		}
	}
	if len(c.rooms)+len(added) > c.h.cfg.MaxRoomsPerSocket {
		c.mu.Unlock()
		return domain.Errorf(domain.CodeInvalid, "a socket may be in at most %d rooms", c.h.cfg.MaxRoomsPerSocket)
	}
	c.h.mu.Lock()
	// Live events after h.pos reach the socket from now on; a room never
	// starts before what the socket already got (maxPos), which a
	// recovery may have read ahead of this node's fan-out.
	from := later(c.h.pos, c.maxPos)
	for _, r := range added {
		c.rooms[r] = &roomState{from: from}
		c.h.indexLocked(r, c)
	}
	c.h.mu.Unlock()
	c.mu.Unlock()
	return nil
}

// removeRooms takes the socket out of rooms.
func (c *conn) removeRooms(rooms ...domain.Room) {
	c.mu.Lock()
	c.h.mu.Lock()
	for _, r := range rooms {
		if c.rooms[r] != nil {
			delete(c.rooms, r)
			c.h.unindexLocked(r, c)
		}
	}
	c.h.mu.Unlock()
	c.mu.Unlock()
}

// roomNames returns the socket's rooms (nil once it disconnected).
func (c *conn) roomNames() []domain.Room {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]domain.Room, 0, len(c.rooms))
	for r := range c.rooms {
		out = append(out, r)
	}
	return out
}

// inRoom reports whether the socket is in room.
func (c *conn) inRoom(room domain.Room) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rooms[room] != nil
}

// goOnline registers the socket's presence session (user-online).
func (c *conn) goOnline(ctx context.Context) error {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	if c.online {
		return nil
	}
	if c.ctx.Err() != nil || c.h.stopping.Load() {
		return domain.Errorf(domain.CodeUnavailable, "socket is closing")
	}
	if c.h.presence == nil {
		c.online = true
		return nil
	}
	// Not cancelled by a disconnect: a registration that commits must be
	// recorded in c.online so that goOffline removes it.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.h.cfg.OpTimeout)
	defer cancel()
	became, err := c.h.presence.PresenceConnect(pctx, eventstore.PresenceSession{Node: c.h.node, SocketID: c.id, UserID: c.p.UserID}, c.h.now())
	if err != nil {
		return fmt.Errorf("presence connect: %w", err)
	}
	c.online = true
	if became {
		c.h.logger.Debug("user online", "user", c.p.UserID, "socket", c.id)
	}
	return nil
}

// goOffline removes the socket's presence session after it disconnected.
// A failure is logged; the node's next heartbeat reconciles it.
func (c *conn) goOffline(at time.Time) {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	if !c.online {
		return
	}
	c.online = false
	ctx, cancel := context.WithTimeout(context.Background(), c.h.cfg.OpTimeout)
	defer cancel()
	went, err := c.h.presence.PresenceDisconnect(ctx, c.h.node, c.id, at)
	if err != nil {
		c.h.logger.Error("presence disconnect failed; the next heartbeat retries", "socket", c.id, "user", c.p.UserID, "error", err)
		return
	}
	if went {
		c.h.logger.Debug("user offline", "user", c.p.UserID, "socket", c.id)
	}
}

// reregister registers an online socket's session again after the node
// was swept as dead.
func (c *conn) reregister(ctx context.Context) {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	if !c.online || c.ctx.Err() != nil {
		return
	}
	if _, err := c.h.presence.PresenceConnect(ctx, eventstore.PresenceSession{Node: c.h.node, SocketID: c.id, UserID: c.p.UserID}, c.h.now()); err != nil {
		c.h.logger.Error("presence re-register failed", "socket", c.id, "error", err)
	}
}
