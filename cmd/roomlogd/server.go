package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/projector"
	"github.com/roomlog/roomlog/transport/auth"
	httpapi "github.com/roomlog/roomlog/transport/http"
	"github.com/roomlog/roomlog/transport/socketio"
)

// Compile-time checks that the real types satisfy the consumer-side
// interfaces they are wired into.
var (
	_ projector.Emitter     = (*socketio.Hub)(nil)
	_ projector.Source      = (*eventstore.Store)(nil)
	_ projector.Checkpoints = (*eventstore.Store)(nil)
	_ httpapi.Store         = (*eventstore.Store)(nil)
)

// Main is the wired server. Run starts it; Close stops it in reverse order.
// Tests drive the real wiring through it.
type Main struct {
	Config Config
	Logger *slog.Logger
	// Registry receives roomlogd's metrics, served at GET /metrics. Run
	// creates one if it is nil.
	Registry *prometheus.Registry

	pool     *pgxpool.Pool
	store    *eventstore.Store
	hub      *socketio.Hub
	registry *projector.Registry
	// fanout is the live fan-out's tail Runner, once started: atomic for
	// the store's writer goroutines, which start before it exists
	// (Config.HandoffMissed).
	fanout   atomic.Pointer[projector.Runner]
	server   *http.Server
	listener net.Listener
	// pprof serves net/http/pprof when Config.PprofAddr is set.
	pprof *http.Server

	listenCancel context.CancelFunc
	bg           sync.WaitGroup
	closeOnce    sync.Once
	closeErr     error
}

// NewMain returns a Main that logs to w.
func NewMain(cfg Config, w io.Writer) *Main {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	return &Main{Config: cfg, Logger: slog.New(h)}
}

// Addr returns the address the server listens on (useful with port 0).
func (m *Main) Addr() string {
	if m.listener == nil {
		return ""
	}
	return m.listener.Addr().String()
}

