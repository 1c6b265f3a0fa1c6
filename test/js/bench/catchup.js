// bench/catchup.js is the JavaScript client of cmd/roomlog-bench's scenario
// (e), catch-up of missed events: it does what a browser frontend does, with
// Node's fetch() (undici, the WHATWG fetch) and the official
// socket.io-client, and times it inside this process with
// performance.now() (its startup is not timed). One process serves every
// run of the scenario, one command at a time. It reads one JSON command per
// line on stdin and writes one JSON report per line on stdout; nothing else
// goes to stdout. Loopback only: the bench gives it 127.0.0.1 URLs.
//
// First it reports {t:"ready", node (process.version), client (the
// socket.io-client version)}.
//
// Commands ({"op": ...}):
//   rest    {base, room, n, page, bearer, warm}
//           Untimed first: one GET of the room's first `warm` events (parsed
//           and checked like the others), which opens the keep-alive
//           connection and runs this code once. Then timed: GET
//           base/api/v1/rooms/{room}/events?after=0&limit=page with
//           Authorization: Bearer <bearer>, await res.json() (the whole page
//           parsed, payloads included), every event checked (seqs 1.. in
//           order with no gap, the room, a non-empty id, event and payload),
//           and again with after=<last seq> while the page says more. The
//           clock stops when the last page is parsed and checked and n
//           events were read.
//           Reports {t:"rest", ms, jsonMs (time inside await res.json():
//           reading the body and parsing it), pages}.
//   recover {url, token, origin, room, n}
//           io(url, {transports: ["websocket"], auth: {token}, forceNew,
//           reconnection: false}), with Origin: origin as a browser sends
//           it; subscribe {room} with an ack; reports {t:"subscribed"}. The
//           bench then publishes one event; when it arrives the socket holds
//           an offset and its transport is closed from the client side
//           (socket.io.engine.close(): no DISCONNECT packet, so the server
//           keeps the session), reported as {t:"dropped"}. The bench
//           publishes n events and sends
//   go      {}  socket.connect(): the same socket reconnects, sending
//           {token, pid, offset} as socket.io-client does. Timed from that
//           call to the n-th missed event handed to the application; every
//           event is checked (payload i = 1..n in order; where the server
//           sends meta {room, seq}, the room and consecutive seqs), and
//           socket.recovered must be true. 100 ms later (anything more
//           would be a duplicate) reports {t:"recovered", ms, ackMs (the
//           "connect" event), got, recovered, extensions (the WebSocket
//           extensions negotiated)}.
//   abort   {}  ends a recover run early, if one is in progress (the bench
//           failed in between), then reports {t:"aborted"}.
//   exit
//
// A run ends with exactly one of its result line or {t:"error", message}.
// Every wait is bounded (30 s for the subscribe ack and the live event, 60
// s for the missed events).
"use strict";

const readline = require("readline");
const { performance } = require("perf_hooks");

const load = require("../load");

const { io } = load("socket.io-client");

const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const fail = (message) => out({ t: "error", message: String(message) });
const nonEmpty = (s) => typeof s === "string" && s !== "";

// readPages reads room from seq after, page by page, checking every event,
// and returns {got, pages, jsonMs}.
async function readPages(c, after, limit, untilOnePage) {
  let got = 0, pages = 0, jsonMs = 0;
  for (;;) {
    const url = `${c.base}/api/v1/rooms/${encodeURIComponent(c.room)}/events?after=${after}&limit=${limit}`;
    const res = await fetch(url, { headers: { Authorization: "Bearer " + c.bearer } });
    if (res.status !== 200) {
      throw new Error(`page after ${after}: ${res.status} ${(await res.text()).slice(0, 200)}`);
    }
    const tj = performance.now();
    const p = await res.json();
    jsonMs += performance.now() - tj;
    pages++;
    if (p.room !== c.room || p.reset) {
      throw new Error(`page after ${after}: room ${JSON.stringify(p.room)}, reset ${p.reset}`);
    }
    const evs = p.events;
    if (!Array.isArray(evs)) throw new Error(`page after ${after}: no events array`);
    for (let k = 0; k < evs.length; k++) {
      const e = evs[k];
      if (e.seq !== after + 1 || e.room !== c.room || !nonEmpty(e.id) || !nonEmpty(e.event) || e.payload === undefined || e.payload === null) {
        throw new Error(`seq ${e.seq} (room ${JSON.stringify(e.room)}, id ${JSON.stringify(e.id)}, event ${JSON.stringify(e.event)}, payload ${JSON.stringify(e.payload)}) after seq ${after}`);
      }
      after = e.seq;
      got++;
    }
    if (untilOnePage || !p.more || evs.length === 0) return { got, pages, jsonMs };
  }
}

async function rest(c) {
  // Untimed: open the connection and run this code once.
  const warm = await readPages(c, 0, Math.max(1, Math.min(c.warm || 100, c.n)), true);
  if (warm.got < 1) throw new Error("warm-up read no event");
  const t0 = performance.now();
  const r = await readPages(c, 0, c.page, false);
  const ms = performance.now() - t0;
  if (r.got !== c.n) throw new Error(`read ${r.got} events, want ${c.n}`);
  out({ t: "rest", ms, jsonMs: r.jsonMs, pages: r.pages });
}

let run = null; // the recover run in progress

