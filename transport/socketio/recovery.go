package socketio

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
)

// Durable connection state recovery.
//
// socket.io-client (v4.6+) keeps the private session id (pid) of its CONNECT
// reply and the last string argument of every event it received (the
// offset), and sends both in the auth of its next CONNECT. The Hub makes the
// offset the log Position ("txid:id") of each logged event and keeps the
// session in the database, so any server process can answer:
//
//   - Every logged event frame ends with its Position (encodeDelivery); a
//     new socket also gets a session-offset event at once, so it has an
//     offset before its first event. Offsets reaching a client only grow
//     (conn.write), so the offset is the client's high-water mark in the
//     log's global order.
//   - The session (pid, sid, user, rooms with the Position each was joined
//     at) is written when the socket connects and on every join and leave,
//     before the client's ack, and live sockets extend its expiry; so it is
//     current whatever way the process ends, SIGKILL included.
//   - On a CONNECT with pid and offset, RestoreSession loads the unexpired
//     session; the middleware authenticates the token again and refuses a
//     session of another user; onConnection re-checks every room
//     (domain.CanJoin and membership) and keeps only those still allowed.
//   - The socket then receives, before any live event, every event of its
//     rooms with a Position after both the offset and the room's join
//     Position, read in (txid, id) order below a writer horizon taken once
//     the socket is back in its rooms (see eventstore.ReadRecovery). Live
//     events for the socket wait meanwhile and are handed over with those
//     at or before the last replayed Position dropped.
//
// Why nothing is lost or repeated: the client received every frame up to
// the one carrying its offset O and, the stream being in global order,
// nothing after it. Live events reach a socket in the fan-out's (txid, id)
// order, only after the room's join Position, so every event the socket was
// owed and did not get is after O and after the join Position, and the
// replay reads exactly those. Each pass of the replay reads only rows below
// one writer horizon H (eventstore/horizon.go), taken after the socket is
// back in its rooms: that set never gains a member later, and an event at
// or above H reaches the fan-out only after the socket rejoined its rooms
// (horizons only grow, and the tail emits only what lies below a horizon
// it took), so it is held for the socket and handed over; the hand-off
// drops what the replay already sent. Anything the log cannot vouch for
// (no session, expired, malformed offset, another user, a database error)
// gives recovered=false, and the client follows the spec's reconnect
// policy; never a partial recovery.

// SessionStore keeps recovery sessions and reads what a session missed.
// *eventstore.Store satisfies it. Every method is safe for concurrent use.
type SessionStore interface {
	// SaveSession writes s to expire ttl from now.
	SaveSession(ctx context.Context, s eventstore.SocketSession, ttl time.Duration) error
	// LoadSession returns the unexpired session pid, false if none.
	LoadSession(ctx context.Context, pid string) (eventstore.SocketSession, bool, error)
	// ExtendSessions pushes the unexpired sessions pids to expire ttl from
	// now, except those that already expire after now + ttl - stale.
	ExtendSessions(ctx context.Context, pids []string, ttl, stale time.Duration) error
	// DeleteSession removes session pid.
	DeleteSession(ctx context.Context, pid string) error
	// PruneSessions deletes up to limit expired sessions.
	PruneSessions(ctx context.Context, limit int) (int64, error)
	// WriterHorizon returns a writer horizon computed after the call
	// began: the events below it are final.
	WriterHorizon(ctx context.Context) (uint64, error)
	// ReadRecovery returns up to limit events of the given rooms, each
	// after its own Position, in (txid, id) order, below horizon, a value
	// WriterHorizon returned.
	ReadRecovery(ctx context.Context, after map[domain.Room]domain.Position, horizon uint64, limit int) ([]domain.Delivery, error)
	// TailStart returns a Position before every event that commits from
	// now on.
	TailStart(ctx context.Context) (domain.Position, error)
}

