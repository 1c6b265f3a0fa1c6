package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// searchOptions configure scenario (c), the search for the highest
// sustained delivery rate.
type searchOptions struct {
	// Rooms × Subs is the fixed fan-out shape.
	Rooms, Subs int
	// Start is the first publish rate (publishes/s); each passing step
	// multiplies it by Factor, up to Max.
	Start, Max int
	Factor     float64
	// Bisect is how many steps bisect between the last pass and the first
	// failure.
	Bisect int
	// P99 is the bound a step's delivery p99 must stay under.
	P99 time.Duration
	// Duration is each step's measured window (after the scenarios'
	// warmup).
	Duration time.Duration
	// Confirm is how many times a failing step is tried again before it
	// counts as failed: a single stall (a slow disk flush, a paused VM)
	// fails a 3-second step at any rate, so without it one stall decides
	// the whole search. Every target gets the same rule.
	Confirm int
}

// searchDrainLimit is how long after a step's last publish its deliveries
// may still arrive; later ones count as lost.
const searchDrainLimit = 5 * time.Second

// searchSettle is the pause between steps, so that a failed step's
// backlog does not spill into the next one.
const searchSettle = time.Second

// searchStep is one step of the search: one fan-out cell at rate
// publishes/s.
type searchStep struct {
	rate int
	r    fanoutResult
	err  error
	pass bool
	why  string // why it failed
	// transient marks a failed try of a rate that then passed when tried
	// again (searchOptions.Confirm).
	transient bool
}

// deliveries is the step's measured deliveries/s.
func (st searchStep) deliveries(measured time.Duration) float64 {
	return float64(st.r.received) / measured.Seconds()
}

// searchResult is one search on one target.
type searchResult struct {
	steps  []searchStep
	best   int  // index in steps of the highest passing step, -1 if none
	capped bool // the step at Max passed: the true maximum is higher
}

// judge says whether a step held: no error, no fault (fanoutResult.faults:
// no failed publish, every expected delivery received once), and p99
// under the bound.
func judge(r fanoutResult, err error, bound time.Duration) (bool, string) {
	if err == nil {
		err = r.faults()
	}
	switch {
	case err != nil:
		return false, strings.ReplaceAll(err.Error(), "\n", "; ") // one line in the table
	case r.deliver.Count() == 0:
		return false, "nothing delivered"
	case r.deliver.Quantile(0.99) >= bound:
		return false, "p99 " + ms(r.deliver.Quantile(0.99))
	}
	return true, ""
}

// runSearch is scenario (c) on s: it steps the publish rate up
// geometrically from o.Start until a step fails or o.Max passes, then
// bisects o.Bisect times between the last pass and the first failure.
// Each step is runFanout with the fixed shape: a fresh set of subscribed
// sockets, warmup, then the measured window.
func runSearch(ctx context.Context, s *server, o searchOptions, warmup time.Duration, watch *xactWatch, progress io.Writer) searchResult {
	res := searchResult{best: -1}
	once := func(rate int) bool {
		c := fanoutCell{
			Name:  fmt.Sprintf("(c) %d rooms x %d subs @ %d/s", o.Rooms, o.Subs, rate),
			Rooms: o.Rooms, Subs: o.Subs, Rate: rate,
			Warmup: warmup, Duration: o.Duration, DrainLimit: searchDrainLimit,
		}
		r, err := runFanout(ctx, s, c, watch, progress)
		st := searchStep{rate: rate, r: r, err: err}
		st.pass, st.why = judge(r, err, o.P99)
		res.steps = append(res.steps, st)
		verdict := "pass"
		if !st.pass {
			verdict = "FAIL: " + st.why
		}
		fmt.Fprintf(progress, "  %s: %s: %.0f deliveries/s, p99 %s, oldest cluster xact %s: %s\n", s.name, c.Name, st.deliveries(o.Duration), ms(r.deliver.Quantile(0.99)), r.oldestXact, verdict)
		if st.pass && (res.best < 0 || rate > res.steps[res.best].rate) {
			res.best = len(res.steps) - 1
		}
		sleepCtx(ctx, searchSettle)
		return st.pass
	}
	step := func(rate int) bool {
		first := len(res.steps)
		pass := tryConfirmed(o.Confirm, func() bool { return once(rate) })
		if pass {
			for i := first; i < len(res.steps); i++ {
				res.steps[i].transient = !res.steps[i].pass
			}
		}
		return pass
	}
	_, _, res.capped = searchRates(ctx, o, step)
	return res
}

