//go:build !bench

package main

import (
	"context"
	"log/slog"
)

// benchBuild reports whether this is a benchmark build (-tags bench). Only
// such a build honours ROOMLOG_UNSAFE_ASYNC_COMMIT.
const benchBuild = false

// startBenchHooks does nothing: the SIGUSR2 garbage-collection hook exists
// only in benchmark builds (see benchbuild_on.go).
func startBenchHooks(context.Context, *slog.Logger) {}
