package socketio

import (
	"maps"
	"sync"
	"sync/atomic"
)

// Stats is a snapshot of a Hub's counters, for metrics and tests.
type Stats struct {
	// Sockets is how many sockets are connected now.
	Sockets int
	// Connections counts sockets accepted since the Hub was created.
	Connections uint64
	// Rejected counts refused handshakes (bad credentials, foreign origin).
	Rejected uint64
	// JoinsDenied counts refused joins, subscribes, user-online and typing.
	JoinsDenied uint64
	// SlowDisconnects counts sockets the Hub disconnected as too slow.
	SlowDisconnects uint64
	// FramesEncoded counts logged events encoded for live delivery: one
	// per event with local recipients, however many sockets receive it.
	FramesEncoded uint64
	// FramesWritten counts frames handed to sockets.
	FramesWritten uint64
	// Replays counts subscribes with after (replay, then live).
	Replays uint64
	// ReplayRereads counts replays that held too many live events and
	// read them from the log instead.
	ReplayRereads uint64
	// Recovered counts sockets that recovered their session (connection
	// state recovery); RecoveryFailed counts recovery attempts answered
	// "not recoverable" (no or expired session, bad offset, database
	// error) or abandoned.
	Recovered, RecoveryFailed uint64
	// Disconnects counts disconnected sockets by reason, e.g. "transport
	// close", "client namespace disconnect", "forced server close" (what
	// the library's CONNECT race produces) or "slow client: ...".
	Disconnects map[string]uint64
}

type stats struct {
	connections, rejected, denied, slow, encoded, written, replays, rereads atomic.Uint64
	recovered, recoveryFailed                                               atomic.Uint64

	mu          sync.Mutex
	disconnects map[string]uint64
}

func (s *stats) disconnected(reason string) {
	s.mu.Lock()
	s.disconnects[reason]++
	s.mu.Unlock()
}

// Stats returns a snapshot of the Hub's counters.
func (h *Hub) Stats() Stats {
	h.mu.RLock()
	n := len(h.conns)
	h.mu.RUnlock()
	h.stats.mu.Lock()
	d := maps.Clone(h.stats.disconnects)
	h.stats.mu.Unlock()
	return Stats{
		Sockets:         n,
		Connections:     h.stats.connections.Load(),
		Rejected:        h.stats.rejected.Load(),
		JoinsDenied:     h.stats.denied.Load(),
		SlowDisconnects: h.stats.slow.Load(),
		FramesEncoded:   h.stats.encoded.Load(),
		FramesWritten:   h.stats.written.Load(),
		Replays:         h.stats.replays.Load(),
		ReplayRereads:   h.stats.rereads.Load(),
		Recovered:       h.stats.recovered.Load(),
		RecoveryFailed:  h.stats.recoveryFailed.Load(),
		Disconnects:     d,
	}
}
