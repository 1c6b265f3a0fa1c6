package socketio

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gorilla "github.com/gorilla/websocket"
	"github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
)

// Authenticator turns a handshake into a principal. auth.Authenticator
// adapts transport/auth to it.
type Authenticator interface {
	// Authenticate identifies the client of r. authToken is the
	// handshake's auth.token ("" if absent). It returns an error (any
	// error) to refuse the handshake. It must be safe for concurrent use
	// and should not block on I/O: it runs on the connection's read path.
	Authenticate(r *http.Request, authToken string) (domain.Principal, error)
}

// Members answers the Hub's membership checks (joins, recovery).
// projector.MembershipView satisfies it, and so does *eventstore.Store
// (the membership model alone, which lags the log).
type Members interface {
	// IsMember reports whether userID is a member of the shared room.
	IsMember(ctx context.Context, room domain.Room, userID string) (bool, error)
}

// Rooms is what the Hub reads from the log. *eventstore.Store satisfies it.
type Rooms interface {
	// ReadRoom returns up to limit of room's events with seq > after, in
	// seq order, and the room's head, from one snapshot.
	ReadRoom(ctx context.Context, room domain.Room, after int64, limit int) (eventstore.Page, error)
}

// Presence is the presence model shared by every node. *eventstore.Store
// satisfies it. Every method is safe for concurrent use and announces
// transitions (user-status-change) through the log itself.
type Presence interface {
	// PresenceHeartbeat marks node alive; registered is true if the node
	// had no row (first heartbeat, or swept as dead meanwhile).
	PresenceHeartbeat(ctx context.Context, node string) (registered bool, err error)
	// PresenceConnect registers a session; online reports the user's
	// first session, announced online.
	PresenceConnect(ctx context.Context, s eventstore.PresenceSession, at time.Time) (online bool, err error)
	// PresenceDisconnect removes a session; offline reports the user's
	// last session, announced offline.
	PresenceDisconnect(ctx context.Context, node, socketID string, at time.Time) (offline bool, err error)
	// PresenceSweep removes the sessions of nodes silent for longer than
	// ttl and announces their users offline.
	PresenceSweep(ctx context.Context, ttl time.Duration) (int, error)
	// PresenceDropNode removes all of node's sessions and the node.
	PresenceDropNode(ctx context.Context, node string, at time.Time) (int, error)
	// PresenceSessions lists node's sessions.
	PresenceSessions(ctx context.Context, node string) ([]eventstore.PresenceSession, error)
}

// Volatile carries volatile broadcasts (typing indicators) between nodes
// without logging them. *eventstore.Store satisfies it.
type Volatile interface {
	// PublishVolatile sends msg to every listening node, this one
	// included.
	PublishVolatile(ctx context.Context, msg []byte) error
	// ListenVolatile calls fn with every message, from one goroutine,
	// until ctx ends; ready is called after each (re)connect.
	ListenVolatile(ctx context.Context, ready func(), fn func(msg []byte))
}

// HubParams are the dependencies of a Hub.
type HubParams struct {
	// Config tunes the Hub; see Config.
	Config Config
	// Auth authenticates handshakes. Required.
	Auth Authenticator
	// Rooms answers replays. Required.
	Rooms Rooms
	// Members answers membership checks. Optional: by default Rooms, if
	// it implements Members; one of them is required.
	Members Members
	// Presence tracks user-online sessions. Optional: without it,
	// user-online only joins the user's room and nobody is announced.
	Presence Presence
	// Volatile carries typing indicators to the other nodes. Optional:
	// without it they reach this node's sockets only.
	Volatile Volatile
	// Sessions keeps Socket.IO sessions for connection state recovery.
	// Optional: by default Rooms, if it implements SessionStore (as
	// *eventstore.Store does); without one, clients never recover.
	Sessions SessionStore
	// Logger receives the Hub's logs. Default: discard.
	Logger *slog.Logger
	// Now returns the current time. Default time.Now.
	Now func() time.Time
}