// restored is what RestoreSession found, carried to onConnection.
type restored struct {
	sess   eventstore.SocketSession
	offset domain.Position
}

// later returns the later of a and b.
func later(a, b domain.Position) domain.Position {
	if a.Less(b) {
		return b
	}
	return a
}

// privateSessionID returns the socket's private session id. The library
// keeps it unexported (Socket.pid, sent in the CONNECT reply); it is read
// by reflection. If a library upgrade removes the field, this returns "",
// the Hub logs it at every connect and the recovery tests fail.
func privateSessionID(s *socket.Socket) string {
	f := reflect.ValueOf(s).Elem().FieldByName("pid")
	if !f.IsValid() || f.Kind() != reflect.String {
		return ""
	}
	return f.String()
}

// restoreSession implements the adapter's RestoreSession: it runs on the
// connection's read path, before the middlewares, for a CONNECT that
// carries pid and offset. A nil session (and no error) means "not
// recoverable": the library then creates a fresh socket.
func (h *Hub) restoreSession(pid socket.PrivateSessionId, offset string) (*socket.Session, error) {
	if h.sessions == nil || h.stopping.Load() {
		return nil, nil
	}
	pos, err := eventstore.ParsePosition(offset)
	if err != nil {
		h.stats.recoveryFailed.Add(1)
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.OpTimeout)
	defer cancel()
	sess, ok, err := h.sessions.LoadSession(ctx, string(pid))
	if err != nil {
		h.stats.recoveryFailed.Add(1)
		h.logger.Error("load recovery session; the client reconnects unrecovered", "error", err)
		return nil, nil
	}
	if !ok {
		h.stats.recoveryFailed.Add(1)
		return nil, nil
	}
	return &socket.Session{
		SessionToPersist: &socket.SessionToPersist{
			Sid:   socket.SocketId(sess.SID),
			Pid:   pid,
			Rooms: types.NewSet[socket.Room](), // the Hub joins them after its checks
			Data:  &restored{sess: sess, offset: pos},
		},
	}, nil
}

// sessionLoop extends the sessions of this node's live sockets, so that a
// process that dies leaves them a full window, and deletes expired ones.
func (h *Hub) sessionLoop(ctx context.Context) {
	every := min(h.cfg.HeartbeatInterval, h.cfg.RecoveryWindow/4)
	for sleepJittered(ctx, every) {
		h.mu.RLock()
		pids := make([]string, 0, len(h.conns))
		for _, c := range h.conns {
			if c.pid != "" {
				pids = append(pids, c.pid)
			}
		}
		h.mu.RUnlock()
		// With a long window a live session is rewritten once per 1% of
		// it, not at every period (a 24-hour window: every 14 minutes,
		// not every 5 seconds): a process that dies still leaves its
		// sessions 99% of the window. Short windows are rewritten at
		// every period.
		var stale time.Duration
		if w := h.cfg.RecoveryWindow / 100; w > every {
			stale = w
		}
		if err := h.sessions.ExtendSessions(ctx, pids, h.cfg.RecoveryWindow, stale); err != nil && ctx.Err() == nil {
			h.logger.ErrorContext(ctx, "extend recovery sessions", "error", err)
		}
		if _, err := h.sessions.PruneSessions(ctx, 1000); err != nil && ctx.Err() == nil {
			h.logger.ErrorContext(ctx, "prune recovery sessions", "error", err)
		}
	}
}

// session returns the socket's session as it stands.
func (c *conn) session() eventstore.SocketSession {
	c.mu.Lock()
	defer c.mu.Unlock()
	rooms := make(map[domain.Room]domain.Position, len(c.rooms))
	for r, st := range c.rooms {
		rooms[r] = st.from
	}
	return eventstore.SocketSession{PID: c.pid, SID: c.id, UserID: c.p.UserID, Node: c.h.node, Rooms: rooms}
}

