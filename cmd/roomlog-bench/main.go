// Command roomlog-bench measures roomlog.
//
// "append" measures durable append throughput and latency under 1, 8 and
// 64 concurrent publishers, for single events and batches, next to this
// machine's raw ceiling measured in the same run: the same rows inserted as
// multi-row INSERTs into a plain table with no sequence logic, no hash
// chain and no idempotency.
//
// "scenarios" drives servers as real clients do: it builds and starts
// roomlogd itself (a -tags bench build, on a temporary database), connects
// Socket.IO v4 sockets over raw WebSockets, subscribes them, publishes
// through the REST API at a fixed rate (open loop, latency from the
// scheduled send time) and reads catch-up pages. It runs the same cells
// against a plain Node.js socket.io v4 server with no persistence
// (test/js/bench/peer.js) and against roomlogd with synchronous_commit off
// (NOT durable; ROOMLOG_UNSAFE_ASYNC_COMMIT, honoured only by bench
// builds), and prints tables with the ratios:
//
//	(a) 1,000 rooms x 10 subscribers at 1,000 publishes/s
//	(b) 1 room x 1,000 subscribers at 10/s and 100/s
//	(c) the highest sustained deliveries/s with p99 < 100 ms and nothing
//	    lost (100 rooms x 10 subscribers, rate stepped up, then bisected)
//	(d) RSS per idle connection, 10,000 connections (vs the Node peer)
//	(e) catch-up of 10,000 missed events via REST pages of up to 10,000 and via
//	    Socket.IO connection state recovery, each with the tool's Go client
//	    and with a JS client (test/js/bench/catchup.js: Node's fetch and
//	    socket.io-client)
//	(f) reconnect storm: 5,000 clients recover after roomlogd is SIGKILLed
//
// "soak" runs one long cell on a durable roomlogd (50 rooms x 10
// subscribers at 100 publishes/s for 60 s by default, past the first
// heartbeat's 45 s) and exits non-zero unless every publish was
// acknowledged and every subscriber got every event exactly once. CI runs
// it (`make soak`).
//
// "all" runs append, then scenarios.
//
// Usage:
//
//	roomlog-bench append [-duration 4s] [-rooms 1000] [-rate 1000] [-batch 10] [-writers 0]
//	    [-only MODE] [-async-commit]
//	roomlog-bench scenarios [-duration 5s] [-warmup 1s] [-rooms 1000] [-subs 10] [-rate 1000]
//	    [-hot-subs 1000] [-hot-rates 10,100] [-c-rooms 100] [-c-subs 10] [-c-start 100]
//	    [-c-max 20000] [-c-factor 2] [-c-bisect 5] [-c-confirm 1] [-c-p99 100ms] [-c-duration 3s]
//	    [-catchup 10000] [-catchup-page 10000] [-catchup-reps 5] [-idle-conns 10000] [-idle-gc=true] [-idle-profile DIR]
//	    [-storm-clients 5000] [-storm-rooms 100] [-storm-events 1000] [-targets roomlog,node,async,tail]
//	    [-only abcdef] [-repeat 1]
//	roomlog-bench soak [-duration 60s] [-rooms 50] [-subs 10] [-rate 100]
//	roomlog-bench all
//
// It uses DATABASE_URL (default: the local server) and works in its own
// databases there. append uses roomlog_bench, which it drops and recreates
// at the start and leaves afterwards; ROOMLOG_BENCH_DB_SUFFIX (letters,
// digits and _ only; anything else is removed) is appended to that name,
// so that append runs sharing one PostgreSQL server (other worktrees) do
// not drop each other's database. Each roomlogd that scenarios starts gets
// roomlog_bench_srv_<target>_<pid>, created fresh and dropped after that
// server stops; the pid already keeps concurrent runs apart, so the suffix
// is not applied there. Everything listens on 127.0.0.1 only. Node.js
// must be on PATH and ROOMLOG_NODE_MODULES (or test/js/node_modules) must
// hold socket.io and socket.io-client; `make bench` sets that up.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	httpapi "github.com/roomlog/roomlog/transport/http"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "roomlog-bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		args = []string{"append"}
	}
	switch args[0] {
	case "append":
		return runAppendCmd(ctx, args[1:])
	case "scenarios":
		return runScenariosCmd(ctx, args[1:])
	case "soak":
		return runSoakCmd(ctx, args[1:])
	case "all":
		if len(args) > 1 {
			return fmt.Errorf("all takes no flags; run append and scenarios separately to tune them")
		}
		if err := runAppendCmd(ctx, nil); err != nil {
			return err
		}
		return runScenariosCmd(ctx, nil)
	default:
		return fmt.Errorf("unknown scenario %q (have: append, scenarios, soak, all)", args[0])
	}
}

func runAppendCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("append", flag.ContinueOnError)
	var o appendOptions
	fs.DurationVar(&o.Duration, "duration", 0, "how long each cell runs (default 4s)")
	fs.IntVar(&o.Rooms, "rooms", 1000, "number of rooms events are spread over")
	fs.IntVar(&o.Rate, "rate", 1000, "events/s for the open-loop latency run")
	fs.IntVar(&o.BatchSize, "batch", 10, "events per batch in the batch rows")
	fs.IntVar(&o.Writers, "writers", 0, "group-commit writers (0: the store's default)")
	fs.StringVar(&o.Only, "only", "", "run only cells whose mode starts with this (e.g. batch)")
	fs.BoolVar(&o.AsyncCommit, "async-commit", false, "also run with synchronous_commit off, to price durability")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dbURL, err := benchDatabase(ctx)
	if err != nil {
		return err
	}
	return runAppend(ctx, dbURL, o, os.Stdout, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
}

func runScenariosCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("scenarios", flag.ContinueOnError)
	var o scenarioOptions
	var hotRates, targets string
	fs.DurationVar(&o.Duration, "duration", 5*time.Second, "measured time per cell (keep it <= 10s on a shared machine)")
	fs.DurationVar(&o.Warmup, "warmup", time.Second, "warmup per cell, not measured")
	fs.IntVar(&o.Rooms, "rooms", 1000, "(a) rooms")
	fs.IntVar(&o.Subs, "subs", 10, "(a) subscribers per room")
	fs.IntVar(&o.Rate, "rate", 1000, "(a) publishes/s")
	fs.IntVar(&o.HotSubs, "hot-subs", 1000, "(b) subscribers of the one room")
	fs.StringVar(&hotRates, "hot-rates", "10,100", "(b) publishes/s, comma-separated")
	fs.IntVar(&o.Search.Rooms, "c-rooms", 100, "(c) rooms of the max-throughput search")
	fs.IntVar(&o.Search.Subs, "c-subs", 10, "(c) subscribers per room")
	fs.IntVar(&o.Search.Start, "c-start", 100, "(c) first publish rate, publishes/s")
	fs.IntVar(&o.Search.Max, "c-max", 20000, "(c) highest publish rate tried, publishes/s")
	fs.Float64Var(&o.Search.Factor, "c-factor", 2, "(c) publish rate multiplier per passing step (> 1)")
	fs.IntVar(&o.Search.Bisect, "c-bisect", 5, "(c) bisection steps between the last pass and the first failure (5: within 1/32 of the last doubling, about 3%)")
	fs.IntVar(&o.Search.Confirm, "c-confirm", 1, "(c) times a failing step is tried again before it counts as failed (every target alike)")
	fs.DurationVar(&o.Search.P99, "c-p99", 100*time.Millisecond, "(c) a step passes with delivery p99 under this (and nothing lost)")
	fs.DurationVar(&o.Search.Duration, "c-duration", 3*time.Second, "(c) measured time per step (after -warmup)")
	fs.IntVar(&o.CatchUpEvents, "catchup", 10000, "(e) missed events to catch up")
	fs.IntVar(&o.CatchUpPage, "catchup-page", httpapi.MaxCatchUpLimit, "(e) REST page size, the limit parameter (default and at most: the server's largest page)")
	fs.IntVar(&o.CatchUpReps, "catchup-reps", 5, "(e) repetitions")
	fs.IntVar(&o.IdleConns, "idle-conns", 10000, "(d) idle connections, each subscribed to its own room")
	fs.BoolVar(&o.IdleGC, "idle-gc", true, "(d) send roomlogd SIGUSR2 (runtime.GC + debug.FreeOSMemory in the bench build) before each RSS sample, as Node gets global.gc()")
	fs.StringVar(&o.IdleProfile, "idle-profile", "", "(d) save roomlogd heap profiles and goroutine dumps before/after connecting into this directory (enables ROOMLOG_PPROF_ADDR on loopback)")
	fs.IntVar(&o.StormClients, "storm-clients", 5000, "(f) clients reconnecting after roomlogd is SIGKILLed and restarted")
	fs.IntVar(&o.StormRooms, "storm-rooms", 100, "(f) rooms the storm clients subscribe to (round-robin)")
	fs.IntVar(&o.StormEvents, "storm-events", 1000, "(f) events published before the crash")
	fs.StringVar(&targets, "targets", "roomlog,node,async", "systems to run: roomlog (durable), node (the Node.js socket.io peer), async (roomlog with synchronous_commit off, NOT durable), tail (roomlog with the live hand-off off: ROOMLOG_TAIL_ONLY)")
	fs.StringVar(&o.Only, "only", "", "run only these scenarios, e.g. ab, c, e, d or f (default all: a, b, c, d, e, f)")
	var roomlogEnv string
	fs.StringVar(&roomlogEnv, "roomlog-env", "", "extra environment for every roomlogd target, space-separated NAME=value pairs, e.g. \"GOGC=400\" to price a GC setting (the load tool's own environment is unchanged)")
	fs.IntVar(&o.Repeat, "repeat", 1, "(a), (b), (c), (d), (f) runs of every cell per target, in interleaved order (A B C A B C ...); tables print the median ((e) has -catchup-reps)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, r := range strings.Split(hotRates, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(r))
		if err != nil || n <= 0 {
			return fmt.Errorf("-hot-rates: %q is not a positive rate", r)
		}
		o.HotRates = append(o.HotRates, n)
	}
	o.Targets = strings.Split(targets, ",")
	env, err := parseEnvList(roomlogEnv)
	if err != nil {
		return fmt.Errorf("-roomlog-env: %w", err)
	}
	o.RoomlogEnv = env
	if o.Rooms <= 0 || o.Subs <= 0 || o.Rate <= 0 || o.HotSubs <= 0 || o.Duration <= 0 || o.CatchUpEvents <= 0 || o.CatchUpPage <= 0 || o.CatchUpPage > httpapi.MaxCatchUpLimit || o.CatchUpReps <= 0 || o.IdleConns <= 0 || o.StormClients <= 0 || o.StormRooms <= 0 || o.StormEvents < 0 || o.Repeat <= 0 || o.Warmup < 0 {
		return fmt.Errorf("scenarios: -rooms, -subs, -rate, -hot-subs, -duration, -catchup, -catchup-reps, -idle-conns, -storm-clients, -storm-rooms, -repeat must be positive, -warmup and -storm-events not negative, and -catchup-page in 1..%d", httpapi.MaxCatchUpLimit)
	}
	if so := o.Search; so.Rooms <= 0 || so.Subs <= 0 || so.Start <= 0 || so.Max < so.Start || so.Factor <= 1 || so.Bisect < 0 || so.Confirm < 0 || so.P99 <= 0 || so.Duration <= 0 {
		return fmt.Errorf("scenarios: -c-rooms, -c-subs, -c-start, -c-p99, -c-duration must be positive, -c-max >= -c-start, -c-factor > 1, -c-bisect and -c-confirm >= 0")
	}
	return runScenarios(ctx, o, os.Stdout, os.Stderr)
}

