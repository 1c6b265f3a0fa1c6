package socketio

import "context"

// Crash stops h as if its process had died: heartbeats stop, its sockets
// are cut without presence goodbyes and its sessions stay in the database
// for the other nodes' sweepers.
func (h *Hub) Crash() {
	h.crashed.Store(true)
	h.Stop(context.Background())
}

// DisableGate turns the CONNECT-race workaround off for connections made
// from now on, to show what the library does without it.
func (h *Hub) DisableGate() { h.noGate.Store(true) }

// SetPendingMax lowers how many live events a replaying socket holds per
// room before it gives them up and reads them from the log. Call it before
// any socket connects.
func (h *Hub) SetPendingMax(n int) { h.pendingMax = n }