// Hub is roomlog's Socket.IO server: it authenticates handshakes, answers
// the client events of the spec, keeps each socket's rooms, pushes the
// log's events to local sockets (it is the projector's Emitter) and tracks
// presence. Create it with NewHub, serve Handler, then Start; Stop ends it.
type Hub struct {
	cfg   Config
	node  string
	auth  Authenticator
	rooms Rooms
	// membership answers membership checks (HubParams.Members).
	membership Members
	presence   Presence
	volatile   Volatile
	logger     *slog.Logger
	now        func() time.Time

	io  *socket.Server
	eio engine.Server
	// upgrader opens new WebSocket sessions (upgrade.go).
	upgrader *gorilla.Upgrader
	// poller reads the connections it opens, or is nil (wspoll.go).
	poller  *wsPoller
	handler http.Handler
	gates   sync.Map // engine connection id -> *gate

	mu    sync.RWMutex
	conns map[socket.SocketId]*conn
	index map[domain.Room]roomSockets
	// pos is the last log position Emit handled (or the tail position at
	// Start): sockets joining a room now receive its events after pos.
	pos domain.Position

	// sessions keeps recovery sessions; nil disables recovery.
	sessions SessionStore
	// restores holds, from the handshake to onConnection, what
	// RestoreSession found for a recovering socket (by socket id).
	restores sync.Map

	stopping atomic.Bool
	crashed  atomic.Bool // tests: Stop leaves presence to the sweepers
	noGate   atomic.Bool // tests: show the library's race without the gate
	// pendingMax bounds the live events a replaying socket holds per room
	// (Config.OutboundQueue; tests lower it).
	pendingMax int
	lifeMu     sync.Mutex
	started    bool
	stopped    bool
	cancel     context.CancelFunc
	loops      sync.WaitGroup // heartbeat, sweeper, volatile listener
	bgMu       sync.Mutex
	bgClosed   bool
	bg         sync.WaitGroup // per-socket writers and presence work
	writers    *writerPool
	stopDone   chan struct{}

	stats stats
}

// NewHub validates p and builds a Hub. It serves connections right away;
// Start adds presence heartbeats, the dead-node sweeper and cross-node
// volatile delivery.
func NewHub(p HubParams) (*Hub, error) {
	cfg := p.Config.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	switch {
	case p.Auth == nil:
		return nil, errors.New("socketio: HubParams.Auth is required")
	case p.Rooms == nil:
		return nil, errors.New("socketio: HubParams.Rooms is required")
	}
	membership := p.Members
	if membership == nil {
		var ok bool
		if membership, ok = p.Rooms.(Members); !ok {
			return nil, errors.New("socketio: HubParams.Members is required when Rooms does not check membership")
		}
	}
	logger := p.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	now := p.Now
	if now == nil {
		now = time.Now
	}
	h := &Hub{
		cfg:        cfg,
		node:       cfg.NodeID + "-" + randomSuffix(),
		auth:       p.Auth,
		rooms:      p.Rooms,
		membership: membership,
		presence:   p.Presence,
		volatile:   p.Volatile,
		now:        now,
		conns:      map[socket.SocketId]*conn{},
		index:      map[domain.Room]roomSockets{},
		stopDone:   make(chan struct{}),

		pendingMax: cfg.OutboundQueue,
	}
	h.writers = newWriterPool(h)
	h.logger = logger.With("subsystem", "socketio", "node", h.node)
	h.sessions = p.Sessions
	if h.sessions == nil {
		h.sessions, _ = p.Rooms.(SessionStore)
	}
	h.stats.disconnects = map[string]uint64{}

	opts := socket.DefaultServerOptions()
	opts.SetPath("/socket.io")
	opts.SetServeClient(false)
	opts.SetCors(&types.Cors{Origin: cfg.FrontendOrigin, Credentials: true})
	opts.SetAllowRequest(h.allowRequest)
	opts.SetMaxHttpBufferSize(int64(cfg.MaxPayloadBytes))
	opts.SetPingInterval(cfg.PingInterval)
	opts.SetPingTimeout(cfg.PingTimeout)
	opts.SetConnectTimeout(cfg.ConnectTimeout)
	opts.SetTransports(types.NewSet[transports.TransportCtor](&pollingBuilder{}, &wsBuilder{writeTimeout: cfg.WriteTimeout}))
	if h.sessions != nil {
		csr := &socket.ConnectionStateRecovery{}
		// Both set explicitly: the library only defaults them for its own
		// adapter. Middlewares run on recovery too, so a recovering
		// handshake is authenticated again.
		csr.SetMaxDisconnectionDuration(cfg.RecoveryWindow.Milliseconds())
		csr.SetSkipMiddlewares(false)
		opts.SetConnectionStateRecovery(csr)
	}
	opts.SetAdapter(adapterBuilder{h: h})
	h.io = socket.NewServer(nil, opts)
	h.eio = engine.NewServer(opts)
	h.upgrader = newUpgrader(h.eio.Opts())
	if !cfg.GoroutineReads && !h.upgrader.EnableCompression {
		h.poller = defaultPoller()
	}
	// Registered before Bind, so it runs before the Socket.IO client is
	// created for the connection: see gate.go and polling.go.
	_ = h.eio.On("connection", func(args ...any) {
		if conn, ok := args[0].(engine.Socket); ok {
			if g, ok := conn.Transport().(*pollingGuard); ok {
				g.adopt(conn)
			}
			h.installGate(conn)
			h.repeatPongs(conn)
		}
	})
	h.io.Bind(h.eio)
	h.io.Use(h.authenticate)
	_ = h.io.On("connection", h.onConnection)
	// The engine keeps a connection's handshake request for as long as the
	// connection lives; it gets a shallow copy of each request, whose
	// headers the Hub drops once the socket is authenticated (see
	// releaseHandshake) without touching net/http's own. A new session on
	// WebSocket is upgraded by the Hub (upgrade.go), the rest by the
	// engine.
	h.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r = r.WithContext(r.Context())
		if opensWebSocket(r) { // the Hub always serves WebSocket (SetTransports above)
			h.serveUpgrade(w, r)
			return
		}
		h.eio.ServeHTTP(w, r)
	})
	return h, nil
}

