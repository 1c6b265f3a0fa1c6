package socketio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/roomlog/roomlog/domain"
)

// The client → server events of the spec, plus subscribe/unsubscribe.
// Their names are the wire names the frontend emits; never rename one.
const (
	EventJoinUserRoom     = "join-user-room"
	EventJoinRequestRoom  = "join-request-room"
	EventLeaveRequestRoom = "leave-request-room"
	EventJoinSellerRoom   = "join-seller-room"
	EventLeaveSellerRoom  = "leave-seller-room"
	EventJoinBuyerRoom    = "join-buyer-room"
	EventLeaveBuyerRoom   = "leave-buyer-room"
	EventJoinChatRoom     = "join-chat-room"
	EventLeaveChatRoom    = "leave-chat-room"
	EventUserOnline       = "user-online"
	EventTypingStart      = "typing-start"
	EventTypingStop       = "typing-stop"
	EventSubscribe        = "subscribe"
	EventUnsubscribe      = "unsubscribe"
)

// MaxUserNameLen bounds the userName of a typing indicator, in characters.
const MaxUserNameLen = 200

// handler handles one client event of socket c; args exclude the ack
// callback.
type handler func(c *conn, ctx context.Context, args []any) error

// clientEvent handles one client event of socket c; raw are its arguments,
// the ack callback, if any, last.
type clientEvent func(c *conn, event string, raw []any)

// clientEvents are the handlers of the client events, shared by every
// socket: a socket holds one middleware that looks its events up here, not
// one library listener per event (see registerHandlers).
var clientEvents = map[string]clientEvent{
	EventJoinUserRoom:     answered(joinByID(domain.UserRoom)),
	EventJoinRequestRoom:  answered(joinByID(domain.RequestRoom)),
	EventLeaveRequestRoom: answered(leaveByID(domain.RequestRoom)),
	EventJoinSellerRoom:   answered(joinByID(domain.SellerRoom, domain.RoomSellers)),
	EventLeaveSellerRoom:  answered(leaveByID(domain.SellerRoom, domain.RoomSellers)),
	EventJoinBuyerRoom:    answered(joinByID(domain.BuyerRoom, domain.RoomBuyers)),
	EventLeaveBuyerRoom:   answered(leaveByID(domain.BuyerRoom, domain.RoomBuyers)),
	EventJoinChatRoom:     answered(joinByID(domain.ChatRoom)),
	EventLeaveChatRoom:    answered(leaveByID(domain.ChatRoom)),
	EventUserOnline:       answered((*conn).userOnline),
	EventTypingStart:      answered(typing(true)),
	EventTypingStop:       answered(typing(false)),
	EventUnsubscribe:      answered((*conn).unsubscribe),
	EventSubscribe:        func(c *conn, _ string, raw []any) { c.onSubscribe(raw...) },
}

// registerHandlers installs the socket's one event middleware: the rate
// limit, then the handler of the event from clientEvents. The library runs
// middlewares one packet at a time, in arrival order, on the socket's task
// queue, where it would also have run a listener registered with On, so the
// handlers run there too, without the per-socket listener table that 14
// On calls would cost every idle socket. An event without a handler goes
// on to the library, which has no listener for it either.
func (c *conn) registerHandlers() {
	limit := c.rateLimit()
	c.sock.Use(func(event []any, next func(error)) {
		limit(event, func(err error) {
			if err != nil {
				next(err)
				return
			}
			name, _ := event[0].(string) // the limiter refused anything else
			h, ok := clientEvents[name]
			if !ok {
				next(nil)
				return
			}
			if !c.sock.Connected() {
				return // as the library ignores a packet after the disconnect
			}
			h(c, name, event[1:])
		})
	})
}

// answered adapts fn to a clientEvent that runs it with Config.OpTimeout
// and answers the optional ack with its result.
func answered(fn handler) clientEvent {
	return func(c *conn, event string, raw []any) {
		args, ack := splitAck(raw)
		ctx, cancel := context.WithTimeout(c.ctx, c.h.cfg.OpTimeout)
		defer cancel()
		err := fn(c, ctx, args)
		c.logFailure(ctx, event, err)
		if ack != nil {
			ack([]any{ackResponse(err)}, nil)
		}
	}
}

// splitAck separates a trailing ack callback from an event's arguments.
func splitAck(args []any) ([]any, socket.Ack) {
	if n := len(args); n > 0 {
		if ack, ok := args[n-1].(socket.Ack); ok {
			return args[:n-1], ack
		}
	}
	return args, nil
}

