package socketio

import (
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
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
// library's room tables hold only what the library joins itself (each
// socket's own id, which Socket.Emit goes through when recovery is on);
// the Hub's rooms live in the Hub alone, which spares every socket a second
// copy of its rooms there (about 1.2 KiB per idle socket: a set per room
// and per socket, in sync.Map-like tables that hold each key twice), and SocketRooms
// (Socket.Rooms) adds them from the Hub. So a library broadcast to one of
// the Hub's rooms (Server.To) reaches nobody: fan out with Hub.Emit.
type adapter struct {
	socket.Adapter
	h *Hub
}

// SocketRooms implements socket.Adapter: the library's rooms of socket id
// plus the Hub's.
func (a *adapter) SocketRooms(id socket.SocketId) *types.Set[socket.Room] {
	rooms := types.NewSet[socket.Room]()
	if own := a.Adapter.SocketRooms(id); own != nil {
		// The library's own set: copied, never added to.
		rooms.Add(own.Keys()...)
	}
	a.h.mu.RLock()
	c := a.h.conns[id]
	a.h.mu.RUnlock()
	if c != nil {
		for _, r := range c.roomNames() {
			rooms.Add(socket.Room(r))
		}
	}
	return rooms
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