// Node returns the id this Hub uses in presence records: Config.NodeID
// plus a random suffix.
func (h *Hub) Node() string { return h.node }

// Handler returns the HTTP handler of the Socket.IO endpoint. Mount it at
// /socket.io/ (with gin: r.Any("/socket.io/*any", gin.WrapH(h.Handler()))).
// It serves the WebSocket and polling transports.
func (h *Hub) Handler() http.Handler { return h.handler }

// Start registers this node for presence (returning that error, if any)
// and runs, until Stop, the heartbeat that keeps the node's sessions
// alive, the sweeper that announces crashed nodes' users offline and the
// listener for other nodes' volatile broadcasts.
func (h *Hub) Start(ctx context.Context) error {
	h.lifeMu.Lock()
	defer h.lifeMu.Unlock()
	if h.started {
		return errors.New("socketio: hub already started")
	}
	if h.stopped {
		return errors.New("socketio: hub stopped")
	}
	if h.presence != nil {
		if _, err := h.presence.PresenceHeartbeat(ctx, h.node); err != nil {
			return fmt.Errorf("socketio: register node: %w", err)
		}
	}
	if h.sessions != nil {
		// Until the fan-out emits, sockets start at the tail as of now.
		// Start the Hub before the fan-out Runner: tail start positions
		// only grow, so every event the fan-out emits then lies after
		// this position, and recovery replays any of them a socket lost.
		start, err := h.sessions.TailStart(ctx)
		if err != nil {
			return fmt.Errorf("socketio: tail start: %w", err)
		}
		h.mu.Lock()
		if h.pos.Less(start) {
			h.pos = start
		}
		h.mu.Unlock()
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	h.cancel = cancel
	h.started = true
	if h.sessions != nil {
		h.loops.Go(func() { h.sessionLoop(runCtx) })
	}
	if h.presence != nil {
		h.loops.Go(func() { h.heartbeatLoop(runCtx) })
		h.loops.Go(func() { h.sweepLoop(runCtx) })
	}
	if h.volatile != nil {
		ready := make(chan struct{})
		var once sync.Once
		h.loops.Go(func() {
			h.volatile.ListenVolatile(runCtx, func() { once.Do(func() { close(ready) }) }, h.onVolatile)
		})
		// Typing from other nodes is best effort, but a listener that is
		// up before Start returns makes the first broadcasts reliable.
		t := time.NewTimer(5 * time.Second)
		select {
		case <-ready:
		case <-t.C:
			h.logger.WarnContext(ctx, "volatile listener not connected yet; typing from other nodes is delayed")
		case <-ctx.Done():
		}
		t.Stop()
	}
	return nil
}

// Stop refuses new handshakes, stops the background loops, disconnects
// every socket (clients reconnect, possibly to another node, and catch up
// by replay) and removes this node's presence sessions, announcing users
// left without a socket offline. It waits for all of the Hub's goroutines.
// The presence cleanup gets Config.OpTimeout even if ctx has ended. Stop is
// idempotent. Call it before (or while) the HTTP server shuts down: until
// the Hub closes them, long-polling requests keep http.Server.Shutdown
// waiting for up to Config.PingInterval.
func (h *Hub) Stop(ctx context.Context) {
	h.lifeMu.Lock()
	if h.stopped {
		h.lifeMu.Unlock()
		<-h.stopDone
		return
	}
	h.stopped = true
	h.stopping.Store(true)
	cancel := h.cancel
	h.lifeMu.Unlock()
	defer close(h.stopDone)

	if cancel != nil {
		cancel()
	}
	h.loops.Wait()

	conns := h.connList()
	h.io.Close(nil)
	// Sockets the library failed to close (it can lose track of one, as in
	// its CONNECT race) are forgotten here, so nothing of theirs outlives
	// Stop.
	for _, c := range h.connList() {
		h.onDisconnect(c, "server shutting down")
	}
	// Let presence work that was already running finish, so that the
	// node's sessions are final before they are dropped.
	for _, c := range conns {
		c.pmu.Lock()
		//nolint:staticcheck // an empty critical section waits for the holder
		c.pmu.Unlock()
	}
	h.bgMu.Lock()
	h.bgClosed = true
	h.bgMu.Unlock()
	close(h.writers.stop)
	h.bg.Wait()
	if h.presence != nil && !h.crashed.Load() {
		// Cleanup: even if ctx has run out (a slow HTTP shutdown before
		// this), telling the others that these users left beats leaving
		// them online until the sweepers notice.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.cfg.OpTimeout)
		defer cancel()
		n, err := h.presence.PresenceDropNode(dctx, h.node, h.now())
		if err != nil {
			h.logger.ErrorContext(dctx, "drop presence sessions at shutdown; other nodes will sweep them", "error", err)
		} else {
			h.logger.InfoContext(dctx, "presence sessions dropped at shutdown", "offline_users", n)
		}
	}
}

// connList returns the sockets the Hub knows, in no order.
func (h *Hub) connList() []*conn {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]*conn, 0, len(h.conns))
	for _, c := range h.conns {
		out = append(out, c)
	}
	return out
}

