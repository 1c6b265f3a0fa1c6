package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
)

// Log attribute keys.
const (
	attrMethod   = "method"
	attrRoute    = "route"
	attrStatus   = "status"
	attrDuration = "duration"
	attrBytes    = "bytes"
	attrError    = "error"
	attrPanic    = "panic"
	attrStack    = "stack"
	attrProducer = "producer"
	attrEvents   = "events"
)

// Appender appends published events to the log. *eventstore.Store
// satisfies it.
type Appender interface {
	// AppendBatch appends reqs atomically and returns once they are durably
	// committed, one result per request in order; idempotent by (producer,
	// key). Errors carry domain codes (CodeInvalid, CodeConflict,
	// CodeUnavailable). If ctx ends first, the outcome is unknown. Safe for
	// concurrent use.
	AppendBatch(ctx context.Context, reqs []eventstore.AppendRequest) ([]eventstore.AppendResult, error)
}

// RoomReader serves catch-up. *eventstore.Store satisfies it.
type RoomReader interface {
	// ReadRooms reads each room after its cursor, up to limit events per
	// room and, if opts says so, up to opts.MaxBytes of payload per room,
	// in one round trip and one snapshot; pages come back sorted by room.
	// Safe for concurrent use.
	ReadRooms(ctx context.Context, cursors map[domain.Room]int64, limit int, opts *eventstore.ReadOptions) ([]eventstore.Page, error)
	// MemberRooms returns those of rooms (shared rooms) whose membership
	// lists userID, in one query. Safe for concurrent use.
	MemberRooms(ctx context.Context, userID string, rooms []domain.Room) ([]domain.Room, error)
}

// AuditReader serves the audit API. *eventstore.Store satisfies it.
type AuditReader interface {
	// Audit returns one page of matching events in (txid, id) order,
	// never skipping rows that commit late, under q.Timeout.
	Audit(ctx context.Context, q eventstore.AuditQuery) (eventstore.AuditPage, error)
	// AuditHorizon returns the transaction id below which the log can no
	// longer change; an export reads below it.
	AuditHorizon(ctx context.Context) (uint64, error)
	// Verify walks one room's hash chain.
	Verify(ctx context.Context, room domain.Room) (eventstore.VerifyResult, error)
}

// Store is everything the API needs from the event log. *eventstore.Store
// satisfies it.
type Store interface {
	Appender
	RoomReader
	AuditReader
}

// Authenticator identifies the user behind a request. auth.Authenticator is
// the usual one.
type Authenticator interface {
	// Authenticate returns the principal the request's credentials
	// identify. authToken is a token presented outside the request (a
	// Socket.IO handshake); HTTP handlers pass "". It returns an error with
	// domain.CodeUnauthorized if the request carries no valid credentials.
	// Safe for concurrent use.
	Authenticate(r *http.Request, authToken string) (domain.Principal, error)
}

// Producers resolves producers' API keys. *auth.APIKeys satisfies it.
type Producers interface {
	// Lookup returns the name of the key equal to key, in constant time.
	// Safe for concurrent use.
	Lookup(key string) (name string, ok bool)
}

// Params are what NewServer needs.
type Params struct {
	// Store is the event log. Required.
	Store Store
	// Users authenticates catch-up, audit and presence requests.
	// Required.
	Users Authenticator
	// Producers authenticates publish requests. Required.
	Producers Producers
	// Presence answers GET /api/v1/presence. If nil, that route answers
	// 404.
	Presence PresenceReader
	// ReadModels answers the read-model routes: the caller's unread
	// notification count and an entity's point-in-time history. If nil,
	// those routes answer 404.
	ReadModels ReadModels
	// Ready reports readiness for GET /readyz; nil means always ready. An
	// error that is a *domain.Error shows its message; any other error
	// shows only "not ready".
	Ready func(ctx context.Context) error
	// ReadyDetail, if set, adds details to a ready answer of GET /readyz
	// (the lead wires the projections' progress); an error leaves them
	// out without making the service unready.
	ReadyDetail func(ctx context.Context) (any, error)
	// Logger receives request and error logs. nil discards them.
	Logger *slog.Logger
	// Config tunes limits and timeouts; nil means the defaults.
	Config *Config
	// SocketIO, if set, is mounted at /socket.io/ for every method.
	SocketIO http.Handler
	// PublishRate limits publish requests per API key; nil means the
	// defaults (see RateLimit).
	PublishRate *RateLimit
	// OnRequest, if set, is called once per request after it completes,
	// with its route template ("unmatched" for unknown paths, never the
	// raw path), status and duration; for metrics. It must be safe for
	// concurrent use and must not block.
	OnRequest func(method, route string, status int, took time.Duration)
}

// Server is roomlog's REST API. Create it with NewServer; it is safe for
// concurrent use.
type Server struct {
	store       Store
	users       Authenticator
	producers   Producers
	presence    PresenceReader
	readModels  ReadModels
	ready       func(ctx context.Context) error
	readyDetail func(ctx context.Context) (any, error)
	logger      *slog.Logger
	cfg         Config
	engine      *gin.Engine
	onRequest   func(method, route string, status int, took time.Duration)

	publishLimit *keyBuckets
}

