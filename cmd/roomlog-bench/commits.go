package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"slices"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// slowCommitBound is where a group commit counts as stalled in the (a)
// and (b) tables (longer than this): a bucket bound of roomlogd's
// roomlog_eventstore_commit_duration_seconds. A durable commit on a quiet
// machine takes about a millisecond; one of 32 ms or more delays every
// publish waiting on it by as much, so a cell's p99 follows these.
const slowCommitBound = 0.032

// commitHist is one scrape of roomlogd's commit-duration histogram: the
// cumulative count of commits by bucket upper bound (seconds; +Inf too).
type commitHist map[float64]float64

// commitHistName is the histogram's name in /metrics.
const commitHistName = "roomlog_eventstore_commit_duration_seconds"

// serverScrape is one scrape of a roomlogd's /metrics: its commit-duration
// histogram and its Go runtime's garbage collections and allocation.
type serverScrape struct {
	commits commitHist
	// gcCycles (go_gc_duration_seconds' count) and allocBytes
	// (go_memstats_alloc_bytes_total) are cumulative; runtime is false if
	// the scrape had neither.
	gcCycles, allocBytes float64
	runtime              bool
}

// scrapeServer reads the commit-duration histogram and the runtime's
// counters from s's /metrics.
func scrapeServer(ctx context.Context, s *server) (serverScrape, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.metricsURL, nil)
	if err != nil {
		return serverScrape{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return serverScrape{}, fmt.Errorf("scrape %s: %w", s.metricsURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return serverScrape{}, fmt.Errorf("scrape %s: %s", s.metricsURL, resp.Status)
	}
	sc, err := parseScrape(resp.Body)
	if err != nil {
		return serverScrape{}, fmt.Errorf("scrape %s: %w", s.metricsURL, err)
	}
	return sc, nil
}

// parseScrape reads a scrape in the Prometheus text format (expfmt's
// parser): commitHistName's buckets, which it requires, and the runtime's
// counters, if present.
func parseScrape(r io.Reader) (serverScrape, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return serverScrape{}, err
	}
	h, err := commitHistOf(families)
	if err != nil {
		return serverScrape{}, err
	}
	sc := serverScrape{commits: h}
	gc, alloc := families["go_gc_duration_seconds"], families["go_memstats_alloc_bytes_total"]
	if gc != nil && alloc != nil && len(gc.GetMetric()) > 0 && len(alloc.GetMetric()) > 0 {
		sc.gcCycles = float64(gc.GetMetric()[0].GetSummary().GetSampleCount())
		sc.allocBytes = alloc.GetMetric()[0].GetCounter().GetValue()
		sc.runtime = true
	}
	return sc, nil
}

// commitHistOf finds commitHistName's buckets among parsed families.
func commitHistOf(families map[string]*dto.MetricFamily) (commitHist, error) {
	f := families[commitHistName]
	if f == nil || len(f.GetMetric()) == 0 || f.GetMetric()[0].GetHistogram() == nil {
		return nil, fmt.Errorf("no %s histogram", commitHistName)
	}
	hg := f.GetMetric()[0].GetHistogram()
	h := commitHist{math.Inf(1): float64(hg.GetSampleCount())}
	for _, b := range hg.GetBucket() {
		h[b.GetUpperBound()] = float64(b.GetCumulativeCount())
	}
	return h, nil
}

// commitStalls is what the commit histogram says about one measured
// window: how many commits took longer than slowCommitBound, and the upper
// bound of the slowest bucket that gained a commit.
type commitStalls struct {
	known bool // false: the target has no such histogram
	slow  int64
	worst float64 // seconds; +Inf if beyond the last finite bound
	// p99 is the upper bound of the bucket that holds the window's 99th
	// percentile commit (seconds; +Inf if beyond the last finite bound, 0
	// if no commit ended in the window).
	p99 float64
}

// stallsBetween compares two scrapes of the histogram.
func stallsBetween(before, after commitHist) commitStalls {
	st := commitStalls{known: true}
	total := after[math.Inf(1)] - before[math.Inf(1)]
	st.slow = int64(total - (after[slowCommitBound] - before[slowCommitBound]))
	prev := 0.0
	for _, b := range slices.Sorted(maps.Keys(after)) {
		gained := after[b] - before[b]
		if gained > prev {
			st.worst = b
		}
		if st.p99 == 0 && total > 0 && gained >= 0.99*total {
			st.p99 = b
		}
		prev = gained
	}
	return st
}

// p99String is "<=Nms", the bucket of the window's 99th percentile
// commit, or "-" when the target has no histogram or no commit ended.
func (c commitStalls) p99String() string {
	switch {
	case !c.known || c.p99 == 0:
		return "-"
	case math.IsInf(c.p99, 1):
		return "> last bucket"
	case c.p99 < 0.001:
		return fmt.Sprintf("<=%.1fms", c.p99*1000)
	}
	return fmt.Sprintf("<=%.0fms", c.p99*1000)
}

// String is "n (≤ worst)", "0", or "-" for a target without the histogram.
func (c commitStalls) String() string {
	switch {
	case !c.known:
		return "-"
	case c.slow == 0:
		return "0"
	case math.IsInf(c.worst, 1):
		return fmt.Sprintf("%d (some > last bucket)", c.slow)
	}
	return fmt.Sprintf("%d (<=%.0fms)", c.slow, c.worst*1000)
}

// gcWindow is what the runtime's counters say about one measured window:
// the server's garbage collections and the bytes it allocated per publish.
// Each collection marks the whole live heap (with 10,000 sockets, mostly
// their state) and takes most of both CPUs for 100 ms or more, which is
// where a cell's latency tail comes from (docs/benchmarks.md).
type gcWindow struct {
	known       bool // false: the target has no such counters
	cycles      int64
	allocPerPub float64 // bytes
}

// gcBetween compares two scrapes over a window with published publishes.
func gcBetween(before, after serverScrape, published int64) gcWindow {
	if !before.runtime || !after.runtime {
		return gcWindow{}
	}
	w := gcWindow{known: true, cycles: int64(after.gcCycles - before.gcCycles)}
	if published > 0 {
		w.allocPerPub = (after.allocBytes - before.allocBytes) / float64(published)
	}
	return w
}

// String is "-" for a target without the counters, else the cycles.
func (w gcWindow) String() string {
	if !w.known {
		return "-"
	}
	return fmt.Sprint(w.cycles)
}