// ackResponse is {ok: true} or {ok: false, error: {code, message}}. The
// message of an internal error is never shown to the client.
func ackResponse(err error) map[string]any {
	if err == nil {
		return map[string]any{"ok": true}
	}
	code := domain.ErrorCode(err)
	msg := "internal error"
	var de *domain.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		code, msg = domain.CodeUnavailable, "timed out; retry"
	case errors.Is(err, errOutboxClosed) || errors.Is(err, context.Canceled):
		code, msg = domain.CodeUnavailable, "socket is closing"
	case code != domain.CodeInternal && errors.As(err, &de):
		msg = de.Message
	default:
		code = domain.CodeInternal
	}
	return map[string]any{"ok": false, "error": map[string]any{"code": string(code), "message": msg}}
}

// logFailure logs a client event that failed for a reason worth a line:
// refusals are logged where they are decided, invalid input not at all.
func (c *conn) logFailure(ctx context.Context, event string, err error) {
	switch domain.ErrorCode(err) {
	case domain.CodeInvalid, domain.CodeForbidden:
		return
	}
	if err == nil || errors.Is(err, errOutboxClosed) || errors.Is(err, context.Canceled) {
		return
	}
	c.h.logger.ErrorContext(ctx, "client event failed", "event", event, "socket", c.id, "user", c.p.UserID, "error", err)
}

// joinByID handles join-*-room(id): the room mk(id), plus any fixed rooms
// (sellers, buyers), all or nothing.
func joinByID(mk func(string) (domain.Room, error), also ...domain.Room) handler {
	return func(c *conn, ctx context.Context, args []any) error {
		rooms, err := roomsByID(args, mk, also)
		if err != nil {
			return err
		}
		return c.join(ctx, rooms...)
	}
}

// leaveByID handles leave-*-room(id).
func leaveByID(mk func(string) (domain.Room, error), also ...domain.Room) handler {
	return func(c *conn, ctx context.Context, args []any) error {
		rooms, err := roomsByID(args, mk, also)
		if err != nil {
			return err
		}
		c.removeRooms(rooms...)
		return c.persist(ctx)
	}
}

// roomsByID returns the rooms of a join- or leave-*-room(id) call: mk(id),
// then also.
func roomsByID(args []any, mk func(string) (domain.Room, error), also []domain.Room) ([]domain.Room, error) {
	id, err := idArg(args, 0)
	if err != nil {
		return nil, err
	}
	room, err := mk(id)
	if err != nil {
		return nil, err
	}
	return append([]domain.Room{room}, also...), nil
}

// join authorises every room and then joins them all.
func (c *conn) join(ctx context.Context, rooms ...domain.Room) error {
	for _, r := range rooms {
		if err := c.authorize(ctx, r); err != nil {
			return err
		}
	}
	if err := c.addRooms(rooms...); err != nil {
		return err
	}
	return c.persist(ctx)
}

// authorize applies domain.CanJoin, reading membership for shared rooms.
// A refusal is logged with the room; the client only learns "not allowed",
// the same for a room that does not exist as for one it may not join.
func (c *conn) authorize(ctx context.Context, r domain.Room) error {
	member := false
	if domain.NeedsMembership(r) && !c.p.IsAdmin() {
		m, err := c.h.membership.IsMember(ctx, r, c.p.UserID)
		if err != nil {
			return fmt.Errorf("membership of %s: %w", r, err)
		}
		member = m
	}
	if err := domain.CanJoin(c.p, r, member); err != nil {
		c.h.stats.denied.Add(1)
		c.h.logger.WarnContext(ctx, "join denied", "socket", c.id, "user", c.p.UserID, "room", r)
		return err
	}
	return nil
}

// userOnline handles user-online(userId): only for the token's own user,
// it joins user-<userId> and registers the socket's presence session.
func (c *conn) userOnline(ctx context.Context, args []any) error {
	id, err := idArg(args, 0)
	if err != nil {
		return err
	}
	if id != c.p.UserID {
		c.h.stats.denied.Add(1)
		c.h.logger.WarnContext(ctx, "user-online for another user denied", "socket", c.id, "user", c.p.UserID, "claimed", id)
		return refusal()
	}
	room, err := domain.UserRoom(id)
	if err != nil {
		return err
	}
	if err := c.join(ctx, room); err != nil {
		return err
	}
	return c.goOnline(ctx)
}

