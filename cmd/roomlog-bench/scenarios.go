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
	// Scenario (f): StormClients clients over StormRooms rooms,
	// StormEvents events published before the crash.
	StormClients, StormRooms, StormEvents int
	// Targets: any of roomlog, node, async.
	Targets []string
	// Only: run only these scenarios (a, b, d, e, f); empty for all.
	Only string
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

type targetResults struct {
	name    string
	fanout  map[string]fanoutResult
	errs    map[string]error
	catchUp *catchUpResult
	cuErr   error
}

// runScenarios builds and starts each target in turn (roomlogd on a fresh
// database, the Node peer, roomlogd with synchronous_commit off), runs the
// cells against it, stops it, and prints one table with the ratios.
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
	if slices.Contains(o.Targets, "roomlog") || slices.Contains(o.Targets, "async") {
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
	if len(cells) > 0 || o.want("e") {
		if err := runCellsAndCatchUp(ctx, o, cells, bin, root, out, progress); err != nil {
			return err
		}
	}
	if o.want("d") && ctx.Err() == nil {
		printIdle(out, o, runIdleTargets(ctx, o, root, bin, tmp, progress), nofile)
	}
	if o.want("f") && ctx.Err() == nil && slices.Contains(o.Targets, "roomlog") {
		r, err := runStormTarget(ctx, o, bin, progress)
		printStorm(out, r, err)
	}
	return ctx.Err()
}

// runStormTarget runs scenario (f) on a durable roomlogd with a fresh
// database.
func runStormTarget(ctx context.Context, o scenarioOptions, bin string, progress io.Writer) (stormResult, error) {
	dbURL, err := namedBenchDatabase(ctx, serverDatabase)
	if err != nil {
		return stormResult{}, err
	}
	defer dropBenchDatabase(context.WithoutCancel(ctx), serverDatabase)
	s, err := startRoomlogd(ctx, bin, dbURL, false)
	if err != nil {
		return stormResult{}, err
	}
	fmt.Fprintf(progress, "(f) target %s at %s\n", s.name, s.base)
	r, s, err := runStorm(ctx, s, o.StormClients, o.StormRooms, o.StormEvents, progress)
	s.stop()
	return r, err
}

// runCellsAndCatchUp runs scenarios (a), (b) and (e) on every target and
// prints their table.
func runCellsAndCatchUp(ctx context.Context, o scenarioOptions, cells []fanoutCell, bin, root string, out, progress io.Writer) error {
	var err error
	var results []targetResults
	for _, t := range o.Targets {
		var s *server
		switch t {
		case "roomlog", "async":
			dbURL, err := namedBenchDatabase(ctx, serverDatabase)
			if err != nil {
				return err
			}
			defer dropBenchDatabase(context.WithoutCancel(ctx), serverDatabase)
			s, err = startRoomlogd(ctx, bin, dbURL, t == "async")
			if err != nil {
				return err
			}
		case "node":
			s, err = startPeer(ctx, root)
			if err != nil {
				return err
			}
		default:
			return fmt.Errorf("unknown target %q (have roomlog, node, async)", t)
		}
		fmt.Fprintf(progress, "target %s at %s\n", s.name, s.base)
		tr := targetResults{name: s.name, fanout: map[string]fanoutResult{}, errs: map[string]error{}}
		for _, c := range cells {
			if ctx.Err() != nil {
				break
			}
			r, err := runFanout(ctx, s, c, progress)
			if err != nil {
				tr.errs[c.Name] = err
				fmt.Fprintf(progress, "  %s: %s: %v\n", s.name, c.Name, err)
				continue
			}
			tr.fanout[c.Name] = r
			fmt.Fprintf(progress, "  %s: %s: p50 %s p99 %s loss %.2f%%\n", s.name, c.Name, ms(r.deliver.Quantile(0.5)), ms(r.deliver.Quantile(0.99)), r.lossPct())
		}
		if o.want("e") && t != "node" && ctx.Err() == nil {
			r, err := runCatchUp(ctx, s, o.CatchUpEvents, o.CatchUpPage, o.CatchUpReps)
			tr.catchUp, tr.cuErr = &r, err
		}
		s.stop()
		results = append(results, tr)
	}
	printScenarios(out, o, cells, results)
	return nil
}

// serverDatabase is the temporary database of the roomlogd the tool
// starts, on DATABASE_URL's server; each target gets it fresh. The process
// id keeps two bench runs sharing one server (several engineers on one
// machine) from dropping each other's database.
var serverDatabase = fmt.Sprintf("roomlog_bench_srv_%d", os.Getpid())

