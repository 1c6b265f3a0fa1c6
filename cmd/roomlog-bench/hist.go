package main

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// hist is a log-bucketed latency histogram in the spirit of HdrHistogram:
// values (microseconds) below 64 are exact, larger ones fall in buckets 32
// to an octave, so any percentile is within ~3% of the true value. It is
// safe for concurrent Record calls (atomic adds, no lock).
type hist struct {
	counts [60 * 32]atomic.Uint64
	n      atomic.Uint64
	max    atomic.Int64
}

func histIndex(v uint64) int {
	if v < 64 {
		return int(v)
	}
	e := bits.Len64(v) - 6 // v>>e is in [32, 64)
	return (e+1)*32 + int(v>>e) - 32
}

// histValue is the middle of bucket i.
func histValue(i int) uint64 {
	if i < 64 {
		return uint64(i)
	}
	e := i/32 - 1
	sub := uint64(i%32 + 32)
	return sub<<e + (uint64(1)<<e)/2
}

// Record adds one latency; negative values count as 0.
func (h *hist) Record(d time.Duration) {
	us := max(d.Microseconds(), 0)
	i := min(histIndex(uint64(us)), len(h.counts)-1)
	h.counts[i].Add(1)
	h.n.Add(1)
	for {
		m := h.max.Load()
		if us <= m || h.max.CompareAndSwap(m, us) {
			break
		}
	}
}

// Count is the number of values recorded.
func (h *hist) Count() uint64 { return h.n.Load() }

// Max is the largest value recorded.
func (h *hist) Max() time.Duration { return time.Duration(h.max.Load()) * time.Microsecond }

// Quantile returns the value at quantile q (0 < q ≤ 1), 0 when empty.
func (h *hist) Quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(q * float64(n))
	if rank >= n {
		rank = n - 1
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen > rank {
			return time.Duration(min(int64(histValue(i)), h.max.Load())) * time.Microsecond
		}
	}
	return h.Max()
}