// tryConfirmed runs try, and again up to confirm more times while it
// fails: it reports whether any try passed.
func tryConfirmed(confirm int, try func() bool) bool {
	for range confirm + 1 {
		if try() {
			return true
		}
	}
	return false
}

// searchRates drives the search: it tries o.Start, then rates multiplied
// by o.Factor (rounded up, at least +1, at most o.Max) while try passes,
// then bisects at most o.Bisect times between the last pass and the first
// failure, stopping early once they are within 2% of each other. It
// returns the highest passing rate (0 if none), the lowest failing one (0
// if none) and whether o.Max passed.
func searchRates(ctx context.Context, o searchOptions, try func(rate int) bool) (lastPass, firstFail int, capped bool) {
	for rate := o.Start; ctx.Err() == nil; {
		if !try(rate) {
			firstFail = rate
			break
		}
		lastPass = rate
		if rate >= o.Max {
			capped = true
			break
		}
		next := int(math.Ceil(float64(rate) * o.Factor))
		rate = min(max(next, rate+1), o.Max)
	}
	for i := 0; i < o.Bisect && lastPass > 0 && firstFail > 0 && ctx.Err() == nil; i++ {
		if firstFail-lastPass <= max(1, lastPass/50) {
			break
		}
		mid := (lastPass + firstFail) / 2
		if try(mid) {
			lastPass = mid
		} else {
			firstFail = mid
		}
	}
	return lastPass, firstFail, capped
}

// runSearches runs scenario (c) o.Repeat times on every target, one
// search per target in turn.
func runSearches(ctx context.Context, o scenarioOptions, targets []running, watch *xactWatch, progress io.Writer) [][]searchResult {
	out := make([][]searchResult, len(targets))
	for rep := range o.Repeat {
		for ti, t := range targets {
			if ctx.Err() != nil {
				return out
			}
			fmt.Fprintf(progress, "  %s: (c) search run %d/%d\n", t.s.name, rep+1, o.Repeat)
			out[ti] = append(out[ti], runSearch(ctx, t.s, o.Search, o.Warmup, watch, progress))
		}
	}
	return out
}

// searchSummary is a target's searches reduced to the median run.
type searchSummary struct {
	ok     bool        // some run had a passing step
	best   searchStep  // the median run's highest passing step
	rate   float64     // its deliveries/s
	capped bool        // the median run stopped at the cap
	runs   []string    // each run's highest passing deliveries/s
	failed *searchStep // the median run's lowest failing step
	// transient lists the median run's steps that failed once and passed
	// when tried again.
	transient []searchStep
}

func summarizeSearch(rs []searchResult, measured time.Duration) searchSummary {
	var sum searchSummary
	type run struct {
		rate float64
		r    searchResult
	}
	var ok []run
	for _, r := range rs {
		if r.best < 0 {
			sum.runs = append(sum.runs, "none")
			continue
		}
		d := r.steps[r.best].deliveries(measured)
		sum.runs = append(sum.runs, fmt.Sprintf("%.0f", d))
		ok = append(ok, run{d, r})
	}
	if len(ok) == 0 {
		return sum
	}
	// The median run (lower middle for an even count), so that the p99
	// printed belongs to the figure printed.
	slices.SortFunc(ok, func(a, b run) int { return cmp.Compare(a.rate, b.rate) })
	m := ok[(len(ok)-1)/2]
	sum.ok, sum.best, sum.rate, sum.capped = true, m.r.steps[m.r.best], m.rate, m.r.capped
	for i, st := range m.r.steps {
		switch {
		case st.transient:
			sum.transient = append(sum.transient, st)
		case !st.pass && (sum.failed == nil || st.rate < sum.failed.rate):
			sum.failed = &m.r.steps[i]
		}
	}
	return sum
}