// Run connects, migrates, starts every component and begins serving. It
// returns once the server listens; errors that prevent starting are
// returned, and the caller should then call Close.
func (m *Main) Run(ctx context.Context) error {
	cfg := m.Config
	log := m.Logger
	if cfg.NodeID == "" {
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		host, _ := os.Hostname()
		cfg.NodeID = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
		m.Config.NodeID = cfg.NodeID
	}

	if err := ensureDatabase(ctx, cfg.DatabaseURL, log); err != nil {
		return err
	}
	if err := eventstore.MigrateUp(cfg.DatabaseURL); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	poolCfg, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	poolCfg.MaxConns = int32(cfg.DBMaxConns)
	poolCfg.ConnConfig.ConnectTimeout = 5 * time.Second
	// A transaction of ours left idle while it holds a room lock would hold
	// back every process's tail on this database (the writer horizon), and
	// any idle transaction holds back vacuum; never let one last long.
	poolCfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = "30000"
	if m.pool, err = pgxpool.NewWithConfig(ctx, poolCfg); err != nil {
		return fmt.Errorf("database pool: %w", err)
	}
	if m.Registry == nil {
		m.Registry = prometheus.NewRegistry()
	}
	met, err := newMetrics(m.Registry)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	// The live fan-out takes this process's commits straight from the
	// writer (hand-off) and everything else from the tail; it is wired to
	// the hub and its Runner below, before it accepts a hand-off.
	live := &projector.Fanout{OnEmit: met.onEmit, OnHandoff: met.onHandoff, Logger: log}
	// Catch-up reads of recently active rooms come from memory, fed by
	// the fan-out, when it holds the whole answer (projector.Recent).
	var recent *projector.Recent
	if cfg.RecentBytes >= 0 {
		recent = &projector.Recent{MaxBytes: cfg.RecentBytes}
		live.OnEmit = func(d domain.Delivery) {
			met.onEmit(d)
			recent.Add(d)
		}
	}
	storeCfg := &eventstore.Config{OnCommit: met.onCommit, Writers: cfg.AppendWriters}
	if !cfg.TailOnly {
		storeCfg.HandoffAfter, storeCfg.Handoff = live.Position, live.Handoff
		// A commit the hand-off could not take is read from the tail at
		// once (its NOTIFY does not wake the fan-out; see below).
		storeCfg.HandoffMissed = func() {
			if r := m.fanout.Load(); r != nil {
				r.Wake()
			}
		}
	}
	if cfg.UnsafeAsyncCommit {
		// Only a -tags bench build gets here (Config.validate).
		log.Warn("UNSAFE: ROOMLOG_UNSAFE_ASYNC_COMMIT is set: synchronous_commit is off, acknowledged events can be lost in a crash; benchmarks only")
		storeCfg.AsyncCommit = true
	}
	m.store = eventstore.New(m.pool, log, storeCfg)
	var catchUp pageReader = m.store
	if recent != nil {
		recent.Log = m.store
		catchUp = recent
	}
	if fsync, _, err := m.store.DurabilitySettings(ctx); err != nil {
		return err
	} else if fsync != "on" && !cfg.AllowUnsafeFsync {
		return fmt.Errorf("the database runs with fsync=%s, so acknowledged events could be lost in a crash; fix the server or set ROOMLOG_ALLOW_FSYNC_OFF=true", fsync)
	}
	if err := m.store.Start(ctx); err != nil {
		return err
	}

	verifier, err := newVerifier(cfg)
	if err != nil {
		return err
	}
	users := auth.Authenticator{Verifier: verifier, CookieName: cfg.AuthCookie}
	producers, err := auth.ParseAPIKeys(cfg.APIKeys)
	if err != nil {
		return fmt.Errorf("ROOMLOG_API_KEYS: %w", err)
	}
	if producers.Len() == 0 {
		log.Warn("ROOMLOG_API_KEYS is empty: nobody can publish")
	}

	// Joins and catch-up reads check membership against the model plus
	// the membership events it has not applied yet: a change counts as
	// soon as it commits.
	members := projector.MembershipView{Store: m.store}
	m.hub, err = socketio.NewHub(socketio.HubParams{
		Auth:     users,
		Rooms:    m.store,
		Members:  members,
		Presence: m.store,
		Volatile: m.store,
		Logger:   log,
		Config: socketio.Config{
			FrontendOrigin:  cfg.FrontendURL,
			PresenceTTL:     cfg.PresenceTTL,
			NodeID:          cfg.NodeID,
			MaxPayloadBytes: cfg.MaxPayloadBytes,
			Rate:            socketio.RateLimit{Rate: float64(cfg.RateSocket)},
			RecoveryWindow:  cfg.RecoveryWindow,
			GoroutineReads:  cfg.GoroutineReads,
		},
	})
	if err != nil {
		return err
	}
	if err := m.Registry.Register(newWriterCollector(m.store, log)); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	if err := m.Registry.Register(newHubCollector(m.hub.Stats)); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	if recent != nil {
		if err := m.Registry.Register(newRecentCollector(recent.Stats)); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
	}

	// Read models (membership, unread counts, entity index) each run as a
	// checkpointed projection; live fan-out runs from now, uncheckpointed.
	m.registry, err = projector.NewRegistry(projector.RegistryConfig{Store: m.store, Logger: log})
	if err != nil {
		return err
	}
	if err := m.registry.Start(ctx); err != nil {
		return fmt.Errorf("start projections: %w", err)
	}
	// The hub starts before the fan-out: its start position (where rooms
	// joined before the first emit begin, for recovery) must not be later
	// than the first event the fan-out emits, and tail start positions
	// only grow.
	if err := m.hub.Start(ctx); err != nil {
		return err
	}
	live.Emitter = m.hub
	fanout, err := live.NewRunner(projector.Config{Source: m.store, Logger: log, PollInterval: 100 * time.Millisecond})
	if err != nil {
		return err
	}
	if err := fanout.Start(ctx); err != nil {
		return fmt.Errorf("start fan-out: %w", err)
	}
	m.fanout.Store(fanout)
	listenCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.listenCancel = cancel
	m.bg.Add(1)
	go func() {
		defer m.bg.Done()
		m.store.ListenNotices(listenCtx, func(n eventstore.Notice) {
			// This process's own commits reached the fan-out by hand-off
			// (or HandoffMissed woke it): waking it would only re-read
			// the tail for nothing, several times, on every publish.
			if !n.HandedOff {
				fanout.Wake()
			}
			m.registry.Wake()
		})
	}()
	if cfg.BurstGOGC >= 0 {
		burst := &socketio.BurstGC{Connections: func() uint64 { return m.hub.Stats().Connections }, Percent: cfg.BurstGOGC, Logger: log}
		m.bg.Add(1)
		go func() {
			defer m.bg.Done()
			burst.Run(listenCtx) // restores GOGC when it ends
		}()
	}

	latest, err := eventstore.LatestMigration()
	if err != nil {
		return err
	}
	api, err := httpapi.NewServer(httpapi.Params{
		Store:      meteredStore{Store: m.store, rooms: catchUp, members: members, m: met},
		Users:      users,
		Producers:  producers,
		Presence:   m.store,
		ReadModels: m.store,
		Logger:     log,
		Config:     &httpapi.Config{MaxPayloadBytes: cfg.MaxPayloadBytes},
		SocketIO:   m.hub.Handler(),
		// 0 means the default rate; -1 no limit.
		PublishRate: &httpapi.RateLimit{Rate: float64(cfg.RatePublish)},
		OnRequest:   met.onRequest,
		ReadyDetail: func(ctx context.Context) (any, error) {
			st, err := m.registry.Status(ctx)
			if err != nil {
				return nil, err
			}
			type projection struct {
				Name     string `json:"name"`
				Saved    bool   `json:"saved"`
				Position string `json:"position"`
				Pending  int64  `json:"pending"`
				Lag      string `json:"lag"`
			}
			out := make([]projection, len(st))
			for i, p := range st {
				out[i] = projection{Name: p.Name, Saved: p.Saved, Position: fmt.Sprintf("%d:%d", p.Position.Txid, p.Position.ID), Pending: p.Pending, Lag: p.Lag.String()}
			}
			return map[string]any{"projections": out}, nil
		},
		Ready: func(ctx context.Context) error {
			if err := m.store.Ping(ctx); err != nil {
				return err
			}
			v, dirty, err := m.store.SchemaVersion(ctx)
			if err != nil {
				return err
			}
			if dirty || uint(v) != latest {
				return domain.Errorf(domain.CodeUnavailable, "schema version %d, want %d", v, latest)
			}
			return nil
		},
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("ROOMLOG_ADDR: %w", err)
	}
	m.listener = sendBufferListener{ln}
	m.server = &http.Server{
		Handler:           metricsHandler(m.Registry, api.Handler()),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	m.bg.Add(1)
	go func() {
		defer m.bg.Done()
		if err := m.server.Serve(m.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server stopped", "error", err)
		}
	}()
	if cfg.PprofAddr != "" {
		if err := m.servePprof(cfg.PprofAddr); err != nil {
			return err
		}
	}
	log.Info("roomlogd listening", "addr", "http://"+m.Addr(), "env", cfg.Env, "node", cfg.NodeID, "socketio", "/socket.io/", "frontend_origin", cfg.FrontendURL)
	return nil
}

// Close shuts down: close sockets (their users go offline through the
// log), stop accepting requests and wait for those in flight (their appends
// complete), stop the consumers, flush the writer, close the pool. It is idempotent and bounded by ShutdownTimeout.
func (m *Main) Close() error {
	m.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), m.Config.ShutdownTimeout)
		defer cancel()
		var errs []error
		// Sockets first: open long-polling requests would otherwise keep
		// the HTTP shutdown waiting. Closing them announces their users
		// offline through the log, so the store must still be running.
		if m.hub != nil {
			m.hub.Stop(ctx)
		}
		if m.server != nil {
			if err := m.server.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("http shutdown: %w", err))
			}
		}
		if m.pprof != nil {
			_ = m.pprof.Close() // profiles in progress are of no use after shutdown
		}
		if r := m.fanout.Load(); r != nil {
			r.Stop()
		}
		if m.registry != nil {
			m.registry.Stop()
		}
		if m.store != nil {
			m.store.Stop()
		}
		if m.listenCancel != nil {
			m.listenCancel()
		}
		m.bg.Wait()
		if m.pool != nil {
			m.pool.Close()
		}
		m.closeErr = errors.Join(errs...)
	})
	return m.closeErr
}

