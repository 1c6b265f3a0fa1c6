package httpapi

import (
	"fmt"
	"time"
)

// MaxBatchEvents is the most events one publish request may carry.
const MaxBatchEvents = 1000

// MaxCatchUpRooms is the most rooms one multi-room catch-up may name.
const MaxCatchUpRooms = 100

// MaxPresenceUsers is the most users one presence query may name.
const MaxPresenceUsers = 100

// DefaultReadLimit is the catch-up and audit page size when the request
// names none.
const DefaultReadLimit = 100

// MaxReadLimit is the largest page size an audit request may ask for.
const MaxReadLimit = 1000

// MaxCatchUpLimit is the largest page size a catch-up request may ask for:
// a client that was away reads 10,000 events in one request.
const MaxCatchUpLimit = 10_000

// maxCatchUpRows bounds the rows one multi-room catch-up returns in all:
// the per-room limit shrinks to fit (more: true tells the client to ask
// again).
const maxCatchUpRows = 10_000

// maxCatchUpBytes bounds the payload bytes of one catch-up answer (one
// room's page, or all the rooms of a multi-room catch-up together, shared
// equally): a page stops early, with more: true, rather than grow past it.
// Each page still holds at least one event. With payloads of up to 64 KiB,
// a row bound alone would let one answer reach hundreds of MiB.
const maxCatchUpBytes = 4 << 20

// maxCatchUpBody bounds a multi-room catch-up request body.
const maxCatchUpBody = 64 << 10

// envelopeOverhead is what one event may add to a publish body besides its
// payload: the event name, up to 64 rooms and the idempotency key.
const envelopeOverhead = 8 << 10

// Config tunes a Server. Its zero value means "use the defaults".
type Config struct {
	// MaxPayloadBytes caps one event's payload, as sent. A larger payload
	// answers 413. Default 64 KiB.
	MaxPayloadBytes int
	// MaxBodyBytes caps a publish request body; the body is never read past
	// it, and a larger body answers 413. Default: room for a full batch,
	// MaxBatchEvents × (MaxPayloadBytes + 8 KiB).
	MaxBodyBytes int
	// AuditStatementTimeout is the statement timeout of every audit query
	// (each page of an export is one query). Default 10s.
	AuditStatementTimeout time.Duration
	// RetryAfter is the Retry-After sent with 503 answers, rounded up to
	// whole seconds. Default 2s.
	RetryAfter time.Duration
	// ExportPageRows is how many rows an export reads per query; it bounds
	// the export's memory. Default 500.
	ExportPageRows int
}

// WithDefaults returns c with zero fields replaced by their defaults. c may
// be nil.
func (c *Config) WithDefaults() Config {
	var out Config
	if c != nil {
		out = *c
	}
	if out.MaxPayloadBytes == 0 {
		out.MaxPayloadBytes = 64 << 10
	}
	if out.MaxBodyBytes == 0 && out.MaxPayloadBytes > 0 {
		out.MaxBodyBytes = MaxBatchEvents * (out.MaxPayloadBytes + envelopeOverhead)
	}
	if out.AuditStatementTimeout == 0 {
		out.AuditStatementTimeout = 10 * time.Second
	}
	if out.RetryAfter == 0 {
		out.RetryAfter = 2 * time.Second
	}
	if out.ExportPageRows == 0 {
		out.ExportPageRows = 500
	}
	return out
}

// validate checks a defaulted Config and names the offending field.
func (c Config) validate() error {
	switch {
	case c.MaxPayloadBytes < 2:
		return fmt.Errorf("Config.MaxPayloadBytes must be at least 2, got %d", c.MaxPayloadBytes)
	case c.MaxBodyBytes < c.MaxPayloadBytes:
		return fmt.Errorf("Config.MaxBodyBytes (%d) must be at least Config.MaxPayloadBytes (%d)", c.MaxBodyBytes, c.MaxPayloadBytes)
	case c.AuditStatementTimeout < time.Millisecond:
		return fmt.Errorf("Config.AuditStatementTimeout must be at least 1ms, got %s", c.AuditStatementTimeout)
	case c.RetryAfter < 0:
		return fmt.Errorf("Config.RetryAfter must not be negative, got %s", c.RetryAfter)
	case c.ExportPageRows < 1 || c.ExportPageRows > MaxReadLimit:
		return fmt.Errorf("Config.ExportPageRows must be 1 to %d, got %d", MaxReadLimit, c.ExportPageRows)
	}
	return nil
}