// allowRequest refuses handshakes while the Hub stops, and those whose
// Origin header names another site.
// CORS alone only hides responses from browsers; refusing the handshake
// also stops cross-site WebSocket hijacking with the user's cookie.
func (h *Hub) allowRequest(ctx *types.HttpContext) error {
	if h.stopping.Load() {
		// A refused Engine.IO handshake makes the client retry with
		// backoff, so it finds another node.
		return errors.New("server shutting down")
	}
	origin := ctx.Headers().Peek("Origin")
	if origin == "" || h.cfg.FrontendOrigin == "*" || strings.EqualFold(origin, h.cfg.FrontendOrigin) {
		return nil
	}
	h.stats.rejected.Add(1)
	h.logger.InfoContext(ctx.Context(), "handshake refused: origin not allowed", "origin", origin)
	return errors.New("origin not allowed")
}

// unauthorized is what a refused handshake sees: connect_error with
// message "unauthorized" and data {code: 401}.
func unauthorized() *socket.ExtendedError {
	return socket.NewExtendedError("unauthorized", map[string]any{"code": 401})
}

// authenticate is the namespace middleware: it identifies the client from
// auth.token, an Authorization header or the configured cookie.
func (h *Hub) authenticate(s *socket.Socket, next func(*socket.ExtendedError)) {
	token, _ := s.Handshake().Auth["token"].(string)
	var r *http.Request
	if req := s.Request(); req != nil {
		r = req.Request()
	}
	p, err := h.auth.Authenticate(r, token)
	if err == nil && p.UserID == "" {
		err = errors.New("principal without a user id")
	}
	if err == nil && !p.ExpiresAt.IsZero() && !h.now().Before(p.ExpiresAt) {
		// Within the verifier's clock-skew leeway, but the connection
		// would be closed at once (see onConnection): refuse it, so the
		// client learns to refresh its token instead of looping.
		err = errors.New("token expired")
	}
	if err != nil {
		h.stats.rejected.Add(1)
		h.logger.Info("handshake refused", "error", err, "address", s.Handshake().Address)
		h.openGate(s.Conn().Id())
		next(unauthorized())
		return
	}
	if h.stopping.Load() {
		// Closing the connection rather than refusing the CONNECT keeps the
		// client reconnecting (to another node): socket.io-client gives
		// up after a middleware error, not after a transport close.
		h.openGate(s.Conn().Id())
		s.Conn().Close(true)
		next(socket.NewExtendedError("unavailable", map[string]any{"code": 503}))
		return
	}
	if s.Recovered() {
		r, ok := s.Data().(*restored)
		if !ok || r.sess.UserID != p.UserID {
			// A pid alone is not a credential: only the session's own
			// user may restore it.
			h.stats.rejected.Add(1)
			h.logger.Warn("session recovery refused: the session belongs to another user", "user", p.UserID, "address", s.Handshake().Address)
			h.openGate(s.Conn().Id())
			next(unauthorized())
			return
		}
		h.restores.Store(s.Id(), r)
		// Taken by onConnection; forgotten if the connection ends first.
		id := s.Id()
		_ = s.Conn().Once("close", func(...any) { h.restores.CompareAndDelete(id, r) })
	}
	s.SetData(p)
	next(nil)
}

