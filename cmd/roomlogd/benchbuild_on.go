//go:build bench

package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
)

// benchBuild reports whether this is a benchmark build (-tags bench). Only
// such a build honours ROOMLOG_UNSAFE_ASYNC_COMMIT, which can lose
// acknowledged events: never deploy a bench build.
const benchBuild = true

// startBenchHooks installs what only a benchmark build has: on SIGUSR2 the
// process runs a garbage collection and returns freed memory to the
// operating system (debug.FreeOSMemory), so that cmd/roomlog-bench can
// sample RSS without garbage, as it does to the Node peer with
// global.gc(). The hook ends with ctx.
func startBenchHooks(ctx context.Context, log *slog.Logger) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGUSR2)
	go func() {
		defer signal.Stop(ch)
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
				runtime.GC()
				debug.FreeOSMemory()
				log.Debug("bench: SIGUSR2: garbage collected and freed memory returned to the OS")
			}
		}
	}()
}