var releaseMode sync.Once

// NewServer validates p and builds the server and its routes.
func NewServer(p Params) (*Server, error) {
	switch {
	case p.Store == nil:
		return nil, errors.New("httpapi: Params.Store is required")
	case p.Users == nil:
		return nil, errors.New("httpapi: Params.Users is required")
	case p.Producers == nil:
		return nil, errors.New("httpapi: Params.Producers is required")
	}
	cfg := p.Config.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("httpapi: %w", err)
	}
	logger := p.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		store:       p.Store,
		users:       p.Users,
		producers:   p.Producers,
		presence:    p.Presence,
		readModels:  p.ReadModels,
		ready:       p.Ready,
		readyDetail: p.ReadyDetail,
		logger:      logger.With("subsystem", "http"),
		cfg:         cfg,
		onRequest:   p.OnRequest,
	}
	rl := p.PublishRate.WithDefaults()
	if err := rl.validate(); err != nil {
		return nil, fmt.Errorf("httpapi: %w", err)
	}
	s.publishLimit = newKeyBuckets(rl)
	// gin's mode is process-wide; release mode silences its debug output.
	releaseMode.Do(func() { gin.SetMode(gin.ReleaseMode) })
	e := gin.New()
	// Answer unknown paths in the error shape instead of redirecting.
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	e.HandleMethodNotAllowed = false
	e.Use(s.logRequests, s.recoverPanics)
	e.NoRoute(func(c *gin.Context) {
		s.writeError(c, domain.Errorf(domain.CodeNotFound, "no such route"))
	})
	s.routes(e, p.SocketIO)
	s.engine = e
	return s, nil
}

// Handler returns the server's http.Handler.
func (s *Server) Handler() http.Handler { return s.engine }

// routes registers every route. The OpenAPI document must list exactly the
// API routes registered here; TestOpenAPI enforces it.
func (s *Server) routes(e *gin.Engine, socketIO http.Handler) {
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	v1 := e.Group("/api/v1")
	v1.GET("/openapi.json", s.openAPI)
	v1.POST("/events", s.limitPublish, s.publish)
	v1.GET("/rooms/:room/events", s.roomEvents)
	v1.POST("/catch-up", s.catchUp)
	v1.GET("/audit/events", s.auditEvents)
	v1.GET("/audit/export", s.auditExport)
	v1.GET("/audit/rooms/:room/verify", s.auditVerify)
	v1.GET("/presence", s.presenceStatus)
	v1.GET("/notifications/unread-count", s.unreadCount)
	// The spec's own path (spec/socket-events.md, "Reconnection").
	e.GET("/api/notifications/unread-count", s.unreadCount)
	// A catch-all, so that a payment id may hold an (escaped) slash.
	v1.GET("/audit/entities/:kind/*id", s.auditEntity)
	if socketIO != nil {
		e.Any("/socket.io/*any", gin.WrapH(socketIO))
	}
}

// route returns the matched route pattern, never the raw path (which could
// carry anything a client typed).
func route(c *gin.Context) string {
	if r := c.FullPath(); r != "" {
		return r
	}
	return "unmatched"
}

// logRequests logs one line per request: method, route pattern, status,
// duration and bytes written. It never logs headers, query strings or
// bodies, which may carry credentials.
// It logs from a defer so that aborted responses are logged too.
func (s *Server) logRequests(c *gin.Context) {
	start := time.Now()
	defer func() {
		level := slog.LevelInfo
		if c.Writer.Status() >= 500 {
			level = slog.LevelWarn
		}
		took := time.Since(start)
		s.logger.Log(c.Request.Context(), level, "request",
			attrMethod, c.Request.Method,
			attrRoute, route(c),
			attrStatus, c.Writer.Status(),
			attrDuration, took,
			attrBytes, c.Writer.Size())
		if s.onRequest != nil {
			s.onRequest(c.Request.Method, route(c), c.Writer.Status(), took)
		}
	}()
	c.Next()
}

// recoverPanics turns a handler panic into a logged 500 in the error shape.
// If the response has already started, it cannot change the status, so it
// aborts the connection (http.ErrAbortHandler) rather than let a truncated
// answer look complete. http.ErrAbortHandler itself, which is how a
// streaming handler aborts, is re-raised for net/http.
func (s *Server) recoverPanics(c *gin.Context) {
	defer func() {
		rec := recover()
		if rec == nil {
			return
		}
		if rec == http.ErrAbortHandler { //nolint:errorlint // a sentinel compared as net/http does
			panic(rec)
		}
		s.logger.ErrorContext(c.Request.Context(), "handler panicked",
			attrRoute, route(c), attrPanic, fmt.Sprint(rec), attrStack, string(debug.Stack()))
		if c.Writer.Written() {
			panic(http.ErrAbortHandler)
		}
		s.writeJSON(c, http.StatusInternalServerError, internalBody)
		c.Abort()
	}()
	c.Next()
}
