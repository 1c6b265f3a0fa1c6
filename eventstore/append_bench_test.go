package eventstore_test

import (
	"context"
	"fmt"
	"testing"

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