// persist writes the socket's session. Joins and leaves call it before they
// answer, so what a client was told is recoverable after any crash.
func (c *conn) persist(ctx context.Context) error {
	if c.pid == "" {
		return nil
	}
	c.smu.Lock()
	defer c.smu.Unlock()
	if c.sessionGone {
		return nil
	}
	if err := c.h.sessions.SaveSession(ctx, c.session(), c.h.cfg.RecoveryWindow); err != nil {
		return fmt.Errorf("save recovery session: %w", err)
	}
	return nil
}

// persistNow is persist with its own OpTimeout.
func (c *conn) persistNow() error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), c.h.cfg.OpTimeout)
	defer cancel()
	return c.persist(ctx)
}

// startSession saves a new socket's session and gives the client its first
// offset.
func (c *conn) startSession() {
	if err := c.persistNow(); err != nil {
		// Not recoverable then; the client is not told otherwise.
		c.h.logger.Error("save recovery session", "socket", c.id, "error", err)
		return
	}
	c.mu.Lock()
	from := c.maxPos
	for _, st := range c.rooms {
		from = later(from, st.from)
	}
	c.mu.Unlock()
	if from.IsZero() {
		return // the Hub was not started: no tail position yet
	}
	_ = c.out.push(item{f: encodeOffset(from)})
}

// endSession updates the session after the socket disconnected: an
// explicit disconnect ends it; any other reason starts its window.
func (c *conn) endSession(reason string) {
	ctx, cancel := context.WithTimeout(context.Background(), c.h.cfg.OpTimeout)
	defer cancel()
	c.smu.Lock()
	defer c.smu.Unlock()
	if c.sessionGone {
		return
	}
	var err error
	switch reason {
	case "client namespace disconnect", "server namespace disconnect":
		c.sessionGone = true
		err = c.h.sessions.DeleteSession(ctx, c.pid)
	default:
		err = c.h.sessions.ExtendSessions(ctx, []string{c.pid}, c.h.cfg.RecoveryWindow, 0)
	}
	if err != nil {
		c.h.logger.Error("update recovery session after disconnect", "socket", c.id, "error", err)
	}
}

// restoreRooms puts a recovered socket back in its rooms, each from the
// Position it joined at, keeping only those the principal may still read.
// The socket is recovering: live events wait for recover.
func (c *conn) restoreRooms(r *restored) {
	ctx, cancel := context.WithTimeout(c.ctx, c.h.cfg.OpTimeout)
	defer cancel()
	rooms := map[domain.Room]domain.Position{domain.RoomGlobal: r.sess.Rooms[domain.RoomGlobal]}
	for room, from := range r.sess.Rooms {
		if room == domain.RoomGlobal {
			continue
		}
		if len(rooms) >= c.h.cfg.MaxRoomsPerSocket {
			break
		}
		if err := c.authorize(ctx, room); err != nil {
			c.logFailure(ctx, "recover", err)
			continue
		}
		rooms[room] = from
	}
	c.mu.Lock()
	c.h.mu.Lock()
	for room, from := range rooms {
		c.rooms[room] = &roomState{from: from}
		c.h.indexLocked(room, c)
	}
	c.h.mu.Unlock()
	c.mu.Unlock()
}

