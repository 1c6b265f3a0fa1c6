package eventstore_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/eventstoretest"
	"github.com/roomlog/roomlog/migrations"
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

// BenchmarkAdvanceHeads prices roomlog_advance_heads, the head check of
// every one-round-trip commit, against migration 0007's version of it (a
// copy under another name, in the same database), calls interleaved:
// 1,000 room heads, commits of 1, 4 and 32 rooms. Each call is a
// transaction of its own with synchronous_commit off, so that the disk's
// flush does not drown the function's time. It reports both times per
// call and their ratio (below 1: today's function is faster).
func BenchmarkAdvanceHeads(b *testing.B) {
	ctx := context.Background()
	pool := eventstoretest.New(b)
	old, err := migrations.FS.ReadFile("0007_advance_heads.up.sql")
	if err != nil {
		b.Fatal(err)
	}
	oldSQL := strings.Replace(string(old), "FUNCTION roomlog_advance_heads(", "FUNCTION advance_heads_0007(", 1)
	for _, q := range []string{
		oldSQL,
		`INSERT INTO room_heads (room, seq, hash) SELECT 'user-' || i, 1, '\x01' FROM generate_series(0, 999) i`,
		`ANALYZE room_heads`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SET synchronous_commit = off"); err != nil {
		b.Fatal(err)
	}
	seqs := make([]int64, 1000)
	for i := range seqs {
		seqs[i] = 1
	}
	hash := []byte{1}
	for _, n := range []int{1, 4, 32} {
		b.Run(fmt.Sprintf("rooms-%d", n), func(b *testing.B) {
			var newTime, oldTime time.Duration
			call := func(fn string, i int) time.Duration {
				rooms := make([]string, n)
				old, next := make([]int64, n), make([]int64, n)
				hashes := make([][]byte, n)
				for k := range n {
					r := (i*n + k*37) % 1000 // n distinct rooms
					rooms[k], old[k], next[k], hashes[k] = fmt.Sprintf("user-%d", r), seqs[r], seqs[r]+1, hash
					seqs[r]++ // a failed call ends the benchmark
				}
				t0 := time.Now()
				if _, err := conn.Exec(ctx, "SELECT "+fn+"($1, $2, $3, $4, $5)", rooms, old, hashes, next, hashes); err != nil {
					b.Fatal(err)
				}
				return time.Since(t0)
			}
			for i := range b.N {
				newTime += call("roomlog_advance_heads", 2*i)
				oldTime += call("advance_heads_0007", 2*i+1)
			}
			b.ReportMetric(float64(newTime.Nanoseconds())/float64(b.N), "ns/call")
			b.ReportMetric(float64(oldTime.Nanoseconds())/float64(b.N), "ns/call-0007")
			b.ReportMetric(float64(newTime)/float64(oldTime), "new/0007")
		})
	}
}
