package socketio

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"time"

	"github.com/roomlog/roomlog/eventstore"
)

// Config tunes a Hub. Its zero value means "use the defaults", except
// FrontendOrigin, which is required.
type Config struct {
	// FrontendOrigin is the one browser origin allowed to connect, such as
	// "https://app.example.com" (scheme, host and optional port; no path).
	// CORS answers it with credentials allowed, and handshakes that carry
	// any other Origin header are refused with 403. "*" allows every origin
	// and is meant for development only. Required.
	FrontendOrigin string
	// OutboundQueue is how many frames may wait for one socket before it
	// is disconnected as too slow. It must absorb a burst: the events of
	// one room that commit together reach the socket at once. Default 1024.
	OutboundQueue int
	// OutboundBytes is how many bytes of frames may wait for one socket
	// before it is disconnected as too slow. Default 1 MiB.
	OutboundBytes int
	// WriteTimeout is how long a socket may take to accept what was
	// written to it before it is disconnected as too slow. Default 10s.
	// On a connection that opened on WebSocket the deadline is renewed
	// once half of it is used, so a stalled write fails after between
	// half of WriteTimeout and all of it (wsraw.go).
	WriteTimeout time.Duration
	// PresenceTTL is how long a node may miss heartbeats before the other
	// nodes sweep its sessions and announce its users offline. A crashed
	// node's users go offline within PresenceTTL + HeartbeatInterval.
	// Default 15s; it must exceed 2 × HeartbeatInterval.
	PresenceTTL time.Duration
	// HeartbeatInterval is how often a node heartbeats and sweeps dead
	// nodes. Default 5s.
	HeartbeatInterval time.Duration
	// NodeID names this server process in presence records and logs.
	// Default: the host name. A random suffix is added per Hub, so a
	// restarted process never inherits its predecessor's sessions.
	NodeID string
	// MaxPayloadBytes is the largest message a client may send (Engine.IO
	// maxHttpBufferSize). Default 64 KiB.
	MaxPayloadBytes int
	// MaxRoomsPerSocket bounds how many rooms one socket may be in.
	// Default 1000.
	MaxRoomsPerSocket int
	// ReplayPageSize is how many events subscribe reads per query while
	// replaying a room or a recovered session. Default and at most
	// eventstore.MaxReadLimit (1000): a 10,000-event recovery then takes
	// 10 reads instead of 20 (42–71 ms instead of 82–84 ms in
	// BenchmarkRecovery on a loaded machine).
	ReplayPageSize int
	// OpTimeout bounds the database work of one client event (a join's
	// membership check, user-online). Default 10s.
	OpTimeout time.Duration
	// PingInterval and PingTimeout are Engine.IO's heartbeat. Defaults 25s
	// and 20s, as in Socket.IO.
	PingInterval time.Duration
	PingTimeout  time.Duration
	// ConnectTimeout is how long a client may take to connect to the
	// namespace after the Engine.IO handshake. Default 45s.
	ConnectTimeout time.Duration
	// Rate limits each socket's client events; the zero value means the
	// defaults (see RateLimit).
	Rate RateLimit
	// RecoveryWindow is how long after a disconnect a client may still
	// recover its session (Socket.IO connection state recovery): its
	// rooms and every event it missed. Default 24h; at least 1s.
	RecoveryWindow time.Duration
	// GoroutineReads reads every WebSocket connection on a goroutine of
	// its own, as on systems other than Linux, instead of with the
	// process's epoll poller (wspoll.go), which holds no goroutine for an
	// idle connection. For comparison and diagnosis; default false.
	GoroutineReads bool
}

// WithDefaults returns c with zero fields replaced by their defaults. c may
// be nil.
func (c *Config) WithDefaults() Config {
	var out Config
	if c != nil {
		out = *c
	}
	if out.OutboundQueue <= 0 {
		out.OutboundQueue = 1024
	}
	if out.OutboundBytes <= 0 {
		out.OutboundBytes = 1 << 20
	}
	if out.WriteTimeout <= 0 {
		out.WriteTimeout = 10 * time.Second
	}
	if out.HeartbeatInterval <= 0 {
		out.HeartbeatInterval = 5 * time.Second
	}
	if out.PresenceTTL <= 0 {
		out.PresenceTTL = max(15*time.Second, 3*out.HeartbeatInterval)
	}
	if out.NodeID == "" {
		if h, err := os.Hostname(); err == nil && h != "" {
			out.NodeID = h
		} else {
			out.NodeID = "roomlogd"
		}
	}
	if out.MaxPayloadBytes <= 0 {
		out.MaxPayloadBytes = 64 << 10
	}
	if out.MaxRoomsPerSocket <= 0 {
		out.MaxRoomsPerSocket = 1000
	}
	if out.ReplayPageSize <= 0 {
		out.ReplayPageSize = eventstore.MaxReadLimit
	}
	if out.OpTimeout <= 0 {
		out.OpTimeout = 10 * time.Second
	}
	if out.PingInterval <= 0 {
		out.PingInterval = 25 * time.Second
	}
	if out.PingTimeout <= 0 {
		out.PingTimeout = 20 * time.Second
	}
	if out.ConnectTimeout <= 0 {
		out.ConnectTimeout = 45 * time.Second
	}
	if out.RecoveryWindow <= 0 {
		out.RecoveryWindow = 24 * time.Hour
	}
	return out
}

// validate checks a Config that has been through WithDefaults and names the
// offending field.
func (c Config) validate() error {
	var errs []error
	switch {
	case c.FrontendOrigin == "":
		errs = append(errs, errors.New("socketio: Config.FrontendOrigin is required"))
	case c.FrontendOrigin != "*":
		u, err := url.Parse(c.FrontendOrigin)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			errs = append(errs, fmt.Errorf("socketio: Config.FrontendOrigin %q must be an origin such as https://app.example.com", c.FrontendOrigin))
		}
	}
	if c.OutboundQueue < 2 {
		errs = append(errs, fmt.Errorf("socketio: Config.OutboundQueue must be at least 2, got %d", c.OutboundQueue))
	}
	if c.OutboundBytes < 1024 {
		errs = append(errs, fmt.Errorf("socketio: Config.OutboundBytes must be at least 1024, got %d", c.OutboundBytes))
	}
	if c.PresenceTTL <= 2*c.HeartbeatInterval {
		errs = append(errs, fmt.Errorf("socketio: Config.PresenceTTL (%s) must exceed twice Config.HeartbeatInterval (%s)", c.PresenceTTL, c.HeartbeatInterval))
	}
	if c.ReplayPageSize > eventstore.MaxReadLimit {
		errs = append(errs, fmt.Errorf("socketio: Config.ReplayPageSize must be at most %d, got %d", eventstore.MaxReadLimit, c.ReplayPageSize))
	}
	if c.MaxPayloadBytes < 1024 {
		errs = append(errs, fmt.Errorf("socketio: Config.MaxPayloadBytes must be at least 1024, got %d", c.MaxPayloadBytes))
	}
	if c.RecoveryWindow < time.Second {
		errs = append(errs, fmt.Errorf("socketio: Config.RecoveryWindow must be at least 1s, got %s", c.RecoveryWindow))
	}
	return errors.Join(errs...)
}