func printScenarios(out io.Writer, o scenarioOptions, cells []fanoutCell, results []targetResults) {
	host, _ := os.Hostname()
	fmt.Fprintf(out, "\n# roomlog Socket.IO scenarios (%s)\n", time.Now().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(out, "machine: %s, %d CPUs, %s/%s, %s; load generator, servers and PostgreSQL share the CPUs (no pinning)\n", host, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version())
	fmt.Fprintf(out, "each cell: %v warmup + %v measured, open loop, latency from the scheduled send time to receipt by each subscriber (log-bucket histogram, ~3%% precision);\n", o.Warmup, o.Duration)
	fmt.Fprintf(out, "publishes through roomlog's REST API (durable: acknowledged after COMMIT) or the Node peer's POST /publish; ~200-byte payload; loss = expected deliveries not received within 5 s after the last publish\n\n")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "scenario\ttarget\tpub/s\tdeliveries/s\tp50\tp99\tp99.9\tmax\tpub ack p99\tloss\tpub errors\tconnect\tvs node p50/p99\t\n")
	var node *targetResults
	for i := range results {
		if results[i].name == "node socket.io" {
			node = &results[i]
		}
	}
	for _, c := range cells {
		for _, tr := range results {
			if err, ok := tr.errs[c.Name]; ok {
				fmt.Fprintf(tw, "%s\t%s\tfailed: %v\t\t\t\t\t\t\t\t\t\t\t\n", c.Name, tr.name, err)
				continue
			}
			r, ok := tr.fanout[c.Name]
			if !ok {
				continue
			}
			secs := o.Duration.Seconds()
			ratio := ""
			if node != nil && tr.name != node.name {
				if nr, ok := node.fanout[c.Name]; ok && nr.deliver.Count() > 0 {
					ratio = fmt.Sprintf("%.1fx / %.1fx", ratioOf(r.deliver.Quantile(0.5), nr.deliver.Quantile(0.5)), ratioOf(r.deliver.Quantile(0.99), nr.deliver.Quantile(0.99)))
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.0f\t%s\t%s\t%s\t%s\t%s\t%.2f%%\t%d\t%s\t%s\t\n", c.Name, tr.name,
				float64(r.published)/secs, float64(r.received)/secs,
				ms(r.deliver.Quantile(0.5)), ms(r.deliver.Quantile(0.99)), ms(r.deliver.Quantile(0.999)), ms(r.deliver.Max()),
				ms(r.ack.Quantile(0.99)), r.lossPct(), r.pubErrs, r.connectTook.Round(time.Millisecond), ratio)
			if r.firstErr != nil {
				fmt.Fprintf(tw, "\t\tfirst publish error: %v\t\t\t\t\t\t\t\t\t\t\t\n", r.firstErr)
			}
		}
	}
	_ = tw.Flush()
	if o.want("e") {
		fmt.Fprintf(out, "\n(e) catch-up of %d missed events of one room via REST pages of %d (GET /api/v1/rooms/{room}/events?after=&limit=), %d runs:\n", o.CatchUpEvents, o.CatchUpPage, o.CatchUpReps)
		for _, tr := range results {
			switch {
			case tr.cuErr != nil:
				fmt.Fprintf(out, "  %s: failed: %v\n", tr.name, tr.cuErr)
			case tr.catchUp != nil && len(tr.catchUp.runs) > 0:
				cu := tr.catchUp
				runs, recv, dec := sorted(cu.runs), sorted(cu.receive), sorted(cu.decode)
				fmt.Fprintf(out, "  %s: %d events in %d pages: median %s, min %s, max %s\n", tr.name, cu.events, cu.pages, ms(runs[len(runs)/2]), ms(runs[0]), ms(runs[len(runs)-1]))
				fmt.Fprintf(out, "    of which: request to last byte received median %s (min %s); the tool's own JSON decoding (encoding/json) median %s (min %s)\n",
					ms(recv[len(recv)/2]), ms(recv[0]), ms(dec[len(dec)/2]), ms(dec[0]))
			case tr.name == "node socket.io":
				fmt.Fprintf(out, "  %s: n/a (no persistence: a client that was away has nothing to catch up from)\n", tr.name)
			}
		}
	}
}

// sorted returns a sorted copy of ds.
func sorted(ds []time.Duration) []time.Duration {
	out := slices.Clone(ds)
	slices.Sort(out)
	return out
}

func ratioOf(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}
