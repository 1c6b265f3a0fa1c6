package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// scenarioOptions configure the Socket.IO scenarios.
type scenarioOptions struct {
	Duration, Warmup time.Duration
	// Scenario (a): Rooms × Subs at Rate publishes/s.
	Rooms, Subs, Rate int
	// Scenario (b): one room × HotSubs at each of HotRates.
	HotSubs  int
	HotRates []int
	// Scenario (e): CatchUpEvents missed events read in pages of
	// CatchUpPage, CatchUpReps times.
	CatchUpEvents, CatchUpPage, CatchUpReps int
	// Scenario (d): IdleConns idle connections, each in its own room.
	IdleConns int
	// IdleGC makes (d) send roomlogd SIGUSR2 (GC and FreeOSMemory, bench
	// build) before each RSS sample, as the Node peer gets global.gc().
	IdleGC bool
	// IdleProfile, if set, is a directory where (d) saves roomlogd's heap
	// profiles and goroutine dumps before and after connecting (served
	// by ROOMLOG_PPROF_ADDR on a free loopback port).
	IdleProfile string
	// Scenario (f): StormClients clients over StormRooms rooms,
	// StormEvents events published before the crash.
	StormClients, StormRooms, StormEvents int
	// Targets: any of roomlog, node, async, tail.
	Targets []string
	// Only: run only these scenarios (a, b, c, d, e, f); empty for all.
	Only string
	// Search: scenario (c).
	Search searchOptions
	// RoomlogEnv ("NAME=value") is added to every roomlogd target's
	// environment (-roomlog-env), e.g. GOGC=400 to price a GC setting.
	RoomlogEnv []string
	// Repeat: runs of every cell of (a), (b), (c), (d) and (f) per
	// target, interleaved across targets; the tables print medians. (e)
	// runs CatchUpReps times instead.
	Repeat int
}

func (o scenarioOptions) want(s string) bool { return o.Only == "" || strings.Contains(o.Only, s) }

func (o scenarioOptions) cells() []fanoutCell {
	var cells []fanoutCell
	if o.want("a") {
		cells = append(cells, fanoutCell{Name: fmt.Sprintf("(a) %d rooms x %d subs @ %d/s", o.Rooms, o.Subs, o.Rate), Rooms: o.Rooms, Subs: o.Subs, Rate: o.Rate, Warmup: o.Warmup, Duration: o.Duration})
	}
	if o.want("b") {
		for _, r := range o.HotRates {
			cells = append(cells, fanoutCell{Name: fmt.Sprintf("(b) 1 room x %d subs @ %d/s", o.HotSubs, r), Rooms: 1, Subs: o.HotSubs, Rate: r, Warmup: o.Warmup, Duration: o.Duration})
		}
	}
	return cells
}

// running is a target started for the interleaved scenarios.
type running struct {
	key  string
	s    *server
	drop func()
}

// fanoutRun is one run of one cell on one target.
type fanoutRun struct {
	r   fanoutResult
	err error
}

// runScenarios builds roomlogd, runs the scenarios on every target and
// prints their tables: (a), (b), (c) and (e) with every target running side by
// side (one at a time under load), each cell o.Repeat times in interleaved
// order A B C A B C; then (d) and (f), which need freshly started servers.
func runScenarios(ctx context.Context, o scenarioOptions, out, progress io.Writer) error {
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "roomlog-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	var bin string
	var nofile uint64
	if slices.ContainsFunc(o.Targets, func(t string) bool { return t != "node" }) {
		fmt.Fprintln(progress, "building roomlogd (-tags bench)...")
		if bin, err = buildRoomlogd(ctx, root, tmp); err != nil {
			return err
		}
	}
	if o.want("d") || o.want("f") {
		if nofile, err = raiseNoFile(); err != nil {
			fmt.Fprintf(progress, "raise RLIMIT_NOFILE: %v\n", err)
		}
		fmt.Fprintf(progress, "RLIMIT_NOFILE %d (the servers inherit it)\n", nofile)
	}
	cells := o.cells()
	if len(cells) > 0 || o.want("c") || o.want("e") {
		if err := runInterleaved(ctx, o, cells, bin, root, out, progress); err != nil {
			return err
		}
	}
	if o.want("d") && ctx.Err() == nil {
		printIdle(out, o, runIdleTargets(ctx, o, root, bin, tmp, progress), nofile)
	}
	if o.want("f") && ctx.Err() == nil && slices.Contains(o.Targets, "roomlog") {
		var runs []stormRun
		for rep := range o.Repeat {
			if ctx.Err() != nil {
				break
			}
			fmt.Fprintf(progress, "(f) run %d/%d\n", rep+1, o.Repeat)
			r, err := runStormTarget(ctx, o, bin, root, progress)
			runs = append(runs, stormRun{r, err})
		}
		printStorm(out, o, runs)
	}
	return ctx.Err()
}

