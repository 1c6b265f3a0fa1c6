//go:build bench

package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"
)

// benchBuild reports whether this is a benchmark build (-tags bench). Only
// such a build honours ROOMLOG_UNSAFE_ASYNC_COMMIT, which can lose
// acknowledged events: never deploy a bench build.
const benchBuild = true

// benchGCDone starts the line a bench build writes to stderr when it has
// handled a SIGUSR2; cmd/roomlog-bench looks for it.
const benchGCDone = "roomlogd-bench: gc done "

// startBenchHooks installs what only a benchmark build has: on SIGUSR2 the
// process runs a garbage collection and returns freed memory to the
// operating system (debug.FreeOSMemory), so that cmd/roomlog-bench can
// sample RSS without garbage, as it does to the Node peer with
// global.gc(); it then writes benchGCDone, a count and how long the
// collection took ("roomlogd-bench: gc done 3 took 121.5ms") to stderr.
// The hook ends with ctx.
func startBenchHooks(ctx context.Context, log *slog.Logger) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGUSR2)
	go func() {
		defer signal.Stop(ch)
		n := 0
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
				t0 := time.Now()
				runtime.GC()
				took := time.Since(t0)
				debug.FreeOSMemory()
				n++
				// cmd/roomlog-bench waits for this line before it samples
				// the RSS: under load the collection can take seconds.
				fmt.Fprintf(os.Stderr, "%s%d took %v\n", benchGCDone, n, took.Round(10*time.Microsecond))
				log.Debug("bench: SIGUSR2: garbage collected and freed memory returned to the OS")
			}
		}
	}()
}
