// bench/peer.js is the side-by-side peer of cmd/roomlog-bench: a plain
// Node.js socket.io v4 server with no persistence, no auth and nothing
// else. Clients join a room with subscribe {room} (acked {ok: true});
// POST /publish?room=R&event=E with a JSON body emits emit(E, body) to room
// R and answers 204; with batch=1 the body is an array and each element is
// emitted in order. It listens on 127.0.0.1 (port from PORT, default 0)
// and prints {"port": N} on stdout once listening. Loopback only.
// ROOMLOG_PEER_RECOVERY=1 turns on socket.io's in-memory connection state
// recovery (2-minute window), used only for the bench's recovery catch-up:
// it makes every broadcast carry an offset and be buffered, so the other
// scenarios run without it.
"use strict";

const http = require("http");

const load = require("../load");

const { Server } = load("socket.io");

const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://127.0.0.1");
  if (req.method !== "POST" || url.pathname !== "/publish") {
    res.writeHead(404).end();
    return;
  }
  const room = url.searchParams.get("room");
  const event = url.searchParams.get("event") || "message";
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    let payload;
    try {
      payload = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch (e) {
      res.writeHead(400).end();
      return;
    }
    if (url.searchParams.get("batch") === "1") {
      if (!Array.isArray(payload)) {
        res.writeHead(400).end();
        return;
      }
      for (const p of payload) io.to(room).emit(event, p);
    } else {
      io.to(room).emit(event, payload);
    }
    res.writeHead(204).end();
  });
});
server.keepAliveTimeout = 120000;

const opts = { serveClient: false, transports: ["websocket"], cors: { origin: "*" } };
if (process.env.ROOMLOG_PEER_RECOVERY === "1") {
  opts.connectionStateRecovery = { maxDisconnectionDuration: 2 * 60 * 1000, skipMiddlewares: true };
}
const io = new Server(server, opts);
io.on("connection", (socket) => {
  // Memory: the request object is not needed after the handshake.
  socket.conn.request = null;
  socket.on("subscribe", (arg, ack) => {
    if (arg && typeof arg.room === "string") socket.join(arg.room);
    if (typeof ack === "function") ack({ ok: true });
  });
});

server.listen(Number(process.env.PORT || 0), "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + "\n");
});
process.on("SIGTERM", () => {
  io.close();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
});