// runStormTarget runs scenario (f) on a durable roomlogd with a fresh
// database.
func runStormTarget(ctx context.Context, o scenarioOptions, bin, root string, progress io.Writer) (stormResult, error) {
	s, drop, err := startTarget(ctx, "roomlog", bin, root, nil, o.RoomlogEnv)
	if err != nil {
		return stormResult{}, err
	}
	defer drop()
	fmt.Fprintf(progress, "(f) target %s at %s\n", s.name, s.base)
	r, s, err := runStorm(ctx, s, o.StormClients, o.StormRooms, o.StormEvents, progress)
	s.stop()
	return r, err
}

// settleTime is how long runInterleaved lets the targets settle after
// they all started, before the first measured cell.
const settleTime = 3 * time.Second

// runInterleaved starts every target, runs the fan-out cells, (c) and (e)
// on them in interleaved order, stops them and prints the tables.
func runInterleaved(ctx context.Context, o scenarioOptions, cells []fanoutCell, bin, root string, out, progress io.Writer) error {
	var targets []running
	defer func() {
		for _, t := range targets {
			t.s.stop()
			t.drop()
		}
	}()
	for _, key := range o.Targets {
		s, drop, err := startTarget(ctx, key, bin, root, nil, o.RoomlogEnv)
		if err != nil {
			return fmt.Errorf("start %s: %w", key, err)
		}
		targets = append(targets, running{key: key, s: s, drop: drop})
		fmt.Fprintf(progress, "target %s at %s\n", s.name, s.base)
	}
	// A target is ready before its start-up work (projections from the
	// beginning of an empty log, session pruning, presence) has settled;
	// the first cell must not measure the last target's start-up.
	if !sleepCtx(ctx, settleTime) {
		return ctx.Err()
	}
	watch, err := openXactWatch(ctx)
	if err != nil {
		fmt.Fprintf(progress, "not watching the cluster's transactions: %v\n", err)
	}
	defer watch.Close(context.WithoutCancel(ctx))
	// runs[cell][target] holds that target's runs of that cell.
	runs := make([][][]fanoutRun, len(cells))
	for ci, c := range cells {
		runs[ci] = make([][]fanoutRun, len(targets))
		for rep := range o.Repeat {
			for ti, t := range targets {
				if ctx.Err() != nil {
					break
				}
				r, err := runFanout(ctx, t.s, c, watch, progress)
				runs[ci][ti] = append(runs[ci][ti], fanoutRun{r: r, err: err})
				if err != nil {
					fmt.Fprintf(progress, "  %s: %s run %d/%d: %v\n", t.s.name, c.Name, rep+1, o.Repeat, err)
					continue
				}
				fmt.Fprintf(progress, "  %s: %s run %d/%d: p50 %s p99 %s loss %.2f%%\n", t.s.name, c.Name, rep+1, o.Repeat, ms(r.deliver.Quantile(0.5)), ms(r.deliver.Quantile(0.99)), r.lossPct())
			}
		}
	}
	var searches [][]searchResult
	if o.want("c") && ctx.Err() == nil {
		searches = runSearches(ctx, o, targets, watch, progress)
	}
	var cu catchUpResults
	if o.want("e") && ctx.Err() == nil {
		cu = runCatchUps(ctx, o, targets, root, watch, progress)
	}
	printScenarios(out, o, cells, targets, runs)
	if o.want("c") {
		printSearch(out, o, targets, searches)
	}
	if o.want("e") {
		printCatchUp(out, o, cu)
	}
	return nil
}

