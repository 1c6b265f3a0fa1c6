package httpapi_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
)

// exportRows is the size of the export TestExportMemory streams.
const exportRows = 100_000

// countingWriter counts bytes and newlines.
type countingWriter struct{ bytes, lines int64 }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.bytes += int64(len(p))
	w.lines += int64(bytes.Count(p, []byte("\n")))
	return len(p), nil
}

// heapSampler tracks the peak of HeapInuse while it runs.
type heapSampler struct {
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	peak uint64
}

func sampleHeap(every time.Duration) *heapSampler {
	s := &heapSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			s.mu.Lock()
			s.peak = max(s.peak, m.HeapInuse)
			s.mu.Unlock()
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *heapSampler) Stop() uint64 {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

// TestExportMemory streams an export of 100,000 events as NDJSON and as CSV
// and measures the process's heap while it does: memory must stay flat
// (bounded by a page of rows) although the export is many times larger.
// It is deliberately not parallel, so that no other test's allocations
// blur the measurement.
func TestExportMemory(t *testing.T) {
	b := setup(t, &setupOptions{noMembership: true})
	ctx := context.Background()

	// Seed 100,000 rows in one statement: the export reads rows, so the
	// append path (tested elsewhere) is not needed, and this keeps the
	// test's time bounded. Each payload is about 600 bytes.
	start := time.Now()
	_, err := b.pool.Exec(ctx, `
		INSERT INTO events (event_id, room, seq, type, payload, producer, created_at, prev_hash, hash)
		SELECT gen_random_uuid(), 'user-u' || (g % 1000), g / 1000 + 1, 'x-bulk',
		       json_build_object('requestId', 'r' || g, 'n', g, 'note', repeat('lorem ipsum ', 48)),
		       'bulk', $1::timestamptz + g * interval '1 millisecond', '\x00'::bytea, '\x00'::bytea
		FROM generate_series(0, $2::int - 1) AS g`, t0, exportRows)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("seeded %d rows in %v", exportRows, time.Since(start).Round(time.Millisecond))
	aud := token(t, "aud", domain.RoleAuditor)
	// The rows are visible to audits once every older transaction in the
	// cluster has ended.
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		r := b.get(t, http.StatusOK, "/api/v1/audit/events?order=desc&limit=1", "Authorization", "Bearer "+aud)
		if !bytes.Contains(r.body, []byte(fmt.Sprintf(`"n":%d`, exportRows-1))) {
			return fmt.Errorf("last row not visible yet")
		}
		return nil
	})

	for _, format := range []string{"ndjson", "csv"} {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		sampler := sampleHeap(10 * time.Millisecond)
		start := time.Now()

		req, err := http.NewRequest(http.MethodGet, b.srv.URL+"/api/v1/audit/export?format="+format, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+aud)
		res, err := b.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var got countingWriter
		_, err = io.Copy(&got, res.Body)
		res.Body.Close()
		took := time.Since(start)
		peak := sampler.Stop()
		runtime.ReadMemStats(&after)
		if err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d, %v", format, res.StatusCode, err)
		}
		wantLines := int64(exportRows)
		if format == "csv" {
			wantLines++ // the header
		}
		if got.lines != wantLines {
			t.Fatalf("%s: %d lines, want %d", format, got.lines, wantLines)
		}
		growth := int64(peak) - int64(before.HeapInuse)
		allocs := after.Mallocs - before.Mallocs
		allocBytes := after.TotalAlloc - before.TotalAlloc
		fmt.Printf("export %-6s rows=%d bytes=%.1fMiB time=%v heapInuse before=%.1fMiB peak=%.1fMiB growth=%.1fMiB; allocated %.1fMiB in %d allocs (%.0f B, %.1f allocs per row)\n",
			format, exportRows, mib(got.bytes), took.Round(time.Millisecond),
			mib(int64(before.HeapInuse)), mib(int64(peak)), mib(growth),
			mib(int64(allocBytes)), allocs, float64(allocBytes)/exportRows, float64(allocs)/exportRows)
		// Flat: the peak heap grows by far less than the export's size. A
		// page is 500 rows of about 1 KiB in memory; the bound leaves room
		// for the race detector, the client, pgx buffers and GC pacing.
		const bound = 16 << 20
		if growth > bound {
			t.Errorf("%s: heap grew by %.1f MiB streaming %.1f MiB; want under %d MiB", format, mib(growth), mib(got.bytes), bound>>20)
		}
		if got.bytes < 4*bound {
			t.Errorf("%s: the export is only %.1f MiB; too small to show flat memory", format, mib(got.bytes))
		}
	}
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
