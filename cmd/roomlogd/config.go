package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is roomlogd's configuration. Environment variables set it; a few
// flags override them. Zero values mean the documented default.
type Config struct {
	DatabaseURL      string        // DATABASE_URL
	Addr             string        // ROOMLOG_ADDR
	FrontendURL      string        // ROOMLOG_FRONTEND_URL
	JWTSecret        string        // ROOMLOG_JWT_SECRET
	JWTPublicKeys    string        // ROOMLOG_JWT_PUBLIC_KEYS (path to a PEM file)
	JWTUserClaim     string        // ROOMLOG_JWT_USER_CLAIM
	JWTRolesClaim    string        // ROOMLOG_JWT_ROLES_CLAIM
	JWTIssuer        string        // ROOMLOG_JWT_ISSUER
	JWTAudience      string        // ROOMLOG_JWT_AUDIENCE
	AuthCookie       string        // ROOMLOG_AUTH_COOKIE
	APIKeys          string        // ROOMLOG_API_KEYS
	RecoveryWindow   time.Duration // ROOMLOG_RECOVERY_WINDOW
	MaxPayloadBytes  int           // ROOMLOG_MAX_PAYLOAD_BYTES
	PresenceTTL      time.Duration // ROOMLOG_PRESENCE_TTL
	ShutdownTimeout  time.Duration // ROOMLOG_SHUTDOWN_TIMEOUT
	DBMaxConns       int           // ROOMLOG_DB_MAX_CONNS
	AppendWriters    int           // ROOMLOG_APPEND_WRITERS
	NodeID           string        // ROOMLOG_NODE_ID
	LogLevel         string        // ROOMLOG_LOG_LEVEL
	LogFormat        string        // ROOMLOG_LOG_FORMAT
	Env              string        // ROOMLOG_ENV
	AllowUnsafeFsync bool          // ROOMLOG_ALLOW_FSYNC_OFF
	RatePublish      int           // ROOMLOG_RATE_PUBLISH: publish requests per second per API key; 0 default, -1 off
	RateSocket       int           // ROOMLOG_RATE_SOCKET: client events per second per socket; 0 default, -1 off
	// RecentBytes (ROOMLOG_RECENT_BYTES) bounds the memory that keeps the
	// latest events of active rooms for catch-up reads (projector.Recent);
	// 0 means projector.DefaultRecentBytes, -1 turns it off.
	RecentBytes int64
	// BurstGOGC (ROOMLOG_BURST_GOGC) is the Go collector's GOGC while
	// sockets connect faster than 200 per second (socketio.BurstGC): it
	// keeps the garbage of connection set-up from spreading the sockets'
	// memory over part-empty spans. 0 means the default, 25; -1 turns it
	// off. It never raises the GOGC the process runs with.
	BurstGOGC int
	// PprofAddr (ROOMLOG_PPROF_ADDR) is a loopback host:port on which a
	// second listener serves net/http/pprof (/debug/pprof/). Off when
	// empty, the default; any non-loopback address is refused, because
	// profiles expose memory contents and the endpoints cost CPU.
	PprofAddr string
	// TailOnly (ROOMLOG_TAIL_ONLY) turns the live hand-off off: this
	// process's own commits then reach its sockets like everyone else's,
	// through NOTIFY and the tail. For comparison and diagnosis; the
	// default (false) hands them over at once.
	TailOnly bool
	// GoroutineReads (ROOMLOG_WS_GOROUTINE_READS) reads each WebSocket
	// connection on a goroutine of its own instead of with the epoll
	// poller, which holds none for an idle connection
	// (socketio.Config.GoroutineReads). For comparison and diagnosis;
	// default false. Systems other than Linux always read this way.
	GoroutineReads bool

	// UnsafeAsyncCommit (ROOMLOG_UNSAFE_ASYNC_COMMIT) turns PostgreSQL's
	// synchronous_commit off for appends: an acknowledged event can then
	// be lost in a crash. UNSAFE, BENCHMARKS ONLY: it exists so that
	// cmd/roomlog-bench can price durability, and only a server built with
	// -tags bench honours it; any other build refuses to start when it is
	// set (see benchBuild).
	UnsafeAsyncCommit bool
}

// Defaults. DefaultDatabaseURL is for development on a local server.
const (
	DefaultDatabaseURL     = "postgres://postgres@127.0.0.1:5432/roomlog?sslmode=disable"
	DefaultAddr            = "127.0.0.1:8080"
	DefaultAuthCookie      = "token"
	DefaultRecoveryWindow  = 24 * time.Hour
	DefaultMaxPayloadBytes = 64 << 10
	DefaultPresenceTTL     = 30 * time.Second
	DefaultShutdownTimeout = 10 * time.Second
	DefaultDBMaxConns      = 32
	DefaultAppendWriters   = 1
	// MaxAppendWriters bounds ROOMLOG_APPEND_WRITERS (each holds a pool
	// connection while it commits).
	MaxAppendWriters = 8
)