// fanoutSummary is one cell on one target over its runs: medians, except
// loss and the oldest cluster transaction (the worst run) and publish
// errors (the sum).
type fanoutSummary struct {
	ok, failed           int
	runErr, pubErr       error // first run error, first publish error
	pubRate, deliverRate float64
	p50, p99, p999, max  time.Duration
	ackP99, connect      time.Duration
	lossPct              float64
	oldestXact           time.Duration
	pubErrs              int64
	p99s                 []time.Duration // each successful run's p99
	stalls               []commitStalls  // each successful run's slow commits
	gcs                  []gcWindow      // each successful run's garbage collections
	peakRSS              int64           // the median run's peak RSS, bytes (0: unknown)
}

func summarize(runs []fanoutRun, measured time.Duration) fanoutSummary {
	var s fanoutSummary
	var pub, del []float64
	var p50, p99, p999, mx, ack, conn []time.Duration
	var rss []int64
	for _, r := range runs {
		if r.err != nil {
			s.failed++
			if s.runErr == nil {
				s.runErr = r.err
			}
			continue
		}
		s.ok++
		res := r.r
		pub = append(pub, float64(res.published)/measured.Seconds())
		del = append(del, float64(res.received)/measured.Seconds())
		p50 = append(p50, res.deliver.Quantile(0.5))
		p99 = append(p99, res.deliver.Quantile(0.99))
		p999 = append(p999, res.deliver.Quantile(0.999))
		mx = append(mx, res.deliver.Max())
		ack = append(ack, res.ack.Quantile(0.99))
		conn = append(conn, res.connectTook)
		s.lossPct = max(s.lossPct, res.lossPct())
		s.oldestXact = max(s.oldestXact, res.oldestXact.age)
		s.stalls = append(s.stalls, res.stalls)
		s.gcs = append(s.gcs, res.gc)
		if res.peakRSS > 0 {
			rss = append(rss, res.peakRSS)
		}
		s.pubErrs += res.pubErrs
		if s.pubErr == nil {
			s.pubErr = res.firstErr
		}
	}
	s.pubRate, s.deliverRate = median(pub), median(del)
	s.p50, s.p99, s.p999, s.max = median(p50), median(p99), median(p999), median(mx)
	s.ackP99, s.connect = median(ack), median(conn)
	s.p99s = p99
	s.peakRSS = median(rss)
	return s
}

// number is what median takes.
type number interface {
	~int | ~int64 | ~float64
}