// servePprof serves net/http/pprof on addr (Config.validate made sure it
// is a loopback address) on its own listener and mux, so the profiling
// endpoints can never be reached through the public one.
func (m *Main) servePprof(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("ROOMLOG_PPROF_ADDR: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	m.pprof = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	m.bg.Add(1)
	go func() {
		defer m.bg.Done()
		if err := m.pprof.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.Logger.Error("pprof server stopped", "error", err)
		}
	}()
	m.Logger.Warn("pprof endpoints enabled (ROOMLOG_PPROF_ADDR); for profiling only", "addr", "http://"+ln.Addr().String()+"/debug/pprof/")
	return nil
}

// socketSendBuffer caps each connection's kernel send buffer. Left to
// autotuning, the kernel buffers megabytes for a client that stopped
// reading, which hides it from the Hub's bounded outbox and write timeout
// (the slow-client drop) for as long as those megabytes take to fill.
const socketSendBuffer = 128 << 10

// sendBufferListener sets socketSendBuffer on every accepted TCP connection.
type sendBufferListener struct{ net.Listener }

// Accept implements net.Listener.
func (l sendBufferListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok && err == nil {
		_ = tc.SetWriteBuffer(socketSendBuffer) // best effort: a failure only restores autotuning
	}
	return c, err
}

