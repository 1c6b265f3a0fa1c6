//go:build bench

package main

// benchBuild reports whether this is a benchmark build (-tags bench). Only
// such a build honours ROOMLOG_UNSAFE_ASYNC_COMMIT, which can lose
// acknowledged events: never deploy a bench build.
const benchBuild = true