// median is the median of xs (the mean of the middle two for an even
// count), zero for none.
func median[T number](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// runsNote says how figures over repeated runs are reduced.
func runsNote(repeat int) string {
	if repeat <= 1 {
		return "one run per target"
	}
	return fmt.Sprintf("%d runs per target in interleaved order (A B C A B C ...), medians", repeat)
}

func printScenarios(out io.Writer, o scenarioOptions, cells []fanoutCell, targets []running, runs [][][]fanoutRun) {
	host, _ := os.Hostname()
	fmt.Fprintf(out, "\n# roomlog Socket.IO scenarios (%s)\n", time.Now().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(out, "machine: %s, %d CPUs, %s/%s, %s; load generator, servers and PostgreSQL share the CPUs (no pinning); all targets run side by side, one under load at a time\n", host, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version())
	if len(o.RoomlogEnv) > 0 {
		fmt.Fprintf(out, "roomlogd targets' extra environment (-roomlog-env): %s\n", strings.Join(o.RoomlogEnv, " "))
	}
	if len(cells) == 0 {
		return
	}
	fmt.Fprintf(out, "each cell: %v warmup + %v measured, open loop, latency from the scheduled send time to receipt by each subscriber (log-bucket histogram, ~3%% precision); %s (loss: the worst run; pub errors: the sum);\n", o.Warmup, o.Duration, runsNote(o.Repeat))
	fmt.Fprintf(out, "publishes through roomlog's REST API (durable: acknowledged after COMMIT) or the Node peer's POST /publish; ~200-byte payload; loss = expected deliveries not received before 5 s pass with none arriving (at most %v after the last publish);\n", defaultDrainLimit)
	fmt.Fprintf(out, "oldest xact: the oldest transaction holding an xid anywhere on the PostgreSQL cluster while measuring (worst run; sampled every 100 ms); roomlog's tail waits only for those that write events (the writer horizon), but any old transaction hints at a busy or shared cluster\n")
	fmt.Fprintf(out, "commits > %.0fms: roomlogd's group commits that took longer while measuring (its commit-duration histogram, scraped at the end of the warmup and once every publish was answered; in each run's order, with the bound of the slowest bucket); every publish waiting on such a commit waits as long, so a cell's p99 follows them; commit p99: the histogram bucket that holds the 99th percentile group commit of each run (durable: the disk's flush is in it)\n", slowCommitBound*1000)
	fmt.Fprintf(out, "server GCs: roomlogd's garbage collections over the same window, each run; alloc/pub: the bytes it allocated in that window per measured publish (median); each collection marks the whole live heap, most of it the sockets' state, on both CPUs for 100 ms or more, and on this machine sets most of the cell's latency tail (docs/benchmarks.md)\n")
	fmt.Fprintf(out, "peak RSS: the server process's largest resident memory (VmRSS, sampled every %v) from the end of the warmup until every publish was answered (median run): what the load costs in memory, sockets included\n\n", rssEvery)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	hdr := fmt.Sprintf("scenario\ttarget\tpub/s\tdeliveries/s\tp50\tp99\tp99.9\tmax\tpub ack p99\tloss\tpub errors\tconnect\toldest xact\tcommits > %.0fms\tcommit p99\tserver GCs\talloc/pub\tpeak RSS\tvs node p50/p99\t", slowCommitBound*1000)
	if o.Repeat > 1 {
		hdr += "p99 of each run\t"
	}
	fmt.Fprintln(tw, hdr)
	node := slices.IndexFunc(targets, func(t running) bool { return t.key == "node" })
	for ci, c := range cells {
		sums := make([]fanoutSummary, len(targets))
		for ti := range targets {
			sums[ti] = summarize(runs[ci][ti], o.Duration)
		}
		for ti, t := range targets {
			r := sums[ti]
			if r.ok == 0 {
				if r.runErr != nil {
					fmt.Fprintf(tw, "%s\t%s\tfailed: %v\t\n", c.Name, t.s.name, r.runErr)
				}
				continue
			}
			ratio := ""
			if node >= 0 && ti != node && sums[node].ok > 0 {
				ratio = fmt.Sprintf("%.1fx / %.1fx", ratioOf(r.p50, sums[node].p50), ratioOf(r.p99, sums[node].p99))
			}
			stalls := make([]string, len(r.stalls))
			commitP99s := make([]string, len(r.stalls))
			for k, st := range r.stalls {
				stalls[k], commitP99s[k] = st.String(), st.p99String()
			}
			gcs, allocs := make([]string, len(r.gcs)), []float64{}
			for k, w := range r.gcs {
				gcs[k] = w.String()
				if w.known {
					allocs = append(allocs, w.allocPerPub)
				}
			}
			alloc := "-"
			if len(allocs) > 0 {
				alloc = fmt.Sprintf("%.1f KiB", median(allocs)/1024)
			}
			peak := "-"
			if r.peakRSS > 0 {
				peak = fmt.Sprintf("%.0f MiB", float64(r.peakRSS)/(1<<20))
			}
			fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.0f\t%s\t%s\t%s\t%s\t%s\t%.2f%%\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t", c.Name, t.s.name,
				r.pubRate, r.deliverRate, ms(r.p50), ms(r.p99), ms(r.p999), ms(r.max),
				ms(r.ackP99), r.lossPct, r.pubErrs, r.connect.Round(time.Millisecond), ms(r.oldestXact), strings.Join(stalls, " "), strings.Join(commitP99s, " "), strings.Join(gcs, " "), alloc, peak, ratio)
			if o.Repeat > 1 {
				each := make([]string, len(r.p99s))
				for k, d := range r.p99s {
					each[k] = ms(d)
				}
				fmt.Fprintf(tw, "%s\t", strings.Join(each, " "))
			}
			fmt.Fprintln(tw)
			if r.failed > 0 {
				fmt.Fprintf(tw, "\t\t%d of %d runs failed: %v\t\n", r.failed, r.failed+r.ok, r.runErr)
			}
			if r.pubErr != nil {
				fmt.Fprintf(tw, "\t\tfirst publish error: %v\t\n", r.pubErr)
			}
		}
	}
	_ = tw.Flush()
}

func ratioOf(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// sleepCtx waits d or until ctx ends; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