// printSearch prints scenario (c) with each target's highest passing rate
// and its ratio to Node's.
func printSearch(out io.Writer, o scenarioOptions, targets []running, rs [][]searchResult) {
	so := o.Search
	fmt.Fprintf(out, "\n(c) highest sustained deliveries/s with p99 < %v and nothing lost: %d rooms x %d subs, publish rate x%g per step from %d/s (cap %d/s), then up to %d bisection steps; a failing step is tried again up to %d times and fails only if every try does; each step %v warmup + %v measured on fresh sockets; a step passes with p99 (scheduled send -> receipt) < %v, every delivery received within %v of the last publish and no publish error; oldest xact: the oldest transaction holding an xid anywhere on the PostgreSQL cluster during the step (it holds back the horizon roomlog's tail waits for); %s\n",
		so.P99, so.Rooms, so.Subs, so.Factor, so.Start, so.Max, so.Bisect, so.Confirm, o.Warmup, so.Duration, so.P99, searchDrainLimit, runsNote(o.Repeat))
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	hdr := "  target\tmax deliveries/s\tpub/s\tp50\tp99\tdeliveries/s vs node (higher is better)\tlowest failing step\t"
	if o.Repeat > 1 {
		hdr += "each run\t"
	}
	fmt.Fprintln(tw, hdr)
	sums := make([]searchSummary, len(targets))
	for ti := range targets {
		sums[ti] = summarizeSearch(rs[ti], so.Duration)
	}
	node := slices.IndexFunc(targets, func(t running) bool { return t.key == "node" })
	for ti, t := range targets {
		sm := sums[ti]
		if !sm.ok {
			fmt.Fprintf(tw, "  %s\tnone (< %d/s x %d subs)\t\t\t\t\t%s\t", t.s.name, so.Start, so.Subs, firstFailure(rs[ti]))
		} else {
			best := fmt.Sprintf("%.0f", sm.rate)
			if sm.capped {
				best = ">= " + best + " (cap)"
			}
			ratio := ""
			if node >= 0 && ti != node && sums[node].ok {
				ratio = fmt.Sprintf("%.2fx", sm.rate/sums[node].rate)
				if sm.capped || sums[node].capped {
					ratio += " (a cap was reached)"
				}
			}
			fail := "-"
			if sm.failed != nil {
				fail = fmt.Sprintf("%d/s: %s (oldest xact %s)", sm.failed.rate, sm.failed.why, sm.failed.r.oldestXact)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\t%s\t%s\t%s\t", t.s.name, best, sm.best.rate,
				ms(sm.best.r.deliver.Quantile(0.5)), ms(sm.best.r.deliver.Quantile(0.99)), ratio, fail)
		}
		if o.Repeat > 1 {
			fmt.Fprintf(tw, "%s\t", strings.Join(sm.runs, " "))
		}
		fmt.Fprintln(tw)
	}
	_ = tw.Flush()
	for ti, t := range targets {
		for _, st := range sums[ti].transient {
			fmt.Fprintf(out, "  %s: %d/s failed once (%s, oldest xact %s) and passed when tried again\n", t.s.name, st.rate, st.why, st.r.oldestXact)
		}
	}
	if node < 0 || !sums[node].ok {
		return
	}
	for ti, t := range targets {
		if ti == node || !sums[ti].ok {
			continue
		}
		verdict := "below Node's"
		if sums[ti].rate >= sums[node].rate {
			verdict = "at least Node's"
		}
		fmt.Fprintf(out, "  => %s: max sustained deliveries/s %.0f = %.2fx node socket.io's %.0f: %s\n", t.s.name, sums[ti].rate, sums[ti].rate/sums[node].rate, sums[node].rate, verdict)
	}
}

// firstFailure describes why the first run's first step failed.
func firstFailure(rs []searchResult) string {
	for _, r := range rs {
		if len(r.steps) > 0 && !r.steps[0].pass {
			return fmt.Sprintf("%d/s: %s (oldest xact %s)", r.steps[0].rate, r.steps[0].why, r.steps[0].r.oldestXact)
		}
	}
	return "-"
}
