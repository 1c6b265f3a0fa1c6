// Package socketio is roomlog's Socket.IO endpoint: authenticated
// handshakes, authorised rooms, every client event of the product spec,
// live push of the event log, presence and typing indicators. The official
// socket.io-client v4 connects to it unchanged, over WebSocket or polling
// (with upgrade), on the REST API's port at /socket.io/.
//
// # Overview
//
// A Hub wraps a zishang520/socket.io v3 server. Its namespace middleware
// authenticates every handshake through an Authenticator (auth.Authenticator
// reads auth.token, then "Authorization: Bearer", then a cookie); a refused
// handshake gets connect_error "unauthorized" with data {code: 401}.
// Handshakes from an Origin other than Config.FrontendOrigin are refused,
// and CORS allows that origin with credentials.
//
// # Rooms
//
// join-user-room, join-request-room, join-seller-room, join-buyer-room,
// join-chat-room, user-online and subscribe {room, after?} are authorised by
// domain.CanJoin, with membership of shared rooms from HubParams.Members
// (in roomlogd, projector.MembershipView: the log's membership model plus
// the membership events it has not applied yet). Every authenticated socket is in
// global. Each client event accepts an optional trailing ack, answered
// {ok: true} or {ok: false, error: {code, message}}; a refusal reads "not
// allowed" whether or not the room exists, and is logged.
//
// # Delivery
//
// Live delivery is a projector on the log's tail: projector.Fanout calls
// Hub.Emit for every committed event, in tail order, and the Hub pushes it
// to its local sockets in the event's room as emit(event, payload, meta),
// meta being {room, seq, id, at}. The frame is encoded once per event and
// shared by every recipient. Each socket has a bounded outbound queue
// (Config.OutboundQueue frames, Config.OutboundBytes bytes), drained while
// it has work by a writer loop on a shared pool of goroutines: on a
// connection that opened on WebSocket the loop writes the queued frames
// itself, in one write (wsraw.go); on polling, and on a WebSocket upgraded
// from it, it hands them to the engine and waits until the transport has
// taken them. A socket whose queue overflows, or that takes nothing for
// Config.WriteTimeout (half of it to all of it on a WebSocket-opened
// connection), is disconnected with a "slow client" reason and catches up
// by replay. No socket ever delays another, and Emit
// never blocks.
//
// subscribe with after replays the room's events after that seq through the
// same queue and then hands over to live delivery with no gap and no
// duplicate: the socket joins the room's live index before the first
// read, live events wait while it replays, and the hand-off skips those
// already replayed.
//
// # Presence and typing
//
// user-online (for the token's own user only) registers a presence session
// in PostgreSQL (Presence, implemented by eventstore). A user's first
// session anywhere and the end of their last one append user-status-change
// to room global through the log, under a per-user lock, so several tabs,
// devices and server processes announce each transition exactly once. Each
// Hub heartbeats its node; surviving nodes sweep a node silent for
// Config.PresenceTTL and announce its users offline. typing-start and
// typing-stop (own user, chat rooms the user belongs to) send user-typing
// to the rest of the room: volatile, never logged, carried to the other
// nodes by PostgreSQL NOTIFY (Volatile) when configured.
//
// # Connection state recovery
//
// socket.io-client v4.6+ recovers a dropped connection on its own: it
// sends its private session id and the offset of the last event it got,
// and exposes socket.recovered. The Hub keeps sessions in PostgreSQL
// (SessionStore, implemented by eventstore) and makes each logged event's
// log Position ("txid:id") its offset, the last argument of the frame:
// emit(event, payload, meta, offset). A new socket also receives
// emit("session-offset", offset) at once. Within Config.RecoveryWindow,
// on any process, after a graceful stop or a SIGKILL, a recovering socket
// gets its rooms back (re-authorised for the re-authenticated token, whose
// user must own the session) and every event of those rooms it missed, in
// order and exactly once, then live events. Otherwise recovered is false
// and the client follows the spec's reconnect policy. Events that a
// subscribe replays from a room's history carry no offset and are not
// recovered (a client resubscribes). See recovery.go for why recovery can
// neither lose nor repeat an event.
//
// # Two races in the library
//
// zishang520/socket.io v3.0.6 replies to a CONNECT before it registers the
// socket, so a client event sent right after connecting can arrive first
// and make the library close the connection ("invalid state"). The Hub
// holds such packets on the connection's read path until the socket is
// registered; see gate.go.
//
// Its polling transport can also send twice on one poll while a client
// upgrades to WebSocket, which closes the connection ("polling write
// error") under load. The Hub's polling transport serialises those sends;
// see polling.go.
//
// Both are worked around from the outside, through the library's own
// extension points (listeners and a transport constructor). The library's
// shared module is built from a patched copy (transport/third_party/
// socket.io-v3, see its PATCHES.md) for memory only: its event emitter
// and timers; its behaviour is unchanged.
//
// # Reading connections
//
// A connection that opens on WebSocket is written by rawWebSocket
// (wsraw.go) and, on Linux, read by the process's epoll poller
// (wspoll.go): an idle connection holds no goroutine, and a burst of
// client frames is read, checked (wsframe.go) and handed to the engine in
// order on a short-lived goroutine. Config.GoroutineReads, TLS
// connections and other systems read each connection on a goroutine of
// its own.
package socketio