// envVars maps each variable to the field it sets; the table is also what
// the README's configuration table documents.
func (c *Config) envVars() []envVar {
	return []envVar{
		{"DATABASE_URL", strVar(&c.DatabaseURL)},
		{"ROOMLOG_ADDR", strVar(&c.Addr)},
		{"ROOMLOG_FRONTEND_URL", strVar(&c.FrontendURL)},
		{"ROOMLOG_JWT_SECRET", strVar(&c.JWTSecret)},
		{"ROOMLOG_JWT_PUBLIC_KEYS", strVar(&c.JWTPublicKeys)},
		{"ROOMLOG_JWT_USER_CLAIM", strVar(&c.JWTUserClaim)},
		{"ROOMLOG_JWT_ROLES_CLAIM", strVar(&c.JWTRolesClaim)},
		{"ROOMLOG_JWT_ISSUER", strVar(&c.JWTIssuer)},
		{"ROOMLOG_JWT_AUDIENCE", strVar(&c.JWTAudience)},
		{"ROOMLOG_AUTH_COOKIE", strVar(&c.AuthCookie)},
		{"ROOMLOG_API_KEYS", strVar(&c.APIKeys)},
		{"ROOMLOG_RECOVERY_WINDOW", durVar(&c.RecoveryWindow)},
		{"ROOMLOG_MAX_PAYLOAD_BYTES", intVar(&c.MaxPayloadBytes)},
		{"ROOMLOG_PRESENCE_TTL", durVar(&c.PresenceTTL)},
		{"ROOMLOG_SHUTDOWN_TIMEOUT", durVar(&c.ShutdownTimeout)},
		{"ROOMLOG_DB_MAX_CONNS", intVar(&c.DBMaxConns)},
		{"ROOMLOG_APPEND_WRITERS", intVar(&c.AppendWriters)},
		{"ROOMLOG_NODE_ID", strVar(&c.NodeID)},
		{"ROOMLOG_LOG_LEVEL", strVar(&c.LogLevel)},
		{"ROOMLOG_LOG_FORMAT", strVar(&c.LogFormat)},
		{"ROOMLOG_ENV", strVar(&c.Env)},
		{"ROOMLOG_ALLOW_FSYNC_OFF", boolVar(&c.AllowUnsafeFsync)},
		{"ROOMLOG_RATE_PUBLISH", intVar(&c.RatePublish)},
		{"ROOMLOG_RATE_SOCKET", intVar(&c.RateSocket)},
		{"ROOMLOG_RECENT_BYTES", int64Var(&c.RecentBytes)},
		{"ROOMLOG_BURST_GOGC", intVar(&c.BurstGOGC)},
		{"ROOMLOG_PPROF_ADDR", strVar(&c.PprofAddr)},
		{"ROOMLOG_TAIL_ONLY", boolVar(&c.TailOnly)},
		{"ROOMLOG_WS_GOROUTINE_READS", boolVar(&c.GoroutineReads)},
		// UNSAFE, benchmark builds only: see Config.UnsafeAsyncCommit.
		{"ROOMLOG_UNSAFE_ASYNC_COMMIT", boolVar(&c.UnsafeAsyncCommit)},
	}
}

type envVar struct {
	name string
	set  func(string) error
}

func strVar(p *string) func(string) error { return func(s string) error { *p = s; return nil } }

func intVar(p *int) func(string) error {
	return func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil {
			return errors.New("not an integer")
		}
		*p = n
		return nil
	}
}

func int64Var(p *int64) func(string) error {
	return func(s string) error {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return errors.New("not an integer")
		}
		*p = n
		return nil
	}
}

func durVar(p *time.Duration) func(string) error {
	return func(s string) error {
		d, err := time.ParseDuration(s)
		if err != nil {
			return errors.New(`not a duration (e.g. "30s", "24h")`)
		}
		*p = d
		return nil
	}
}

func boolVar(p *bool) func(string) error {
	return func(s string) error {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return errors.New("not a boolean")
		}
		*p = b
		return nil
	}
}

