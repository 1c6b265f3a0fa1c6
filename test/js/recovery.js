// recovery.js drives many official socket.io-client sockets for roomlog's
// connection-state-recovery tests (cmd/roomlogd, -tags faults). It reads one
// JSON command per line on stdin and writes one JSON report per line.
//
// Commands: {"op":"connect", url, clients:[{id, user, token}]}: one socket
// per client with reconnection on; each joins its user room (with an ack)
// on its first connect only: after that it relies on recovery alone.
// {"op":"report"}: reports {t:"report", clients:[...]} with, per client,
// connects, recovered connects, unrecovered reconnects, per-room last seq
// and count, duplicates, gaps, and the time from each disconnect to the
// recovered connect. {"op":"exit"}.
"use strict";

const readline = require("readline");

const load = require("./load");

const { io } = load("socket.io-client");
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const clients = [];

function start(url, c) {
  const st = { id: c.id, user: c.user, connects: 0, recovered: 0, unrecovered: 0, joined: false,
    last: {}, count: {}, dups: 0, gaps: 0, recoveryMs: [], lastError: null, connected: false };
  clients.push(st);
  const s = io(url, { forceNew: true, transports: ["websocket"], auth: { token: c.token },
    reconnection: true, reconnectionDelay: 200, reconnectionDelayMax: 1000, randomizationFactor: 0.5 });
  st.socket = s;
  let downAt = 0;
  s.on("connect", () => {
    st.connects++;
    st.connected = true;
    if (st.connects === 1) {
      s.emit("join-user-room", c.user, (resp) => {
        if (resp && resp.ok) st.joined = true; else st.lastError = "join: " + JSON.stringify(resp);
      });
      return;
    }
    if (s.recovered) {
      st.recovered++;
      if (downAt) st.recoveryMs.push(Date.now() - downAt);
    } else {
      st.unrecovered++;
    }
  });
  s.on("disconnect", () => { st.connected = false; downAt = Date.now(); });
  s.on("connect_error", (e) => { st.lastError = "connect_error: " + e.message; });
  s.onAny((event, ...args) => {
    if (event === "session-offset") return;
    const meta = args[1];
    if (!meta || typeof meta.seq !== "number") return;
    const r = meta.room;
    const last = st.last[r];
    if (last !== undefined) {
      if (meta.seq <= last) { st.dups++; return; }
      if (meta.seq !== last + 1) st.gaps++;
    }
    st.last[r] = meta.seq;
    st.count[r] = (st.count[r] || 0) + 1;
  });
}

const ops = {
  connect(cmd) { for (const c of cmd.clients) start(cmd.url, c); },
  report() {
    out({ t: "report", clients: clients.map(({ socket, ...rest }) => rest) });
  },
  exit() { for (const c of clients) c.socket.disconnect(); process.exit(0); },
};

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  if (!line.trim()) return;
  try {
    const cmd = JSON.parse(line);
    const op = ops[cmd.op];
    if (!op) return out({ t: "error", message: `unknown op ${cmd.op}` });
    op(cmd);
  } catch (e) {
    out({ t: "error", message: String((e && e.stack) || e) });
  }
}).on("close", () => process.exit(0));
out({ t: "ready" });