// onConnection runs on the socket's task queue right after the library
// registered it, before any packet of the client is handled.
func (h *Hub) onConnection(args ...any) {
	s, ok := args[0].(*socket.Socket)
	if !ok {
		return
	}
	// First thing: the socket is registered now, so packets held by the
	// gate may proceed (they queue behind this handler).
	h.openGate(s.Conn().Id())
	p, _ := s.Data().(domain.Principal)
	if p.UserID == "" || h.stopping.Load() {
		// A transport close, not a DISCONNECT packet, so that the client
		// reconnects (to another node).
		s.Conn().Close(true)
		return
	}
	releaseHandshake(s)
	c := newConn(h, s, p)
	var rec *restored
	if v, ok := h.restores.LoadAndDelete(s.Id()); ok && s.Recovered() {
		rec = v.(*restored)
	}
	if h.sessions != nil {
		c.pid = privateSessionID(s)
		if c.pid == "" {
			h.logger.Error("cannot read the socket's private session id; connection state recovery is off for it", "socket", c.id)
		}
		// Live events wait until the replay of what the socket missed is
		// queued (see recover).
		c.recovering = rec != nil
	}
	c.registerHandlers()
	h.mu.Lock()
	if old := h.conns[s.Id()]; old != nil {
		// A recovered socket keeps its id; the old socket (its transport
		// not yet known to be dead) is replaced.
		h.logger.Info("socket id recovered while its old socket is still open", "socket", c.id)
	}
	h.conns[s.Id()] = c
	h.mu.Unlock()
	h.stats.connections.Add(1)
	// Every authenticated socket receives global events.
	if rec != nil {
		c.restoreRooms(rec)
	} else {
		_ = c.addRooms(domain.RoomGlobal)
	}
	_ = s.On("disconnect", func(reason ...any) {
		r, _ := reason[0].(string)
		if len(reason) > 1 && reason[1] != nil {
			// The transport's error, e.g. for "transport error".
			h.logger.Info("socket transport failed", "socket", c.id, "user", c.p.UserID, "reason", r, "error", reason[1])
		}
		h.onDisconnect(c, r)
	})
	if !s.Connected() {
		// The socket closed before the listener was in place (the
		// library marks it disconnected before announcing it).
		h.onDisconnect(c, "transport close")
		return
	}
	c.startWriter()
	if !p.ExpiresAt.IsZero() {
		c.expireAt(p.ExpiresAt)
	}
	if h.sessions != nil {
		if rec != nil {
			c.recover(rec)
		} else {
			c.startSession()
		}
	}
	h.logger.Debug("socket connected", "socket", string(s.Id()), "user", p.UserID, "transport", s.Conn().Transport().Name())
}

// releaseHandshake drops what the library keeps of an authenticated
// socket's handshake for the whole life of the connection although nothing
// reads it any more: the socket's copies of the request's headers, query
// and CONNECT auth (Socket.Handshake), and, in the handshake's HttpContext
// (the engine socket's "request", which the library means to remove in its
// next major version), the request's headers and the parsed query and
// response headers. That is about 3 KiB per idle socket with the bench's
// few headers, more with a browser's. The request is the Hub's own copy
// (see NewHub), so net/http's is left alone. The maps are replaced by
// empty ones rather than nil, so that a late write cannot panic.
func releaseHandshake(s *socket.Socket) {
	if hs := s.Handshake(); hs != nil {
		hs.Headers, hs.Query, hs.Auth = nil, nil, nil
	}
	hc := s.Request()
	if hc == nil {
		return
	}
	// As before, the headers bag and the request share one map.
	headers := http.Header{}
	hc.Headers().Replace(headers)
	hc.Query().Replace(map[string][]string{})
	hc.ResponseHeaders().Replace(map[string][]string{})
	if r := hc.Request(); r != nil {
		r.Header = headers
	}
}

