package socketio

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// fakeGOGC records the values BurstGC sets and answers with the previous
// one, as debug.SetGCPercent does.
type fakeGOGC struct {
	cur  int
	sets []int
}

func (f *fakeGOGC) set(p int) int {
	prev := f.cur
	f.cur = p
	f.sets = append(f.sets, p)
	return prev
}

func TestBurstGCStep(t *testing.T) {
	// Interval 250ms and Rate 200/s: a burst is 50 or more connections
	// between two samples. Hold 500ms: two quiet samples restore GOGC.
	tests := []struct {
		name  string
		gogc  int      // the process's GOGC
		steps []uint64 // connection counts sampled, from 0
		want  []int    // GOGC after each step
		sets  []int    // every value set, in order
	}{
		{"quiet: untouched", 100, []uint64{10, 20, 69}, []int{100, 100, 100}, nil},
		{"burst lowers, two quiet samples restore", 100,
			[]uint64{50, 150, 160, 170, 180}, []int{25, 25, 25, 100, 100}, []int{25, 100}},
		{"a burst resumed before the hold keeps it low", 100,
			[]uint64{100, 110, 200, 210, 215}, []int{25, 25, 25, 25, 100}, []int{25, 100}},
		{"restores the operator's value", 300,
			[]uint64{100, 100, 100}, []int{25, 25, 300}, []int{25, 300}},
		{"never raises a lower GOGC", 20,
			[]uint64{100, 200, 200, 300}, []int{20, 20, 20, 20}, []int{25, 20}},
		{"leaves GOGC=off alone", -1,
			[]uint64{100, 200, 300}, []int{-1, -1, -1}, []int{25, -1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeGOGC{cur: tc.gogc}
			b := &BurstGC{Connections: func() uint64 { return 0 }, SetGCPercent: f.set, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
			b.withDefaults()
			var got []int
			for _, n := range tc.steps {
				b.step(n)
				got = append(got, f.cur)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("GOGC after each sample %v, want %v", got, tc.want)
			}
			if !slices.Equal(f.sets, tc.sets) {
				t.Errorf("set %v, want %v", f.sets, tc.sets)
			}
		})
	}
}

// TestBurstGCRunRestores: a burst still going when Run's context ends
// leaves the process at its own GOGC.
func TestBurstGCRunRestores(t *testing.T) {
	var n atomic.Uint64
	var cur atomic.Int64
	cur.Store(100)
	lowered := make(chan struct{}, 1)
	b := &BurstGC{
		Connections: func() uint64 { return n.Add(1000) }, // a burst at every sample
		Interval:    time.Millisecond,
		SetGCPercent: func(p int) int {
			if p == 25 {
				select {
				case lowered <- struct{}{}:
				default:
				}
			}
			return int(cur.Swap(int64(p)))
		},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	select {
	case <-lowered:
	case <-time.After(5 * time.Second):
		t.Fatal("the burst never lowered GOGC")
	}
	cancel()
	<-done
	if got := cur.Load(); got != 100 {
		t.Fatalf("GOGC after Run ended = %d, want 100", got)
	}
}