// benchDatabase recreates append's database, roomlog_bench followed by
// ROOMLOG_BENCH_DB_SUFFIX, on the server named by DATABASE_URL and
// returns its URL.
func benchDatabase(ctx context.Context) (string, error) {
	return namedBenchDatabase(ctx, "roomlog_bench"+benchDBSuffix())
}

// namedBenchDatabase recreates database name on the server named by
// DATABASE_URL and returns its URL.
func namedBenchDatabase(ctx context.Context, name string) (string, error) {
	u, admin, err := benchServer()
	if err != nil {
		return "", err
	}
	if err := recreateDatabase(ctx, admin, name); err != nil {
		return "", err
	}
	u.Path = "/" + name
	return u.String(), nil
}

// dropBenchDatabase drops database name, reporting failure on stderr.
func dropBenchDatabase(ctx context.Context, name string) {
	_, admin, err := benchServer()
	if err == nil {
		var conn *pgx.Conn
		if conn, err = pgx.Connect(ctx, admin); err == nil {
			_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
			conn.Close(ctx)
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "roomlog-bench: drop %s: %v\n", name, err)
	}
}

// benchDBSuffix returns ROOMLOG_BENCH_DB_SUFFIX, the suffix of append's
// database name, with everything but ASCII letters, digits and _ removed.
// The scenarios' per-target databases carry the pid instead.
func benchDBSuffix() string {
	return strings.Map(func(r rune) rune {
		if r == '_' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') {
			return r
		}
		return -1
	}, os.Getenv("ROOMLOG_BENCH_DB_SUFFIX"))
}

// benchServer returns DATABASE_URL (default: the local server) and the
// URL of its postgres database.
func benchServer() (*url.URL, string, error) {
	base := os.Getenv("DATABASE_URL")
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	u, err := url.Parse(base)
	if err != nil {
		return nil, "", fmt.Errorf("DATABASE_URL: %w", err)
	}
	admin := *u
	admin.Path = "/postgres"
	return u, admin.String(), nil
}

// parseEnvList splits "A=1 B=2" into environment entries, refusing a
// field that is not NAME=value with NAME of ASCII letters, digits and _.
func parseEnvList(s string) ([]string, error) {
	var out []string
	for _, f := range strings.Fields(s) {
		name, _, ok := strings.Cut(f, "=")
		if !ok || name == "" || strings.TrimFunc(name, func(r rune) bool {
			return r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9'
		}) != "" {
			return nil, fmt.Errorf("%q is not NAME=value", f)
		}
		out = append(out, f)
	}
	return out, nil
}