// recover queues, before any live event, every event of the socket's rooms
// after its offset, then hands over to live delivery with no gap and no
// duplicate. If the log cannot be read, the socket is closed at the
// transport: the client reconnects with the same pid and offset and tries
// again.
//
// Each pass reads below one writer horizon, page after page, and reads the
// next page while it encodes and queues the current one: a replay of
// thousands of events is bound by these reads.
func (c *conn) recover(r *restored) {
	c.h.stats.recovered.Add(1)
	if err := c.persistNow(); err != nil {
		c.failRecovery(err)
		return
	}
	c.mu.Lock()
	bounds := make(map[domain.Room]domain.Position, len(c.rooms))
	for room, st := range c.rooms {
		bounds[room] = later(st.from, r.offset)
	}
	c.mu.Unlock()
	last := r.offset
	n := 0
	for {
		ctx, cancel := context.WithTimeout(c.ctx, c.h.cfg.OpTimeout)
		horizon, err := c.h.sessions.WriterHorizon(ctx)
		cancel()
		if err != nil {
			c.failRecovery(err)
			return
		}
		next := c.readRecovery(bounds, horizon)
		for {
			res := <-next
			if res.err != nil {
				c.failRecovery(res.err)
				return
			}
			page := res.page
			for _, d := range page {
				last = later(last, d.Position)
			}
			for room, b := range bounds {
				bounds[room] = later(b, last)
			}
			more := len(page) >= c.h.cfg.ReplayPageSize
			if more {
				next = c.readRecovery(bounds, horizon)
			}
			for _, d := range page {
				f, err := encodeDelivery(d)
				if err != nil {
					c.h.logger.Error("cannot encode logged event; skipped", "room", d.Room, "seq", d.Seq, "error", err)
					continue
				}
				if err := c.out.pushWait(c.ctx, item{f: f}); err != nil {
					return // disconnected; a read under way ends with c.ctx
				}
				n++
			}
			if !more {
				break
			}
		}
		// Hand over what live delivery held meanwhile, dropping what the
		// replay sent, until nothing is held; then switch to live under
		// the lock, so nothing slips between.
		for {
			c.mu.Lock()
			if c.closed {
				c.mu.Unlock()
				return
			}
			if c.heldOverflow {
				c.held, c.heldOverflow = nil, false
				c.mu.Unlock()
				break // read the given-up events from the log
			}
			if len(c.held) == 0 {
				c.recovering = false
				c.maxPos = later(c.maxPos, last)
				for _, st := range c.rooms {
					// A lagging fan-out on this node may still emit what the
					// replay sent.
					st.from = later(st.from, last)
				}
				c.mu.Unlock()
				c.h.logger.Debug("session recovered", "socket", c.id, "user", c.p.UserID, "replayed", n)
				return
			}
			held := c.held
			c.held = nil
			c.mu.Unlock()
			for _, p := range held {
				if !last.Less(p.pos) {
					continue // replayed already
				}
				if err := c.out.pushWait(c.ctx, item{f: p.f}); err != nil {
					return
				}
				last = p.pos
				n++
			}
		}
		if c.ctx.Err() != nil {
			return
		}
		for room, b := range bounds {
			bounds[room] = later(b, last)
		}
	}
}

// recoveryPage is the outcome of one replay read.
type recoveryPage struct {
	page []domain.Delivery
	err  error
}

// readRecovery starts reading the page after bounds (copied: the caller
// goes on updating its map) below horizon, and returns where its outcome
// arrives. The read ends with the socket's context. Once the Hub stops
// taking background work, it reads before returning.
func (c *conn) readRecovery(bounds map[domain.Room]domain.Position, horizon uint64) <-chan recoveryPage {
	after := maps.Clone(bounds)
	out := make(chan recoveryPage, 1) // never blocks the reader
	read := func() {
		ctx, cancel := context.WithTimeout(c.ctx, c.h.cfg.OpTimeout)
		defer cancel()
		page, err := c.h.sessions.ReadRecovery(ctx, after, horizon, c.h.cfg.ReplayPageSize)
		out <- recoveryPage{page: page, err: err}
	}
	if !c.h.goBackground(read) {
		read()
	}
	return out
}

// failRecovery closes a socket whose recovery could not be completed.
func (c *conn) failRecovery(err error) {
	if errors.Is(err, context.Canceled) && c.ctx.Err() != nil {
		return
	}
	c.h.stats.recoveryFailed.Add(1)
	c.h.logger.Error("session recovery failed; closing the transport so the client retries", "socket", c.id, "user", c.p.UserID, "error", err)
	c.sock.Conn().Close(true)
}
