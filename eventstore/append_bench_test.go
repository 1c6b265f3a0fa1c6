package eventstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/eventstoretest"
)

// BenchmarkAppendHandoff prices the live hand-off on the append path: one
// publisher appends single events back to back, with and without a
// hand-off consumer (whose check and read ride in the COMMIT's pipeline).
// Compare the two sub-benchmarks' ns/op, run in the same process.
func BenchmarkAppendHandoff(b *testing.B) {
	ctx := context.Background()
	for _, mode := range []string{"plain", "handoff"} {
		b.Run(mode, func(b *testing.B) {
			pool := eventstoretest.New(b)
			var cfg *eventstore.Config
			if mode == "handoff" {
				var pos domain.Position
				probe := eventstore.New(pool, nil, nil)
				start, err := probe.TailStart(ctx)
				if err != nil {
					b.Fatal(err)
				}
				pos = start
				cfg = &eventstore.Config{
					HandoffAfter: func() (domain.Position, bool) { return pos, true },
					Handoff: func(_ context.Context, _ domain.Position, evs []domain.Delivery) {
						pos = evs[len(evs)-1].Position
					},
					Writers: 1,
				}
			} else {
				cfg = &eventstore.Config{Writers: 1}
			}
			s := newStore(b, pool, cfg)
			b.ResetTimer()
			for i := range b.N {
				if _, err := s.Append(ctx, req("x-bench", fmt.Sprintf(`{"i":%d}`, i), fmt.Sprintf("user-%d", i%100))); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAppendRoundTrips prices the one-round-trip append: one
// publisher appends single events back to back over 100 rooms, alternating
// between a store that remembers heads (one round trip per commit) and
// one that reads them first (two), each on a database of its own, with a
// hand-off consumer as roomlogd has. It reports each one's time per append
// and their ratio (below 1: the one-round-trip append is faster).
func BenchmarkAppendRoundTrips(b *testing.B) {
	ctx := context.Background()
	newBenchStore := func(headCache bool) *eventstore.Store {
		pool := eventstoretest.New(b)
		start, err := eventstore.New(pool, nil, nil).TailStart(ctx)
		if err != nil {
			b.Fatal(err)
		}
		pos := start
		s := eventstore.New(pool, testLogger(b), &eventstore.Config{
			HandoffAfter: func() (domain.Position, bool) { return pos, true },
			Handoff: func(_ context.Context, _ domain.Position, evs []domain.Delivery) {
				pos = evs[len(evs)-1].Position
			},
			Writers: 1,
		})
		if !headCache {
			s.WithoutHeadCache()
		}
		if err := s.Start(ctx); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(s.Stop)
		return s
	}
	one, two := newBenchStore(true), newBenchStore(false)
	var oneTime, twoTime time.Duration
	b.ResetTimer()
	for i := range b.N {
		r := req("x-bench", fmt.Sprintf(`{"i":%d}`, i), fmt.Sprintf("user-%d", i%100))
		for _, st := range []struct {
			s   *eventstore.Store
			sum *time.Duration
		}{{one, &oneTime}, {two, &twoTime}} {
			t0 := time.Now()
			if _, err := st.s.Append(ctx, r); err != nil {
				b.Fatal(err)
			}
			*st.sum += time.Since(t0)
		}
	}
	b.ReportMetric(float64(oneTime.Nanoseconds())/float64(b.N), "ns/append-1rt")
	b.ReportMetric(float64(twoTime.Nanoseconds())/float64(b.N), "ns/append-2rt")
	b.ReportMetric(float64(oneTime)/float64(twoTime), "1rt/2rt")
}