// typing handles typing-start({chatId, userId, userName}) and
// typing-stop({chatId, userId}): only for the sender's own user id and a
// chat it belongs to, user-typing goes to the rest of the chat room,
// volatile and never logged.
func typing(start bool) handler {
	return func(c *conn, ctx context.Context, args []any) error {
		obj, err := objectArg(args, 0)
		if err != nil {
			return err
		}
		chatID, err := idField(obj, "chatId")
		if err != nil {
			return err
		}
		userID, err := idField(obj, "userId")
		if err != nil {
			return err
		}
		room, err := domain.ChatRoom(chatID)
		if err != nil {
			return err
		}
		if userID != c.p.UserID {
			c.h.stats.denied.Add(1)
			c.h.logger.WarnContext(ctx, "typing as another user denied", "socket", c.id, "user", c.p.UserID, "claimed", userID)
			return refusal()
		}
		// Being in the room proves a membership check passed at join time
		// (revocations take sockets out of the room); admins join without
		// membership, so they are checked here.
		member := c.inRoom(room) && !c.p.IsAdmin()
		if !member {
			if member, err = c.h.membership.IsMember(ctx, room, c.p.UserID); err != nil {
				return fmt.Errorf("membership of %s: %w", room, err)
			}
		}
		if err := domain.CanType(c.p, room, member); err != nil {
			c.h.stats.denied.Add(1)
			c.h.logger.WarnContext(ctx, "typing denied", "socket", c.id, "user", c.p.UserID, "room", room)
			return err
		}
		ev := domain.UserTyping{UserID: userID, IsTyping: start}
		if start {
			if name, ok := obj["userName"]; ok && name != nil {
				s, isStr := name.(string)
				if !isStr || utf8.RuneCountInString(s) > MaxUserNameLen {
					return invalidArg(fmt.Sprintf("userName must be a string of at most %d characters", MaxUserNameLen))
				}
				ev.UserName = s
			}
		}
		payload, err := json.Marshal(ev)
		if err != nil {
			return fmt.Errorf("encode user-typing: %w", err)
		}
		c.h.broadcastVolatile(ctx, room, domain.EventUserTyping, payload, c)
		return nil
	}
}

// unsubscribe handles unsubscribe({room}).
func (c *conn) unsubscribe(ctx context.Context, args []any) error {
	obj, err := objectArg(args, 0)
	if err != nil {
		return err
	}
	room, err := roomField(obj)
	if err != nil {
		return err
	}
	c.removeRooms(room)
	return c.persist(ctx)
}

// onSubscribe handles subscribe({room, after?}) for any room the socket may
// join. Without after it joins live. With after it replays the room's
// events after that seq through the socket's queue and then continues
// live, with no gap and no duplicate at the hand-off; the ack follows the
// replayed events.
func (c *conn) onSubscribe(raw ...any) {
	args, ack := splitAck(raw)
	reply := func(err error) {
		c.logFailure(c.ctx, EventSubscribe, err)
		if ack != nil {
			ack([]any{ackResponse(err)}, nil)
		}
	}
	obj, err := objectArg(args, 0)
	if err != nil {
		reply(err)
		return
	}
	room, err := roomField(obj)
	if err != nil {
		reply(err)
		return
	}
	after, err := afterField(obj)
	if err != nil {
		reply(err)
		return
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.h.cfg.OpTimeout)
	err = c.authorize(ctx, room)
	cancel()
	if err != nil {
		reply(err)
		return
	}
	if after < 0 {
		if err = c.addRooms(room); err == nil {
			err = c.persistNow()
		}
		reply(err)
		return
	}
	c.h.stats.replays.Add(1)
	if err := c.replay(room, after); err != nil {
		reply(err)
		return
	}
	if err := c.persistNow(); err != nil {
		reply(err)
		return
	}
	if ack != nil && !c.out.push(item{fn: func() { ack([]any{ackResponse(nil)}, nil) }}) {
		c.drop("outbound queue overflow")
	}
}