func newVerifier(cfg Config) (*auth.Verifier, error) {
	ac := auth.Config{UserIDClaim: cfg.JWTUserClaim, RolesClaim: cfg.JWTRolesClaim, Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience}
	if cfg.JWTSecret != "" {
		ac.HSSecret = []byte(cfg.JWTSecret)
	}
	if cfg.JWTPublicKeys != "" {
		pem, err := os.ReadFile(cfg.JWTPublicKeys)
		if err != nil {
			return nil, fmt.Errorf("ROOMLOG_JWT_PUBLIC_KEYS: %w", err)
		}
		ac.PublicKeysPEM = pem
	}
	v, err := auth.NewVerifier(ac)
	if err != nil {
		return nil, fmt.Errorf("JWT configuration: %w", err)
	}
	return v, nil
}

// ensureDatabase creates the database DATABASE_URL names if the server
// says it does not exist (SQLSTATE 3D000).
func ensureDatabase(ctx context.Context, dbURL string, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err == nil {
		return conn.Close(ctx)
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "3D000" {
		return fmt.Errorf("connect to DATABASE_URL: %w", err)
	}
	u, perr := url.Parse(dbURL)
	if perr != nil {
		return fmt.Errorf("DATABASE_URL: %w", perr)
	}
	name := u.Path[1:]
	admin := *u
	admin.Path = "/postgres"
	ac, err := pgx.Connect(ctx, admin.String())
	if err != nil {
		return fmt.Errorf("connect to create database %q: %w", name, err)
	}
	defer ac.Close(ctx)
	if _, err := ac.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		var e *pgconn.PgError
		if !errors.As(err, &e) || e.Code != "42P04" { // duplicate_database: someone else made it
			return fmt.Errorf("create database %q: %w", name, err)
		}
	}
	log.Info("created database", "name", name)
	return nil
}