// onDisconnect forgets c and schedules its presence goodbye.
func (h *Hub) onDisconnect(c *conn, reason string) {
	if !c.gone.CompareAndSwap(false, true) {
		return
	}
	if dropped := c.dropReason.Load(); dropped != nil {
		reason = *dropped
	}
	at := h.now()
	c.cancel()
	c.out.close()
	c.mu.Lock()
	c.closed = true
	if c.expiry != nil {
		c.expiry.Stop()
	}
	rooms := make([]domain.Room, 0, len(c.rooms))
	for r := range c.rooms {
		rooms = append(rooms, r)
	}
	c.rooms = nil
	c.mu.Unlock()
	h.mu.Lock()
	if h.conns[c.sock.Id()] == c {
		delete(h.conns, c.sock.Id())
	}
	for _, r := range rooms {
		h.unindexLocked(r, c)
	}
	h.mu.Unlock()
	h.stats.disconnected(reason)
	h.logger.Debug("socket disconnected", "socket", c.id, "user", c.p.UserID, "reason", reason)
	if h.presence != nil && !h.stopping.Load() {
		h.goBackground(func() { c.goOffline(at) })
	}
	if h.sessions != nil && c.pid != "" && !h.crashed.Load() {
		h.goBackground(func() { c.endSession(reason) })
	}
}

// roomSockets are the local sockets of one room. Most rooms (a user's own
// room) have one socket, which needs no set of its own: one holds it, and
// many, the set, is used from the second socket on (then one is nil).
type roomSockets struct {
	one  *conn
	many map[*conn]struct{}
}

// goBackground runs fn in a goroutine that Stop waits for. It reports false,
// without running fn, once Stop has stopped waiting for new ones.
func (h *Hub) goBackground(fn func()) bool {
	h.bgMu.Lock()
	defer h.bgMu.Unlock()
	if h.bgClosed {
		return false
	}
	h.bg.Go(fn)
	return true
}

func (h *Hub) indexLocked(r domain.Room, c *conn) {
	m := h.index[r]
	switch {
	case m.one == nil && m.many == nil:
		m.one = c
	case m.one == c:
	case m.many == nil:
		m.many = map[*conn]struct{}{m.one: {}, c: {}}
		m.one = nil
	default:
		m.many[c] = struct{}{}
	}
	h.index[r] = m
}

func (h *Hub) unindexLocked(r domain.Room, c *conn) {
	m, ok := h.index[r]
	switch {
	case !ok:
	case m.one == c:
		delete(h.index, r)
	case m.many != nil:
		delete(m.many, c)
		if len(m.many) == 0 {
			delete(h.index, r)
		}
	}
}

// list returns the room's sockets in a new slice.
func (m roomSockets) list() []*conn {
	if m.one != nil {
		return []*conn{m.one}
	}
	out := make([]*conn, 0, len(m.many))
	for c := range m.many {
		out = append(out, c)
	}
	return out
}

// emitTargets records d as the last emitted position and returns the local
// sockets in d.Room, in one critical section with joins: a socket that
// joins the room after it starts after d (conn.addRooms).
func (h *Hub) emitTargets(d domain.Delivery) []*conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pos.Less(d.Position) {
		h.pos = d.Position
	}
	return h.index[d.Room].list()
}

// members returns the local sockets in room.
func (h *Hub) members(room domain.Room) []*conn {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.index[room].list()
}

