package httpapi

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

// BenchmarkDecodePublish prices decoding typical publish bodies (extension
// events with a ~200-byte payload): decodePublish, which splits them in
// one pass, against the token-by-token decoder it falls back to, in the
// same process. Both use the same payload check, so this prices the
// body's split alone. Each sub-benchmark reports both times per body and
// their ratio (below 1: the one-pass path is faster).
func BenchmarkDecodePublish(b *testing.B) {
	pad := strings.Repeat("x", 160)
	event := func(i int) string {
		return fmt.Sprintf(`{"event":"x-bench","room":"user-%d","payload":{"i":%d,"pad":"%s"}}`, i%100, i, pad)
	}
	batch := func(i int) string {
		evs := make([]string, 10)
		for k := range evs {
			evs[k] = event(i*10 + k)
		}
		return `{"events":[` + strings.Join(evs, ",") + `]}`
	}
	for _, bc := range []struct {
		name   string
		body   func(i int) string
		events int
	}{{"single", event, 1}, {"batch-of-10", batch, 10}} {
		b.Run(bc.name, func(b *testing.B) {
			s := fuzzServer(b)
			s.cfg.MaxPayloadBytes, s.cfg.MaxBodyBytes = 64<<10, 1<<20
			var fast, stream time.Duration
			for i := range b.N {
				body := []byte(bc.body(i))
				t0 := time.Now()
				evs, err := s.decodePublish(bytes.NewReader(body))
				t1 := time.Now()
				evs2, err2 := s.decodePublishStream(bytes.NewReader(body))
				t2 := time.Now()
				if err != nil || err2 != nil || len(evs) != bc.events || len(evs2) != bc.events {
					b.Fatalf("%.100s: %v, %v", body, err, err2)
				}
				fast += t1.Sub(t0)
				stream += t2.Sub(t1)
			}
			b.ReportMetric(float64(fast.Nanoseconds())/float64(b.N), "ns/body-onepass")
			b.ReportMetric(float64(stream.Nanoseconds())/float64(b.N), "ns/body-tokens")
			b.ReportMetric(float64(fast)/float64(stream), "onepass/tokens")
		})
	}
}
