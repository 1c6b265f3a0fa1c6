package socketio

import (
	"github.com/zishang520/socket.io/servers/socket/v3"
)

// adapterBuilder builds roomlog's Socket.IO adapter for a namespace.
type adapterBuilder struct{}

// New implements socket.AdapterConstructor.
func (adapterBuilder) New(nsp socket.Namespace) socket.Adapter {
	a := &adapter{Adapter: socket.MakeAdapter()}
	a.Prototype(a)
	a.Construct(nsp)
	return a
}

// adapter is the library's in-memory adapter, owned by roomlog so that
// durable connection-state recovery can be added by overriding
// PersistSession and RestoreSession (backed by the log) without changing
// how the Hub is built. The Hub does not broadcast through the adapter:
// live delivery uses the Hub's own index and per-socket queues. The
// adapter's rooms mirror the Hub's (conn.joinLibrary), so a persisted
// session names the socket's rooms.
type adapter struct {
	socket.Adapter
}
