// harness.js drives official socket.io-client sockets for roomlog's Go
// integration tests (transport/socketio). It reads one JSON command per line
// on stdin and writes one JSON report per line on stdout. Nothing else is
// written to stdout.
//
// Commands ({"op": ...}):
//   connect    {id, url, opts, onConnect: [{event, args, req?}]}
//              io(url, {forceNew: true, reconnection: false, ...opts}).
//              onConnect events are emitted inside the "connect" handler, as
//              the product's client does; with req they take an ack.
//   emit       {id, event, args, req?}   with req: ack reported as "ack".
//   state      {id}  reports {t:"state", id, pid, offset}: the socket's
//              recovery session as socket.io-client keeps it.
//   disconnect {id}
//   drop       {id, url?}  closes the socket's Engine.IO transport from the
//              client side (socket.io.engine.close()), as a network loss
//              would; with url the Manager reconnects there (another server
//              process). Needs opts.reconnection: true to come back.
//   swarm      {id, url, opts, tokens: [...], event, args: [...]}
//              one socket per token (auth.token), each emitting event with an
//              ack inside its "connect" handler; args may use the string
//              "$i" for the socket's index. Reports "swarm" when every ack
//              arrived (or a socket failed), with counts.
//   exit
//
// Reports ({"t": ...}): ready, connect {id, sid, transport, recovered}, upgrade {id,
// transport}, connect_error {id, message, data}, disconnect {id, reason},
// event {id, event, args}, ack {id, req, resp}, swarm {...}, error {message}.
"use strict";

const readline = require("readline");

const load = require("./load");

const { io } = load("socket.io-client");

const sockets = new Map();

function out(o) {
  process.stdout.write(JSON.stringify(o) + "\n");
}

function attach(id, s) {
  s.on("connect", () => {
    const engine = s.io.engine;
    out({ t: "connect", id, sid: s.id, transport: engine.transport.name, recovered: !!s.recovered });
  });
  s.io.on("open", () => {
    s.io.engine.on("upgrade", (tr) => out({ t: "upgrade", id, transport: tr.name }));
  });
  // Each Engine.IO ping the client answered (the Manager's "ping").
  s.io.on("ping", () => out({ t: "ping", id }));
  s.on("connect_error", (err) => out({ t: "connect_error", id, message: err.message, data: err.data ?? null }));
  s.on("disconnect", (reason) => out({ t: "disconnect", id, reason }));
  // session-offset only moves the client's recovery offset.
  s.onAny((event, ...args) => { if (event !== "session-offset") out({ t: "event", id, event, args }); });
}

function emit(id, s, e) {
  const args = e.args || [];
  if (e.req !== undefined && e.req !== null) {
    s.emit(e.event, ...args, (resp) => out({ t: "ack", id, req: e.req, resp }));
  } else {
    s.emit(e.event, ...args);
  }
}

const ops = {
  connect(c) {
    const opts = Object.assign({ forceNew: true, reconnection: false }, c.opts || {});
    // With session {pid, offset}, the socket presents that recovery
    // session in its first CONNECT (as a stolen pid would be).
    if (c.session) opts.autoConnect = false;
    const s = io(c.url, opts);
    sockets.set(c.id, s);
    attach(c.id, s);
    for (const e of c.onConnect || []) {
      s.on("connect", () => emit(c.id, s, e));
    }
    if (c.session) {
      s._pid = c.session.pid;
      s._lastOffset = c.session.offset;
      s.connect();
    }
  },
  state(c) {
    const s = sockets.get(c.id);
    if (!s) return out({ t: "error", message: `no socket ${c.id}` });
    out({ t: "state", id: c.id, pid: s._pid ?? null, offset: s._lastOffset ?? null });
  },
  emit(c) {
    const s = sockets.get(c.id);
    if (!s) return out({ t: "error", message: `no socket ${c.id}` });
    emit(c.id, s, c);
  },
  disconnect(c) {
    const s = sockets.get(c.id);
    if (s) s.disconnect();
  },
  drop(c) {
    const s = sockets.get(c.id);
    if (!s) return out({ t: "error", message: `no socket ${c.id}` });
    if (c.url) s.io.uri = c.url;
    if (s.io.engine) s.io.engine.close();
  },
  swarm(c) {
    const n = c.tokens.length;
    let acked = 0, failed = 0, okAcks = 0, connectErrors = 0, disconnects = 0, done = false;
    const errors = [];
    const started = Date.now();
    const finish = () => {
      if (done || acked + failed < n) return;
      done = true;
      out({ t: "swarm", id: c.id, n, acked, okAcks, failed, connectErrors, disconnects, errors: errors.slice(0, 10), ms: Date.now() - started });
    };
    c.tokens.forEach((token, i) => {
      const opts = Object.assign({ forceNew: true, reconnection: false }, c.opts || {}, { auth: { token } });
      const s = io(c.url, opts);
      sockets.set(`${c.id}/${i}`, s);
      let settled = false;
      const settle = (ok, err) => {
        if (settled) return;
        settled = true;
        if (ok) acked++; else { failed++; if (err) errors.push(err); }
        finish();
      };
      s.on("connect", () => {
        const args = (c.args || []).map((a) => (a === "$i" ? String(i) : a));
        s.emit(c.event, ...args, (resp) => {
          if (resp && resp.ok) okAcks++; else errors.push(JSON.stringify(resp));
          settle(true);
        });
      });
      s.on("connect_error", (err) => { connectErrors++; settle(false, `connect_error ${err.message}`); });
      s.on("disconnect", (reason) => { disconnects++; settle(false, `disconnect ${reason}`); });
    });
  },
  exit() {
    for (const s of sockets.values()) s.disconnect();
    process.exit(0);
  },
};

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
  if (!line.trim()) return;
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (e) {
    return out({ t: "error", message: `bad command: ${e.message}` });
  }
  const op = ops[cmd.op];
  if (!op) return out({ t: "error", message: `unknown op ${cmd.op}` });
  try {
    op(cmd);
  } catch (e) {
    out({ t: "error", message: String(e && e.stack || e) });
  }
});
rl.on("close", () => process.exit(0));
out({ t: "ready" });
