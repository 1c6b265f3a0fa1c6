// faults/client.js runs many official socket.io-client sockets for roomlog's
// fault tests (cmd/roomlogd, build tag faults), each with the recovery a
// real frontend performs: on every (re)connect it re-joins its rooms and
// then catches up over REST from the last seq it holds, merging live events
// that arrive meanwhile; after a disconnect it connects to the next URL of
// its list (another node). It checks every delivery itself: per room the
// seqs must run 1, 2, 3, ... with nothing missing or repeated.
//
// Usage: node client.js < commands. One JSON command per line on stdin, one
// JSON report per line on stdout:
//   {"op":"add", "id", "urls":[...], "token", "user", "rooms":[...], "joins":[{event,args}]}
//        start a client; joins are emitted (with an ack) on every connect.
//   {"op":"report"}   → {"t":"report","clients":[...]} (see report())
//   {"op":"close","id"} close one client for good (no reconnect)
//   {"op":"lat"}      → {"t":"lat","lat":[ms, ...]}: live delivery latencies
//        (now - payload.ts, for events whose payload carries "ts", the publish
//        time in ms since the Unix epoch) of every client since the last
//        "lat"; they are then forgotten.
//   {"op":"exit"}
// Other reports: {"t":"ready"}, {"t":"error","message"}.
"use strict";

const readline = require("readline");

const load = require("../load");

const { io } = load("socket.io-client");
const http = require("http");

function out(o) {
  process.stdout.write(JSON.stringify(o) + "\n");
}

// getJSON fetches url with a bearer token, bounded by 5 s.
function getJSON(url, token) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers: { Authorization: "Bearer " + token }, timeout: 5000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c) => (body += c));
      res.on("end", () => {
        if (res.statusCode !== 200) return reject(new Error(`GET ${url}: ${res.statusCode} ${body.slice(0, 200)}`));
        try {
          resolve(JSON.parse(body));
        } catch (e) {
          reject(e);
        }
      });
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
  });
}

class Client {
  constructor(c) {
    this.id = c.id;
    this.urls = c.urls;
    this.token = c.token;
    this.user = c.user;
    this.joins = c.joins || [];
    this.rooms = c.rooms;
    this.last = {}; // room → last seq applied
    this.count = {}; // room → events applied
    for (const r of this.rooms) {
      this.last[r] = 0;
      this.count[r] = 0;
    }
    this.dups = 0; // the server pushed a seq of a room again (or went back) on one connection
    this.gaps = 0; // the applied seqs of a room skipped a number
    this.overlap = 0; // live events already fetched by the REST catch-up, dropped by seq
    this.liveLast = {}; // room → highest seq pushed live on the current connection
    this.urlIndex = 0;
    this.connects = 0;
    this.recoveries = 0;
    this.recoveryMs = [];
    this.lastError = null;
    this.state = "connecting";
    this.closed = false;
    this.lost = null; // when the connection was lost
    this.connect();
  }

  url() {
    return this.urls[this.urlIndex % this.urls.length];
  }

  connect() {
    if (this.closed) return;
    const url = this.url();
    this.state = "connecting";
    const s = io(url, { forceNew: true, reconnection: false, transports: ["websocket"], auth: { token: this.token }, timeout: 5000 });
    this.sock = s;
    this.buffer = null; // live events held while catching up
    this.liveLast = {};
    s.onAny((event, payload, meta) => this.onEvent(event, payload, meta));
    s.on("connect", () => this.onConnect(s, url));
    s.on("connect_error", (err) => {
      this.lastError = "connect_error " + err.message;
      this.retry(s);
    });
    s.on("disconnect", (reason) => {
      this.lastError = "disconnect " + reason;
      this.retry(s);
    });
  }

  // retry moves to the next URL after a short jitter.
  retry(s) {
    if (s !== this.sock || this.closed) return;
    s.removeAllListeners();
    s.close();
    if (this.lost === null) this.lost = Date.now();
    this.state = "down";
    this.urlIndex++;
    setTimeout(() => this.connect(), 100 + Math.floor(Math.random() * 300));
  }

  async onConnect(s, url) {
    this.connects++;
    this.buffer = [];
    this.state = "joining";
    try {
      for (const j of this.joins) {
        const resp = await s.timeout(5000).emitWithAck(j.event, ...(j.args || []));
        if (!resp || !resp.ok) throw new Error(`${j.event}: ${JSON.stringify(resp)}`);
      }
      this.state = "catching-up";
      const base = url.replace(/\/$/, "");
      for (const room of this.rooms) {
        for (let page = 0; page < 10000; page++) {
          const r = await getJSON(`${base}/api/v1/rooms/${encodeURIComponent(room)}/events?after=${this.last[room]}&limit=1000`, this.token);
          if (r.reset) throw new Error(`reset for ${room}`);
          for (const e of r.events) this.apply(room, e.seq, true);
          if (!r.more) break;
        }
      }
      if (s !== this.sock) return;
      const held = this.buffer;
      this.buffer = null;
      for (const e of held) this.apply(e.room, e.seq, true);
      this.state = "live";
      if (this.lost !== null && this.connects > 1) {
        this.recoveries++;
        this.recoveryMs.push(Date.now() - this.lost);
      }
      this.lost = null;
    } catch (e) {
      this.lastError = "recover " + String(e && e.message || e);
      this.retry(s);
    }
  }

  onEvent(event, payload, meta) {
    if (!meta || typeof meta.seq !== "number" || !(meta.room in this.last)) return;
    if (payload && typeof payload.ts === "number") lat.push(performance.timeOrigin + performance.now() - payload.ts);
    const pushed = this.liveLast[meta.room] || 0;
    if (meta.seq <= pushed) {
      this.dups++;
      this.lastError = `pushed ${meta.room} ${meta.seq} after ${pushed}`;
      return;
    }
    this.liveLast[meta.room] = meta.seq;
    if (this.buffer !== null) {
      this.buffer.push({ room: meta.room, seq: meta.seq });
      return;
    }
    this.apply(meta.room, meta.seq, false);
  }

  // apply takes seq of room. Seqs at or below last were fetched by a REST
  // catch-up already (a live push may trail it) and are skipped by seq, as
  // the frontend does; anything but last+1 is a gap.
  apply(room, seq, merging) {
    const last = this.last[room];
    if (seq <= last) {
      if (!merging) this.overlap++;
      return;
    }
    if (seq !== last + 1) {
      this.lastError = `${merging ? "catch-up" : "live"} jumped ${room} ${last} → ${seq}`;
      this.gaps++;
    }
    this.last[room] = seq;
    this.count[room]++;
  }

  report() {
    return {
      id: this.id, user: this.user, state: this.state, url: this.url(), last: this.last, count: this.count,
      dups: this.dups, gaps: this.gaps, overlap: this.overlap, connects: this.connects, recoveries: this.recoveries,
      recoveryMs: this.recoveryMs, lastError: this.lastError,
    };
  }

  close() {
    this.closed = true;
    this.state = "closed";
    if (this.sock) {
      this.sock.removeAllListeners();
      this.sock.close();
    }
  }
}

const clients = new Map();
let lat = []; // live delivery latencies (ms) of every client since the last "lat"

const ops = {
  add(c) {
    clients.set(c.id, new Client(c));
  },
  report() {
    out({ t: "report", clients: [...clients.values()].map((c) => c.report()) });
  },
  lat() {
    out({ t: "lat", lat: lat.map((x) => Math.round(x * 1000) / 1000) });
    lat = [];
  },
  close(c) {
    const cl = clients.get(c.id);
    if (cl) cl.close();
  },
  exit() {
    for (const c of clients.values()) c.close();
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