// replay sends room's events after `after` through the outbox, then hands
// over to live delivery. Live events that arrive meanwhile wait in the
// room's pending list; the hand-off drops those already replayed. No live
// event can fall between the two: the socket is indexed in the room before
// the first read, so an event the reads miss (it committed after them) is
// emitted after the socket was indexed and lands in pending. If too many
// arrive, pending is given up and the replay reads the log again.
func (c *conn) replay(room domain.Room, after int64) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errOutboxClosed
	}
	st := c.rooms[room]
	fresh := st == nil
	if fresh && len(c.rooms) >= c.h.cfg.MaxRoomsPerSocket {
		c.mu.Unlock()
		return domain.Errorf(domain.CodeInvalid, "a socket may be in at most %d rooms", c.h.cfg.MaxRoomsPerSocket)
	}
	if fresh {
		c.h.mu.Lock()
		st = &roomState{from: later(c.h.pos, c.maxPos)}
		c.rooms[room] = st
		c.h.indexLocked(room, c)
		c.h.mu.Unlock()
	}
	prevLast := st.lastSeq
	st.catchingUp, st.lastSeq, st.pending, st.overflowed = true, after, nil, false
	c.mu.Unlock()

	cursor := after
	for first := true; ; first = false {
		rctx, cancel := context.WithTimeout(c.ctx, c.h.cfg.OpTimeout)
		page, err := c.h.rooms.ReadRoom(rctx, room, cursor, c.h.cfg.ReplayPageSize)
		cancel()
		if err == nil && first && after > page.Head {
			err = domain.Errorf(domain.CodeInvalid, "after %d is beyond the room's last event", after)
		}
		if err != nil {
			c.abortReplay(room, st, fresh, prevLast)
			return fmt.Errorf("replay %s: %w", room, err)
		}
		for _, d := range page.Events {
			f, err := encodeHistory(d)
			if err != nil {
				c.abortReplay(room, st, fresh, prevLast)
				return fmt.Errorf("replay %s: %w", room, err)
			}
			if err := c.out.pushWait(c.ctx, item{f: f}); err != nil {
				c.abortReplay(room, st, fresh, prevLast)
				return err
			}
			cursor = d.Seq
		}
		if page.More {
			continue
		}
		// Hand over: queue what live delivery held meanwhile, with the
		// same back-pressure as the replay, until nothing is held; then
		// switch to live under the lock, so nothing slips between.
		for {
			c.mu.Lock()
			if c.closed || c.rooms[room] != st {
				c.mu.Unlock()
				return nil // left or revoked meanwhile
			}
			if st.overflowed {
				break // live events were given up: read them from the log
			}
			if len(st.pending) == 0 {
				st.catchingUp, st.lastSeq = false, cursor
				c.mu.Unlock()
				return nil
			}
			held := st.pending
			st.pending = nil
			c.mu.Unlock()
			for _, p := range held {
				if p.seq <= cursor {
					continue // replayed already
				}
				if p.seq != cursor+1 {
					c.h.logger.Error("gap at replay hand-off", "socket", c.id, "room", room, "last", cursor, "next", p.seq)
				}
				if err := c.out.pushWait(c.ctx, item{f: p.f}); err != nil {
					return err
				}
				cursor = p.seq
			}
		}
		st.pending, st.overflowed = nil, false
		c.mu.Unlock()
	}
}

// handOffLocked queues the pending live events after last and switches the
// room to live delivery. It reports false if the outbox overflowed. c.mu
// must be held.
func (c *conn) handOffLocked(room domain.Room, st *roomState, last int64) bool {
	ok := true
	for _, p := range st.pending {
		if p.seq <= last {
			continue // replayed already
		}
		if p.seq != last+1 {
			c.h.logger.Error("gap at replay hand-off", "socket", c.id, "room", room, "last", last, "next", p.seq)
		}
		if !c.out.push(item{f: p.f}) {
			ok = false
			break
		}
		last = p.seq
	}
	st.pending, st.catchingUp, st.overflowed, st.lastSeq = nil, false, false, last
	return ok
}

// abortReplay returns room to its state before a failed subscribe: left if
// it was fresh, else live from prevLast.
func (c *conn) abortReplay(room domain.Room, st *roomState, fresh bool, prevLast int64) {
	c.mu.Lock()
	if c.closed || c.rooms[room] != st {
		c.mu.Unlock()
		return
	}
	if fresh {
		delete(c.rooms, room)
		c.h.mu.Lock()
		c.h.unindexLocked(room, c)
		c.h.mu.Unlock()
		c.mu.Unlock()
		return
	}
	if st.overflowed {
		// What was given up cannot be recovered here; the client asked
		// for a replay and gets an error, so it retries.
		prevLast = 0
	}
	ok := c.handOffLocked(room, st, prevLast)
	c.mu.Unlock()
	if !ok {
		c.drop("outbound queue overflow at replay hand-off")
	}
}