// LoadConfig reads the environment through getenv and then flags from args.
// Every error names the variable or flag at fault.
func LoadConfig(getenv func(string) string, args []string) (Config, error) {
	var c Config
	var errs []error
	for _, v := range c.envVars() {
		if s := strings.TrimSpace(getenv(v.name)); s != "" {
			if err := v.set(s); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", v.name, err))
			}
		}
	}
	fs := flag.NewFlagSet("roomlogd", flag.ContinueOnError)
	fs.StringVar(&c.Addr, "addr", c.Addr, "listen address (ROOMLOG_ADDR)")
	fs.StringVar(&c.DatabaseURL, "database-url", c.DatabaseURL, "PostgreSQL URL (DATABASE_URL)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error (ROOMLOG_LOG_LEVEL)")
	if err := fs.Parse(args); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return c, err
	}
	c = c.WithDefaults()
	return c, c.validate()
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.DatabaseURL == "" {
		c.DatabaseURL = DefaultDatabaseURL
	}
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.AuthCookie == "" {
		c.AuthCookie = DefaultAuthCookie
	}
	if c.RecoveryWindow == 0 {
		c.RecoveryWindow = DefaultRecoveryWindow
	}
	if c.MaxPayloadBytes == 0 {
		c.MaxPayloadBytes = DefaultMaxPayloadBytes
	}
	if c.PresenceTTL == 0 {
		c.PresenceTTL = DefaultPresenceTTL
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.DBMaxConns == 0 {
		c.DBMaxConns = DefaultDBMaxConns
	}
	if c.AppendWriters == 0 {
		c.AppendWriters = DefaultAppendWriters
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.LogFormat == "" {
		c.LogFormat = "text"
	}
	return c
}

func (c Config) validate() error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
	}
	if u, err := url.Parse(c.DatabaseURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		bad("DATABASE_URL", "must be a postgres:// URL")
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		bad("ROOMLOG_ADDR", "must be host:port (%v)", err)
	}
	if c.FrontendURL == "" {
		bad("ROOMLOG_FRONTEND_URL", "is required: the browser origin allowed by CORS, e.g. https://app.example.com")
	} else if u, err := url.Parse(c.FrontendURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
		bad("ROOMLOG_FRONTEND_URL", "must be an origin such as https://app.example.com")
	}
	if c.JWTSecret == "" && c.JWTPublicKeys == "" {
		bad("ROOMLOG_JWT_SECRET", "set it (HS256) or ROOMLOG_JWT_PUBLIC_KEYS (RS256/ES256): handshakes must be authenticated")
	}
	if c.JWTSecret != "" && len(c.JWTSecret) < 32 {
		bad("ROOMLOG_JWT_SECRET", "must be at least 32 bytes")
	}
	if c.JWTPublicKeys != "" {
		if _, err := os.Stat(c.JWTPublicKeys); err != nil {
			bad("ROOMLOG_JWT_PUBLIC_KEYS", "must name a readable PEM file (%v)", err)
		}
	}
	if c.RecoveryWindow < time.Second {
		bad("ROOMLOG_RECOVERY_WINDOW", "must be at least 1s")
	}
	if c.MaxPayloadBytes < 256 || c.MaxPayloadBytes > 16<<20 {
		bad("ROOMLOG_MAX_PAYLOAD_BYTES", "must be between 256 and 16777216")
	}
	if c.PresenceTTL < time.Second {
		bad("ROOMLOG_PRESENCE_TTL", "must be at least 1s")
	}
	if c.ShutdownTimeout <= 0 {
		bad("ROOMLOG_SHUTDOWN_TIMEOUT", "must be positive")
	}
	if c.RecentBytes < -1 {
		bad("ROOMLOG_RECENT_BYTES", "must be -1 (off), 0 (default) or a byte count")
	}
	if c.BurstGOGC < -1 || c.BurstGOGC > 1000 {
		bad("ROOMLOG_BURST_GOGC", "must be -1 (off), 0 (default 25) or a GOGC percentage up to 1000")
	}
	if c.DBMaxConns < 4 {
		bad("ROOMLOG_DB_MAX_CONNS", "must be at least 4")
	}
	if c.AppendWriters < 1 || c.AppendWriters > MaxAppendWriters {
		bad("ROOMLOG_APPEND_WRITERS", "must be 1 to %d", MaxAppendWriters)
	}
	if c.RatePublish < -1 {
		bad("ROOMLOG_RATE_PUBLISH", "must be a positive rate, 0 for the default or -1 for no limit")
	}
	if c.RateSocket < -1 {
		bad("ROOMLOG_RATE_SOCKET", "must be a positive rate, 0 for the default or -1 for no limit")
	}
	if c.PprofAddr != "" {
		if err := loopbackAddr(c.PprofAddr); err != nil {
			bad("ROOMLOG_PPROF_ADDR", "%v", err)
		}
	}
	if c.UnsafeAsyncCommit && !benchBuild {
		bad("ROOMLOG_UNSAFE_ASYNC_COMMIT", "is honoured only by benchmark builds (go build -tags bench): it can lose acknowledged events")
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		bad("ROOMLOG_LOG_LEVEL", "must be debug, info, warn or error")
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("ROOMLOG_LOG_FORMAT", "must be text or json")
	}
	return errors.Join(errs...)
}

// loopbackAddr checks that addr is host:port with a loopback IP literal or
// "localhost" as host: the pprof listener must not be reachable from other
// machines.
func loopbackAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("must be host:port on a loopback address, e.g. 127.0.0.1:6060 (%v)", err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("must be a loopback address such as 127.0.0.1:6060 or [::1]:6060, got host %q", host)
	}
	return nil
}