function recover(c) {
  if (run) return fail("a recover run is already in progress");
  const s = io(c.url, {
    forceNew: true,
    reconnection: false,
    transports: ["websocket"],
    auth: { token: c.token },
    extraHeaders: c.origin ? { Origin: c.origin } : undefined,
  });
  const r = { s, phase: "connect", timer: null, got: 0, next: 1, lastSeq: -1, t0: 0, tAck: -1, tLast: -1, bad: null };
  run = r;
  const end = (report) => {
    if (run !== r) return;
    run = null;
    clearTimeout(r.timer);
    s.offAny();
    s.removeAllListeners();
    s.disconnect();
    out(report);
  };
  const deadline = (ms, what) => {
    clearTimeout(r.timer);
    r.timer = setTimeout(() => end({ t: "error", message: `${what} within ${ms / 1000} s (${r.got} missed events received)` }), ms);
  };
  r.end = end;
  deadline(30000, "no subscribe ack");
  s.on("connect_error", (e) => end({ t: "error", message: `connect_error (${r.phase}): ${e.message}` }));
  s.on("connect", () => {
    if (r.phase === "connect") {
      r.phase = "subscribe";
      s.emit("subscribe", { room: c.room }, (resp) => {
        if (!resp || resp.ok !== true) return end({ t: "error", message: "subscribe refused: " + JSON.stringify(resp) });
        r.phase = "live";
        deadline(30000, "the live event did not arrive");
        out({ t: "subscribed" });
      });
      return;
    }
    if (r.phase !== "replay") return end({ t: "error", message: `connected in phase ${r.phase}` });
    r.tAck = performance.now();
    if (!s.recovered) return end({ t: "error", message: "not recovered: socket.recovered is false after the reconnect" });
    maybeDone();
  });
  s.on("disconnect", (reason) => {
    if (r.phase === "dropping") {
      r.phase = "dropped";
      clearTimeout(r.timer); // the bench publishes now, then sends go
      out({ t: "dropped" });
      return;
    }
    end({ t: "error", message: `disconnected (${reason}) in phase ${r.phase}` });
  });
  const maybeDone = () => {
    if (r.bad || r.tAck < 0 || r.got < c.n || r.phase !== "replay") return;
    r.phase = "settle";
    setTimeout(() => {
      if (r.bad) return end({ t: "error", message: r.bad });
      if (r.got !== c.n) return end({ t: "error", message: `received ${r.got} of the ${c.n} missed events` });
      const ws = s.io.engine && s.io.engine.transport && s.io.engine.transport.ws;
      end({ t: "recovered", ms: r.tLast - r.t0, ackMs: r.tAck - r.t0, got: r.got, recovered: s.recovered === true,
        extensions: (ws && ws.extensions) || "" });
    }, 100);
  };
  s.on("x-bench", (payload, ...rest) => {
    if (r.phase === "live") {
      // The first live event: the socket now holds its offset. Drop the
      // transport as a network loss would (no DISCONNECT packet).
      r.phase = "dropping";
      deadline(10000, "the transport did not close");
      s.io.engine.close();
      return;
    }
    if (r.phase !== "replay" && r.phase !== "settle") {
      r.bad = r.bad || `x-bench event in phase ${r.phase}`;
      return;
    }
    const meta = rest.length >= 2 ? rest[0] : null; // roomlog: (payload, meta, offset); the peer: (payload, offset)
    if (!payload || payload.i !== r.next) {
      r.bad = r.bad || `event i=${payload && payload.i}, want ${r.next} (missing, duplicated or out of order)`;
    }
    if (meta && typeof meta.seq === "number") {
      if (meta.room !== c.room) r.bad = r.bad || `event of room ${meta.room}`;
      if (r.lastSeq >= 0 && meta.seq !== r.lastSeq + 1) r.bad = r.bad || `seq ${meta.seq} after ${r.lastSeq}`;
      r.lastSeq = meta.seq;
    }
    r.next = (payload && payload.i) + 1;
    if (++r.got === c.n) {
      r.tLast = performance.now();
      maybeDone();
    }
  });
}

function go() {
  const r = run;
  if (!r || r.phase !== "dropped") return fail(`go without a dropped socket (${r ? r.phase : "no run"})`);
  if (!r.s._pid || !r.s._lastOffset) return r.end({ t: "error", message: "no recovery session (pid or offset) to present" });
  r.phase = "replay";
  r.timer = setTimeout(() => r.end({ t: "error", message: `missed events not all received within 60 s (${r.got} received, connected ${r.tAck >= 0})` }), 60000);
  r.t0 = performance.now();
  r.s.connect();
}

const ops = {
  rest(c) { rest(c).catch((e) => fail(e && e.message || e)); },
  recover,
  go,
  abort() {
    if (run) run.end({ t: "error", message: "aborted by the bench" });
    out({ t: "aborted" });
  },
  exit() { process.exit(0); },
};

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  if (!line.trim()) return;
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (e) {
    return fail(`bad command: ${e.message}`);
  }
  const op = ops[cmd.op];
  if (!op) return fail(`unknown op ${cmd.op}`);
  try {
    op(cmd);
  } catch (e) {
    fail((e && e.stack) || e);
  }
}).on("close", () => process.exit(0));
out({ t: "ready", node: process.version, client: load("socket.io-client/package.json").version });