// Emit delivers a logged event to this node's sockets in d.Room as
// emit(d.Type, payload, meta), where payload is the logged JSON and meta is
// {room, seq, id, at}. It satisfies projector.Emitter: call it from one
// goroutine in tail order, and every socket receives each room's events in
// seq order. The frame is encoded once per event, whatever the number of
// sockets. Emit never blocks on a socket: one whose outbound queue is full
// is disconnected as too slow (it catches up by replay when it comes back).
// Internal events (membership bookkeeping) are skipped; global events
// reach every socket, since every socket is in global.
func (h *Hub) Emit(ctx context.Context, d domain.Delivery) error {
	targets := h.emitTargets(d)
	if len(targets) > 0 {
		f, err := encodeDelivery(d)
		if err != nil {
			// A row the log accepted but that cannot be framed is a bug;
			// skipping it beats stalling every room behind it.
			h.logger.ErrorContext(ctx, "cannot encode logged event; skipped", "room", d.Room, "seq", d.Seq, "type", d.Type, "error", err)
			return nil
		}
		h.stats.encoded.Add(1)
		for _, c := range targets {
			c.deliver(d.Room, d.Seq, d.Position, f)
		}
	}
	// A revocation applies to live sockets at once, right after they
	// received it, not only at their next join or recovery.
	if d.Type == domain.EventParticipantRemoved || d.Type == domain.EventRoomMemberRemoved {
		h.revoke(d)
	}
	return nil
}

// revoke takes the sockets of a user removed from a shared room out of it:
// right after they received participant-removed, or when a producer's
// room-member-removed is emitted.
func (h *Hub) revoke(d domain.Delivery) {
	for _, ch := range domain.ImpliedMembership(d.Type, []domain.Room{d.Room}, d.Payload) {
		if ch.Added {
			continue
		}
		for _, c := range h.members(ch.Room) {
			if c.p.UserID == ch.UserID && !c.p.IsAdmin() {
				c.removeRooms(ch.Room)
				// Emit must not wait on the database.
				h.goBackground(func() { _ = c.persistNow() })
				h.logger.Info("membership revoked; socket left room", "socket", c.id, "user", c.p.UserID, "room", ch.Room)
			}
		}
	}
}

// heartbeatLoop keeps the node alive in the presence model and reconciles
// its sessions with the sockets it really holds.
func (h *Hub) heartbeatLoop(ctx context.Context) {
	for sleepJittered(ctx, h.cfg.HeartbeatInterval) {
		registered, err := h.presence.PresenceHeartbeat(ctx, h.node)
		if err != nil {
			if ctx.Err() == nil {
				h.logger.ErrorContext(ctx, "presence heartbeat failed", "error", err)
			}
			continue
		}
		h.reconcile(ctx, registered)
	}
}

// reconcile removes the node's sessions whose socket is gone (a goodbye
// that failed) and, after the node was swept as dead, registers its online
// sockets again.
func (h *Hub) reconcile(ctx context.Context, registered bool) {
	sessions, err := h.presence.PresenceSessions(ctx, h.node)
	if err != nil {
		if ctx.Err() == nil {
			h.logger.ErrorContext(ctx, "presence reconcile: list sessions", "error", err)
		}
		return
	}
	inDB := make(map[string]bool, len(sessions))
	h.mu.RLock()
	local := make(map[string]*conn, len(h.conns))
	for _, c := range h.conns {
		local[c.id] = c
	}
	h.mu.RUnlock()
	for _, s := range sessions {
		inDB[s.SocketID] = true
		if _, ok := local[s.SocketID]; ok {
			continue
		}
		if _, err := h.presence.PresenceDisconnect(ctx, h.node, s.SocketID, h.now()); err != nil && ctx.Err() == nil {
			h.logger.ErrorContext(ctx, "presence reconcile: remove stale session", "socket", s.SocketID, "error", err)
		}
	}
	if !registered {
		return
	}
	for id, c := range local {
		if !inDB[id] {
			c.reregister(ctx)
		}
	}
}

// sweepLoop announces the users of crashed nodes offline.
func (h *Hub) sweepLoop(ctx context.Context) {
	for sleepJittered(ctx, h.cfg.HeartbeatInterval) {
		n, err := h.presence.PresenceSweep(ctx, h.cfg.PresenceTTL)
		switch {
		case err != nil && ctx.Err() == nil:
			h.logger.ErrorContext(ctx, "presence sweep failed", "error", err)
		case n > 0:
			h.logger.InfoContext(ctx, "presence sweep: users of dead nodes announced offline", "users", n)
		}
	}
}

// sleepJittered waits d ±20% and reports whether ctx is still alive.
func sleepJittered(ctx context.Context, d time.Duration) bool {
	if q := d / 5; q > 0 {
		d = d - q + mrand.N(2*q+1)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func randomSuffix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
