package httpapi

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

// BenchmarkDecodePublish prices decoding a typical one-event publish body
// (an extension event to one room with a ~200-byte payload): decodePublish,
// which splits it in one pass, against the token-by-token decoder it falls
// back to, in the same process. It reports each one's time per body and
// their ratio (below 1: the one-pass path is faster).
func BenchmarkDecodePublish(b *testing.B) {
	s := fuzzServer(b)
	s.cfg.MaxPayloadBytes = 64 << 10
	pad := strings.Repeat("x", 160)
	var fast, stream time.Duration
	b.ResetTimer()
	for i := range b.N {
		body := fmt.Appendf(nil, `{"event":"x-bench","room":"user-%d","payload":{"i":%d,"pad":"%s"}}`, i%100, i, pad)
		t0 := time.Now()
		evs, err := s.decodePublish(bytes.NewReader(body))
		t1 := time.Now()
		evs2, err2 := s.decodePublishStream(bytes.NewReader(body))
		t2 := time.Now()
		if err != nil || err2 != nil || len(evs) != 1 || len(evs2) != 1 {
			b.Fatalf("%s: %v, %v", body, err, err2)
		}
		fast += t1.Sub(t0)
		stream += t2.Sub(t1)
	}
	b.ReportMetric(float64(fast.Nanoseconds())/float64(b.N), "ns/body-onepass")
	b.ReportMetric(float64(stream.Nanoseconds())/float64(b.N), "ns/body-tokens")
	b.ReportMetric(float64(fast)/float64(stream), "onepass/tokens")
}
