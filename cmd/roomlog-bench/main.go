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
// builds), and prints one table with the ratios:
//
//	(a) 1,000 rooms x 10 subscribers at 1,000 publishes/s
//	(b) 1 room x 1,000 subscribers at 10/s and 100/s
//	(d) RSS per idle connection, 10,000 connections (vs the Node peer)
//	(e) catch-up of 10,000 missed events via REST pages of 1,000
//	(f) reconnect storm: 5,000 clients recover after roomlogd is SIGKILLed
//

// "all" runs append, then scenarios.
//
// Usage:
//
//	roomlog-bench append [-duration 4s] [-rooms 1000] [-rate 1000]
//	roomlog-bench scenarios [-duration 5s] [-warmup 1s] [-rooms 1000] [-subs 10] [-rate 1000]
//	    [-hot-subs 1000] [-hot-rates 10,100] [-catchup 10000] [-idle-conns 10000]
//	    [-storm-clients 5000] [-storm-rooms 100] [-storm-events 1000] [-targets roomlog,node,async] [-only abdef]
//	roomlog-bench all
//
// It uses DATABASE_URL (default: the local server) and works in its own
// databases, roomlog_bench_<pid> and roomlog_bench_srv_<pid>, which it
// creates and drops when done. Everything listens on 127.0.0.1 only. Node.js must be on PATH
// and ROOMLOG_NODE_MODULES (or test/js/node_modules) must hold socket.io;
// `make bench` sets that up.
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
	case "all":
		if len(args) > 1 {
			return fmt.Errorf("all takes no flags; run append and scenarios separately to tune them")
		}
		if err := runAppendCmd(ctx, nil); err != nil {
			return err
		}
		return runScenariosCmd(ctx, nil)
	default:
		return fmt.Errorf("unknown scenario %q (have: append, scenarios, all)", args[0])
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
	defer dropBenchDatabase(context.WithoutCancel(ctx), appendDatabase)
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
	fs.IntVar(&o.CatchUpEvents, "catchup", 10000, "(e) missed events to catch up")
	fs.IntVar(&o.CatchUpPage, "catchup-page", 1000, "(e) page size (at most 10000)")
	fs.IntVar(&o.CatchUpReps, "catchup-reps", 5, "(e) repetitions")
	fs.IntVar(&o.IdleConns, "idle-conns", 10000, "(d) idle connections, each subscribed to its own room")
	fs.IntVar(&o.StormClients, "storm-clients", 5000, "(f) clients reconnecting after roomlogd is SIGKILLed and restarted")
	fs.IntVar(&o.StormRooms, "storm-rooms", 100, "(f) rooms the storm clients subscribe to (round-robin)")
	fs.IntVar(&o.StormEvents, "storm-events", 1000, "(f) events published before the crash")
	fs.StringVar(&targets, "targets", "roomlog,node,async", "systems to run: roomlog (durable), node (the Node.js socket.io peer), async (roomlog with synchronous_commit off, NOT durable)")
	fs.StringVar(&o.Only, "only", "", "run only these scenarios, e.g. ab, e, d or f (default all: a, b, d, e, f)")
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
	if o.Rooms <= 0 || o.Subs <= 0 || o.Rate <= 0 || o.HotSubs <= 0 || o.Duration <= 0 || o.CatchUpEvents <= 0 || o.CatchUpPage <= 0 || o.CatchUpPage > 10000 || o.CatchUpReps <= 0 || o.IdleConns <= 0 || o.StormClients <= 0 || o.StormRooms <= 0 || o.StormEvents < 0 {
		return fmt.Errorf("scenarios: -rooms, -subs, -rate, -hot-subs, -duration, -catchup, -catchup-reps, -idle-conns, -storm-clients, -storm-rooms must be positive and -catchup-page in 1..10000")
	}
	return runScenarios(ctx, o, os.Stdout, os.Stderr)
}

// appendDatabase is the append benchmark's database. The process id keeps
// concurrent bench runs on one server (several engineers on one machine)
// from dropping each other's database.
var appendDatabase = fmt.Sprintf("roomlog_bench_%d", os.Getpid())

// benchDatabase recreates appendDatabase on the server named by
// DATABASE_URL and returns its URL.
func benchDatabase(ctx context.Context) (string, error) {
	return namedBenchDatabase(ctx, appendDatabase)
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
