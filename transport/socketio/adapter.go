package socketio

import (
	"github.com/zishang520/socket.io/servers/socket/v3"
)

// adapterBuilder builds roomlog's Socket.IO adapter for a namespace.
type adapterBuilder struct{ h *Hub }

// New implements socket.AdapterConstructor.
func (b adapterBuilder) New(nsp socket.Namespace) socket.Adapter {
	a := &adapter{Adapter: socket.MakeAdapter(), h: b.h}
	a.Prototype(a)
	a.Construct(nsp)
	return a
}

// adapter is the library's in-memory adapter, with connection state
// recovery backed by the database (see recovery.go). The Hub does not
// broadcast through the adapter: live delivery uses the Hub's own index and
// per-socket queues, so the library's packet buffer is never used. The
// adapter's rooms mirror the Hub's (conn.joinLibrary).
type adapter struct {
	socket.Adapter
	h *Hub
}

// PersistSession is called by the library when a socket closes for a
// recoverable reason. The Hub persists sessions on connect and on every
// join and leave, and starts the window in its own disconnect handling, so
// there is nothing left to do here: a process killed without this call
// loses nothing.
func (a *adapter) PersistSession(*socket.SessionToPersist) {}

// RestoreSession loads the session pid from the database; missed events
// are not returned as packets (the library would send them before the
// middlewares authenticate the handshake) but replayed by the Hub once the
// socket is authenticated and its rooms re-authorised.
func (a *adapter) RestoreSession(pid socket.PrivateSessionId, offset string) (*socket.Session, error) {
	return a.h.restoreSession(pid, offset)
}
