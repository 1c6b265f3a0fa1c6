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

// scrapeCommits reads the commit-duration histogram from s's /metrics.
func scrapeCommits(ctx context.Context, s *server) (commitHist, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.metricsURL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", s.metricsURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", s.metricsURL, resp.Status)
	}
	h, err := parseCommitHist(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", s.metricsURL, err)
	}
	return h, nil
}

// parseCommitHist reads commitHistName's buckets from a scrape in the
// Prometheus text format (expfmt's parser).
func parseCommitHist(r io.Reader) (commitHist, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
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
