// Command roomlog-bench measures roomlog. Its first scenario, "append",
// measures durable append throughput and latency under 1, 8 and 64
// concurrent publishers, for single events and batches, next to this
// machine's raw ceiling measured in the same run: the same rows inserted as
// multi-row INSERTs into a plain table with no sequence logic, no hash
// chain and no idempotency.
//
// Usage:
//
//	roomlog-bench append [-duration 4s] [-rooms 1000] [-rate 1000]
//
// It uses DATABASE_URL (default: the local server) and works in its own
// database, roomlog_bench, which it drops and recreates.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"syscall"
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
		fs := flag.NewFlagSet("append", flag.ContinueOnError)
		var o appendOptions
		fs.DurationVar(&o.Duration, "duration", 0, "how long each cell runs (default 4s)")
		fs.IntVar(&o.Rooms, "rooms", 1000, "number of rooms events are spread over")
		fs.IntVar(&o.Rate, "rate", 1000, "events/s for the open-loop latency run")
		fs.IntVar(&o.BatchSize, "batch", 10, "events per batch in the batch rows")
		fs.IntVar(&o.Writers, "writers", 0, "group-commit writers (0: the store's default)")
		fs.StringVar(&o.Only, "only", "", "run only cells whose mode starts with this (e.g. batch)")
		fs.BoolVar(&o.AsyncCommit, "async-commit", false, "also run with synchronous_commit off, to price durability")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		dbURL, err := benchDatabase(ctx)
		if err != nil {
			return err
		}
		return runAppend(ctx, dbURL, o, os.Stdout, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	default:
		return fmt.Errorf("unknown scenario %q (have: append)", args[0])
	}
}

// benchDatabase recreates the roomlog_bench database on the server named by
// DATABASE_URL and returns its URL.
func benchDatabase(ctx context.Context) (string, error) {
	base := os.Getenv("DATABASE_URL")
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("DATABASE_URL: %w", err)
	}
	admin := *u
	admin.Path = "/postgres"
	if err := recreateDatabase(ctx, admin.String(), "roomlog_bench"); err != nil {
		return "", err
	}
	u.Path = "/roomlog_bench"
	return u.String(), nil
}
