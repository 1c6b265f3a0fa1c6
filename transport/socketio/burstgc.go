package socketio

import (
	"context"
	"log/slog"
	"runtime/debug"
	"time"
)

// BurstGC lowers the Go collector's GOGC while sockets connect quickly, and
// restores it once they stop.
//
// Setting up a connection allocates far more short-lived memory than the
// connection keeps (about 56 KiB against 13 KiB). Go's collector does not
// move objects. So the sockets set up between two collections share memory
// spans with that garbage, and once it is freed the spans stay in use,
// part empty, for as long as the sockets live. At the default GOGC=100,
// that is about a quarter of an idle connection's memory after a burst
// (docs/operations.md, "Memory per connection"). Collecting more often
// while connections arrive packs the survivors densely. Scenario (d) of
// docs/benchmarks.md measures the result. The cost is collector CPU during
// the burst only: between bursts, GOGC is what the operator set, so
// publish latency under steady load is unaffected.
type BurstGC struct {
	// Connections returns the number of sockets connected so far
	// (monotonic; Hub.Stats().Connections). Required.
	Connections func() uint64
	// Percent is the GOGC during a burst. It never raises the configured
	// value: with GOGC at or below it, or off, BurstGC leaves it alone.
	// Default 25.
	Percent int
	// Rate is the connections per second that make a burst. Default 200.
	Rate float64
	// Interval is how often the connection count is sampled. Default
	// 250ms.
	Interval time.Duration
	// Hold is how long the rate must stay below Rate before GOGC is
	// restored (counted in whole Intervals). Default 500ms.
	Hold time.Duration
	// SetGCPercent sets GOGC and returns the previous value. Default
	// debug.SetGCPercent; tests replace it.
	SetGCPercent func(int) int
	// Logger receives a debug line per burst; nil means slog.Default().
	Logger *slog.Logger

	// State, owned by Run's goroutine.
	last    uint64
	below   time.Duration
	lowered bool
	base    int
	// off: the process's GOGC is off or already at most Percent.
	off bool
}

func (b *BurstGC) withDefaults() {
	if b.Percent <= 0 {
		b.Percent = 25
	}
	if b.Rate <= 0 {
		b.Rate = 200
	}
	if b.Interval <= 0 {
		b.Interval = 250 * time.Millisecond
	}
	if b.Hold <= 0 {
		b.Hold = 500 * time.Millisecond
	}
	if b.SetGCPercent == nil {
		b.SetGCPercent = debug.SetGCPercent
	}
	if b.Logger == nil {
		b.Logger = slog.Default()
	}
}

// Run samples the connection count every Interval until ctx is done, then
// restores GOGC if a burst had lowered it.
func (b *BurstGC) Run(ctx context.Context) {
	b.withDefaults()
	b.last = b.Connections()
	t := time.NewTicker(b.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			b.restore()
			return
		case <-t.C:
			b.step(b.Connections())
		}
	}
}

// step handles one sample: n connections so far, Interval after the last.
func (b *BurstGC) step(n uint64) {
	rate := float64(n-b.last) / b.Interval.Seconds()
	b.last = n
	if rate >= b.Rate {
		b.below = 0
		if b.lowered || b.off {
			return
		}
		prev := b.SetGCPercent(b.Percent)
		if prev <= b.Percent { // GOGC=off is -1
			// Off, or already as low: the operator's setting stands,
			// from now on.
			b.SetGCPercent(prev)
			b.off = true
			return
		}
		b.base, b.lowered = prev, true
		b.Logger.Debug("connection burst: collecting more often", "connections_per_second", rate, "gogc", b.Percent, "restores_to", prev)
		return
	}
	if !b.lowered {
		return
	}
	b.below += b.Interval
	if b.below >= b.Hold {
		b.restore()
	}
}

// restore puts back the GOGC a burst lowered.
func (b *BurstGC) restore() {
	if !b.lowered {
		return
	}
	b.SetGCPercent(b.base)
	b.lowered, b.below = false, 0
	b.Logger.Debug("connection burst over", "gogc", b.base)
}
