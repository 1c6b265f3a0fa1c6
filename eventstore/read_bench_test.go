package eventstore_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/eventstoretest"
)

// seedRoom appends n events of ~200 bytes of payload (the shape
// roomlog-bench's catch-up scenario uses) to room, in batches of 1,000.
func seedRoom(tb testing.TB, s *eventstore.Store, room string, n int) {
	tb.Helper()
	pad := strings.Repeat("x", 160)
	for done := 0; done < n; {
		k := min(1000, n-done)
		reqs := make([]eventstore.AppendRequest, k)
		for i := range reqs {
			reqs[i] = req("x-bench", fmt.Sprintf(`{"t":%d,"pad":"%s"}`, done+i, pad), room)
		}
		if _, err := s.AppendBatch(context.Background(), reqs); err != nil {
			tb.Fatal(err)
		}
		done += k
	}
}

// BenchmarkReadRoom reads one page of 1,000 or 10,000 events of one room:
// the SQL, decoding and the []domain.Delivery a catch-up request gets from
// the store.
func BenchmarkReadRoom(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			s := newStore(b, eventstoretest.New(b), nil)
			seedRoom(b, s, "user-bench", n)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				p, err := s.ReadRoom(ctx, "user-bench", 0, n)
				if err != nil {
					b.Fatal(err)
				}
				if len(p.Events) != n {
					b.Fatalf("read %d events", len(p.Events))
				}
			}
		})
	}
}
