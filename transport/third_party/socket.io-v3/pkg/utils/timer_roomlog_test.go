package utils

// Tests added by roomlog for its patch of SetTimeout (see ../../PATCHES.md).

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// waitFor polls cond for up to 2 s.
func waitFor(cond func() bool) bool {
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

func TestSetTimeoutPatch(t *testing.T) {
	const d = 20 * time.Millisecond
	tests := []struct {
		name string
		// act runs on the new timer and the count of fn's runs; want is
		// how often fn must have run in the end.
		act  func(*Timer, *atomic.Int64)
		want int64
	}{
		{"fires once", func(*Timer, *atomic.Int64) {}, 1},
		{"stopped before it fires", func(tm *Timer, _ *atomic.Int64) { tm.Stop() }, 0},
		{"cleared before it fires", func(tm *Timer, _ *atomic.Int64) { ClearTimeout(tm) }, 0},
		{"refreshed while pending fires once", func(tm *Timer, _ *atomic.Int64) { tm.Refresh() }, 1},
		{"refreshed after it fired fires again", func(tm *Timer, n *atomic.Int64) {
			waitFor(func() bool { return n.Load() == 1 })
			tm.Refresh()
		}, 2},
		{"refreshed after a stop fires", func(tm *Timer, _ *atomic.Int64) { tm.Stop(); tm.Refresh() }, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var n atomic.Int64
			tm := SetTimeout(func() { n.Add(1) }, d)
			tc.act(tm, &n)
			// Wait for the runs expected, then long enough for one more
			// to show.
			waitFor(func() bool { return n.Load() >= tc.want })
			time.Sleep(5 * d)
			if got := n.Load(); got != tc.want {
				t.Fatalf("fn ran %d times, want %d", got, tc.want)
			}
		})
	}
}

// TestSetTimeoutPatchNoGoroutine is the point of the patch: a pending
// timeout (the engine keeps one per connection for its heartbeat) holds no
// goroutine.
func TestSetTimeoutPatchNoGoroutine(t *testing.T) {
	before := runtime.NumGoroutine()
	var fired atomic.Int64
	timers := make([]*Timer, 1000)
	for i := range timers {
		timers[i] = SetTimeout(func() { fired.Add(1) }, time.Hour)
	}
	if after := runtime.NumGoroutine(); after-before > 10 {
		t.Fatalf("1000 pending timeouts hold %d goroutines, want none", after-before)
	}
	for _, tm := range timers {
		tm.Stop()
	}
	if fired.Load() != 0 {
		t.Fatal("a stopped timeout fired")
	}
	// A fired timeout still runs fn on a goroutine of its own: a slow fn
	// does not hold up other timers.
	release := make(chan struct{})
	var slowDone, fastDone atomic.Bool
	SetTimeout(func() { <-release; slowDone.Store(true) }, time.Millisecond)
	SetTimeout(func() { fastDone.Store(true) }, 5*time.Millisecond)
	if !waitFor(fastDone.Load) {
		t.Fatal("a timeout did not fire while another one's fn was blocked")
	}
	close(release)
	if !waitFor(slowDone.Load) {
		t.Fatal("the blocked fn did not finish")
	}
}
