package socketio

import (
	"encoding/json"
	"net/http"
	"sync"

	gorilla "github.com/gorilla/websocket"
	"github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/engine/v3/config"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// The engine upgrades a WebSocket request with a gorilla Upgrader it builds
// for each request (engine v3.0.6, server.go HandleUpgrade), with 1 KiB
// read and write buffers and no write buffer pool: every connection keeps
// both for life, although rawWebSocket never writes through gorilla's
// buffer and its reader only peeks at frame headers through the other.
// Nothing in the engine's options sets them.
//
// So a request that opens a new session on WebSocket (no sid: every
// official client with transports: ["websocket"]) is upgraded here, the
// way HandleUpgrade does it, through the engine's own middlewares, Verify
// and Handshake, with an Upgrader whose write buffer comes from a pool
// while a write lasts and whose read buffer is small. Everything else
// (polling, and a polling session's upgrade to WebSocket) goes to the
// engine unchanged.
//
// Measured with cmd/roomlog-bench scenario d: see docs/benchmarks.md.

// upgradeReadBuffer is a connection's read buffer: gorilla peeks at most a
// frame header (14 bytes) or a control frame (125) through it, and reads
// larger payloads past it.
const upgradeReadBuffer = 256

// upgradeWriteBuffers lends gorilla a write buffer only while it writes a
// message itself (a close frame); rawWebSocket writes its frames directly.
var upgradeWriteBuffers sync.Pool

// newUpgrader returns the Upgrader for new WebSocket sessions. The origin
// check is the engine's: the CORS origin when one is configured.
func newUpgrader(opts config.ServerOptionsInterface) *gorilla.Upgrader {
	u := &gorilla.Upgrader{
		ReadBufferSize:    upgradeReadBuffer,
		WriteBufferPool:   &upgradeWriteBuffers,
		EnableCompression: opts.PerMessageDeflate() != nil,
		// The response is written by refuseRequest, as in the engine.
		Error: func(http.ResponseWriter, *http.Request, int, error) {},
	}
	if cors := opts.Cors(); cors != nil && cors.Origin != nil {
		u.CheckOrigin = func(r *http.Request) bool {
			origin := r.Header.Get("Origin")
			return origin == "" || cors.IsOriginAllowed(origin, cors.Origin)
		}
	}
	return u
}

// opensWebSocket reports whether r opens a new Engine.IO session on
// WebSocket, the requests serveUpgrade handles.
func opensWebSocket(r *http.Request) bool {
	if !gorilla.IsWebSocketUpgrade(r) {
		return false
	}
	q := r.URL.Query()
	return q.Get("transport") == transports.WEBSOCKET && !q.Has("sid")
}

// serveUpgrade opens a new session on WebSocket as the engine's
// HandleUpgrade and onWebSocket do, with the Hub's Upgrader.
func (h *Hub) serveUpgrade(w http.ResponseWriter, r *http.Request) {
	ctx := types.NewHttpContext(w, r)
	h.eio.ApplyMiddlewares(ctx, func(err error) {
		// Middleware may resume after the response ended or the
		// request was canceled.
		if ctx.IsDone() || ctx.Context().Err() != nil {
			return
		}
		code, errCtx := engine.BAD_REQUEST, map[string]any{"name": "MIDDLEWARE_FAILURE"}
		if err == nil {
			code, errCtx = h.eio.Verify(ctx, true)
		}
		if code != nil {
			h.refuseUpgrade(ctx, code, errCtx)
			return
		}
		w := ctx.Response()
		if h.poller != nil {
			w = pollHijacker{ResponseWriter: w, p: h.poller, limit: h.cfg.MaxPayloadBytes}
		}
		conn, err := h.upgrader.Upgrade(w, ctx.Request(), ctx.ResponseHeaders().All())
		if err != nil {
			h.refuseRequest(ctx, engine.BAD_REQUEST, map[string]any{"name": "UPGRADE_FAILURE"})
			return
		}
		conn.SetReadLimit(int64(h.cfg.MaxPayloadBytes))
		ctx.Websocket = &types.WebSocketConn{EventEmitter: types.NewEventEmitter(), Conn: conn}
		if code, t := h.eio.Handshake(transports.WEBSOCKET, ctx); t == nil {
			closeUpgraded(ctx, code, nil)
		}
	})
}

// refuseUpgrade answers an upgrade refused before it was made as the
// engine does: the "connection_error" event, then a 400 whose body is the
// message.
func (h *Hub) refuseUpgrade(ctx *types.HttpContext, code *types.CodeMessage, errCtx map[string]any) {
	h.eio.Emit("connection_error", &types.ErrorMessage{CodeMessage: code, Req: ctx, Context: errCtx})
	_ = ctx.SetStatusCode(http.StatusBadRequest)
	_, _ = ctx.Write([]byte(refusalMessage(code, errCtx)))
}

// refuseRequest answers a failed upgrade as the engine does for a request
// it cannot serve: the "connection_error" event, then a JSON error.
func (h *Hub) refuseRequest(ctx *types.HttpContext, code *types.CodeMessage, errCtx map[string]any) {
	h.eio.Emit("connection_error", &types.ErrorMessage{CodeMessage: code, Req: ctx, Context: errCtx})
	ctx.ResponseHeaders().Set("Content-Type", "application/json")
	_ = ctx.SetStatusCode(http.StatusBadRequest)
	b, err := json.Marshal(types.CodeMessage{Code: code.Code, Message: refusalMessage(code, errCtx)})
	if err != nil {
		b = []byte(`{"code":400,"message":"Bad request"}`)
	}
	_, _ = ctx.Write(b)
}

// closeUpgraded ends an upgraded connection whose handshake failed with a
// close frame that carries the reason, as the engine does.
func closeUpgraded(ctx *types.HttpContext, code *types.CodeMessage, errCtx map[string]any) {
	msg := gorilla.FormatCloseMessage(gorilla.CloseNormalClosure, refusalMessage(code, errCtx))
	_ = ctx.Websocket.WriteMessage(gorilla.CloseMessage, msg)
	_ = ctx.Websocket.Close()
}

// refusalMessage is code's message, or errCtx's "message" when it has one
// (AllowRequest's error).
func refusalMessage(code *types.CodeMessage, errCtx map[string]any) string {
	if m, ok := errCtx["message"].(string); ok {
		return m
	}
	if code == nil {
		return "Bad request"
	}
	return code.Message
}
