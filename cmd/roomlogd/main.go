// Command roomlogd is the roomlog server: the REST API and the Socket.IO
// endpoint on one port, the group-commit event log writer, and the log's
// consumers (live fan-out, membership, read models).
//
// Configuration comes from environment variables (see the README's table);
// -addr, -database-url and -log-level override them. SIGTERM or SIGINT
// starts a graceful shutdown: intake stops, pending appends are flushed and
// committed, sockets are closed, and the pool is closed.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	cfg, err := LoadConfig(os.Getenv, os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "roomlogd: invalid configuration:\n%v\n", err)
		os.Exit(2)
	}
	m := NewMain(cfg, os.Stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	startBenchHooks(ctx, m.Logger)
	if err := m.Run(ctx); err != nil {
		m.Logger.Error("roomlogd failed to start", "error", err)
		m.Close()
		os.Exit(1)
	}
	<-ctx.Done()
	m.Logger.Info("shutting down")
	if err := m.Close(); err != nil {
		m.Logger.Error("shutdown", "error", err)
		os.Exit(1)
	}
}