// broadcastVolatile sends a volatile event to room's sockets except from,
// on this node directly and on the others through the Volatile bus.
func (h *Hub) broadcastVolatile(ctx context.Context, room domain.Room, event string, payload json.RawMessage, from *conn) {
	f, err := encodeVolatile(event, room, payload)
	if err != nil {
		h.logger.ErrorContext(ctx, "encode volatile event", "event", event, "error", err)
		return
	}
	for _, c := range h.members(room) {
		if c != from {
			c.pushVolatile(f)
		}
	}
	if h.volatile == nil {
		return
	}
	msg, err := json.Marshal(volatileMsg{Node: h.node, Room: room, Event: event, Payload: payload, Except: from.id})
	if err == nil {
		err = h.volatile.PublishVolatile(ctx, msg)
	}
	if err != nil {
		// Typing indicators are best effort.
		h.logger.WarnContext(ctx, "publish volatile event to other nodes", "event", event, "error", err)
	}
}

// volatileMsg is a volatile broadcast between nodes.
type volatileMsg struct {
	Node    string          `json:"node"`
	Room    domain.Room     `json:"room"`
	Event   string          `json:"event"`
	Payload json.RawMessage `json:"payload"`
	Except  string          `json:"except,omitempty"`
}

// onVolatile delivers another node's volatile broadcast to local sockets.
func (h *Hub) onVolatile(raw []byte) {
	var m volatileMsg
	if err := json.Unmarshal(raw, &m); err != nil {
		h.logger.Warn("malformed volatile message", "error", err)
		return
	}
	if m.Node == h.node {
		return // delivered locally already
	}
	spec, ok := domain.Lookup(m.Event)
	if !ok || spec.Durable || m.Room.Kind() == "" || !spec.Allows(m.Room.Kind()) {
		h.logger.Warn("volatile message for a non-volatile event or a bad room; dropped", "event", m.Event, "room", m.Room)
		return
	}
	f, err := encodeVolatile(m.Event, m.Room, m.Payload)
	if err != nil {
		h.logger.Warn("malformed volatile payload", "error", err)
		return
	}
	for _, c := range h.members(m.Room) {
		if c.id != m.Except {
			c.pushVolatile(f)
		}
	}
}

// Argument decoding: the library hands over JSON-decoded values (strings,
// float64 numbers, map[string]any, ...).

// refusal is domain's uniform "not allowed" error, for refusals that the
// policy functions do not decide themselves (acting as another user).
func refusal() error { return domain.CanJoin(domain.Principal{}, "", false) }

func invalidArg(msg string) error { return domain.Errorf(domain.CodeInvalid, "%s", msg) }

// idArg returns args[i] as an id: a string, or an integral number (the
// frontend may send numeric ids), validated by the room constructors.
func idArg(args []any, i int) (string, error) {
	if i >= len(args) {
		return "", invalidArg("missing id argument")
	}
	id, ok := idValue(args[i])
	if !ok {
		return "", invalidArg("the id argument must be a string or an integer")
	}
	return id, nil
}

func idValue(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return strconv.FormatInt(int64(x), 10), true
		}
	}
	return "", false
}

func objectArg(args []any, i int) (map[string]any, error) {
	if i >= len(args) {
		return nil, invalidArg("missing object argument")
	}
	m, ok := args[i].(map[string]any)
	if !ok {
		return nil, invalidArg("the argument must be an object")
	}
	return m, nil
}

func idField(obj map[string]any, key string) (string, error) {
	id, ok := idValue(obj[key])
	if !ok {
		return "", invalidArg(key + " must be a string or an integer")
	}
	if err := domain.ValidID(id); err != nil {
		return "", invalidArg(key + ": " + err.(*domain.Error).Message)
	}
	return id, nil
}

func roomField(obj map[string]any) (domain.Room, error) {
	s, ok := obj["room"].(string)
	if !ok {
		return "", invalidArg("room must be a string")
	}
	return domain.ParseRoom(s)
}

// afterField returns obj.after, or -1 if it is absent or null.
func afterField(obj map[string]any) (int64, error) {
	v, ok := obj["after"]
	if !ok || v == nil {
		return -1, nil
	}
	f, ok := v.(float64)
	if !ok || f != math.Trunc(f) || f < 0 || f >= 1<<53 {
		return 0, invalidArg("after must be a non-negative integer")
	}
	return int64(f), nil
}
