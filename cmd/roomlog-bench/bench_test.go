package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSearchRates(t *testing.T) {
	t.Parallel()
	o := searchOptions{Start: 100, Max: 20000, Factor: 2, Bisect: 3}
	tests := []struct {
		name      string
		limit     int // rates up to limit pass
		tried     []int
		pass, bad int
		capped    bool
	}{
		{"BisectsBetweenPassAndFail", 1000, []int{100, 200, 400, 800, 1600, 1200, 1000, 1100}, 1000, 1100, false},
		{"FirstStepFails", 50, []int{100}, 0, 100, false},
		{"StopsAtTheCap", 1 << 30, []int{100, 200, 400, 800, 1600, 3200, 6400, 12800, 20000}, 20000, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var tried []int
			pass, bad, capped := searchRates(context.Background(), o, func(rate int) bool {
				tried = append(tried, rate)
				return rate <= tt.limit
			})
			if pass != tt.pass || bad != tt.bad || capped != tt.capped || !slices.Equal(tried, tt.tried) {
				t.Fatalf("got pass %d fail %d capped %v tried %v; want %d %d %v %v", pass, bad, capped, tried, tt.pass, tt.bad, tt.capped, tt.tried)
			}
		})
	}
}

func TestSearchRatesStopsBisectingWithin2Percent(t *testing.T) {
	t.Parallel()
	o := searchOptions{Start: 1000, Max: 2000, Factor: 1.01, Bisect: 5}
	var tried []int
	pass, bad, _ := searchRates(context.Background(), o, func(rate int) bool {
		tried = append(tried, rate)
		return rate < 1015
	})
	// 1021 - 1010 is within 2% of 1010: no bisection.
	if pass != 1010 || bad != 1021 || !slices.Equal(tried, []int{1000, 1010, 1021}) {
		t.Fatalf("got pass %d fail %d tried %v", pass, bad, tried)
	}
}

func TestJudge(t *testing.T) {
	t.Parallel()
	ok := func() fanoutResult {
		r := fanoutResult{deliver: &hist{}, ack: &hist{}, expected: 100, received: 100}
		for range 100 {
			r.deliver.Record(5 * time.Millisecond)
		}
		return r
	}
	slow := ok()
	for range 5 {
		slow.deliver.Record(time.Second)
	}
	lost, dup, pubErr := ok(), ok(), ok()
	lost.received, dup.received, pubErr.pubErrs = 99, 101, 1
	for name, tt := range map[string]struct {
		r    fanoutResult
		pass bool
	}{"Pass": {ok(), true}, "SlowTail": {slow, false}, "Lost": {lost, false}, "Duplicates": {dup, false}, "PublishError": {pubErr, false}} {
		if pass, why := judge(tt.r, nil, 100*time.Millisecond); pass != tt.pass {
			t.Errorf("%s: pass %v (%s), want %v", name, pass, why, tt.pass)
		}
	}
}

func TestMedian(t *testing.T) {
	t.Parallel()
	if got := median([]time.Duration{3, 1, 2}); got != 2 {
		t.Errorf("odd: %v", got)
	}
	if got := median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("even: %v", got)
	}
	if got := median([]int(nil)); got != 0 {
		t.Errorf("empty: %v", got)
	}
}

func TestLastStringArg(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		msg, want string
		ok        bool
	}{
		{`42["x-bench",{"i":1},{"seq":2},"123:456"]`, "123:456", true},
		{`42["session-offset","9:10"]`, "9:10", true},
		{`42["x-bench",{"i":1,"pad":"x"}]`, "", false},
		{`42["session-offset"]`, "", false},
		{`42["x",{"a":"b"},"q\"uote"]`, `q"uote`, true},
	} {
		got, ok := lastStringArg([]byte(tt.msg))
		if got != tt.want || ok != tt.ok {
			t.Errorf("lastStringArg(%s) = %q, %v; want %q, %v", tt.msg, got, ok, tt.want, tt.ok)
		}
	}
}

func TestIntField(t *testing.T) {
	t.Parallel()
	msg := []byte(`42["x-bench",{"i": 42,"pad":"x"},{"room":"user-a","seq":-7,"id":"u"},"1:2"]`)
	if v, ok := intField(msg, `"i":`); !ok || v != 42 {
		t.Errorf("i: %d %v", v, ok)
	}
	if v, ok := intField(msg, `"seq":`); !ok || v != -7 {
		t.Errorf("seq: %d %v", v, ok)
	}
	if _, ok := intField(msg, `"t":`); ok {
		t.Error("t found")
	}
}

func TestParseJSReport(t *testing.T) {
	t.Parallel()
	r, err := parseJSReport(`{"t":"rest","ms":41.25,"jsonMs":20.5,"pages":1,"encoding":""}`, "rest")
	if err != nil || r.Ms != 41.25 || r.JSONMs != 20.5 || r.Pages != 1 {
		t.Fatalf("rest: %+v %v", r, err)
	}
	run, err := r.restRun()
	if err != nil || run.took != 41250*time.Microsecond || run.decode != 20500*time.Microsecond || run.pages != 1 {
		t.Fatalf("restRun: %+v %v", run, err)
	}
	if r, err := parseJSReport(`{"t":"ready","node":"v20.1.0","client":"4.8.4"}`, "ready"); err != nil || r.Node != "v20.1.0" || r.Client != "4.8.4" {
		t.Errorf("ready: %+v %v", r, err)
	}
	for name, tt := range map[string]struct{ line, want, err string }{
		"Error":     {`{"t":"error","message":"seq 7 after seq 5"}`, "rest", "JS client: seq 7 after seq 5"},
		"WrongType": {`{"t":"dropped","reason":"forced close"}`, "subscribed", `JS client said "dropped", want "subscribed"`},
		"NotJSON":   {`Debugger listening`, "rest", `JS client said "Debugger listening"`},
		"NoType":    {`{"ms":3}`, "rest", `JS client said`},
	} {
		if _, err := parseJSReport(tt.line, tt.want); err == nil || !strings.HasPrefix(err.Error(), tt.err) {
			t.Errorf("%s: error %v, want prefix %q", name, err, tt.err)
		}
	}
	// An error report is still returned: its type says the run ended.
	if r, _ := parseJSReport(`{"t":"error","message":"x"}`, "recovered"); r.T != "error" {
		t.Errorf("error report: %+v", r)
	}
}

func TestJSReportRuns(t *testing.T) {
	t.Parallel()
	for name, r := range map[string]jsReport{
		"NoPages":        {T: "rest", Ms: 10},
		"NoTime":         {T: "rest", Pages: 1},
		"DecodeLong":     {T: "rest", Ms: 10, JSONMs: 11, Pages: 1},
		"DecodeNegative": {T: "rest", Ms: 10, JSONMs: -1, Pages: 1},
	} {
		if _, err := r.restRun(); err == nil {
			t.Errorf("restRun %s: no error", name)
		}
	}
	ok := jsReport{T: "recovered", Ms: 180.5, AckMs: 4.25, Got: 10000, Recovered: true}
	run, err := ok.recoveryRun(10000)
	if err != nil || run.took != 180500*time.Microsecond || run.ack != 4250*time.Microsecond || run.extensions != "none" {
		t.Fatalf("recoveryRun: %+v %v", run, err)
	}
	notRecovered, short, noTime := ok, ok, ok
	notRecovered.Recovered, short.Got, noTime.Ms = false, 9999, 0
	for name, r := range map[string]jsReport{"NotRecovered": notRecovered, "Short": short, "NoTime": noTime} {
		if _, err := r.recoveryRun(10000); err == nil {
			t.Errorf("recoveryRun %s: no error", name)
		}
	}
}

func TestPrintCatchUpRowPerClient(t *testing.T) {
	t.Parallel()
	o := scenarioOptions{CatchUpEvents: 10000, CatchUpPage: 10000, CatchUpReps: 1}
	cu := catchUpResults{jsVersion: "Node v20.0.0, socket.io-client 4.8.4", targets: []catchUpTarget{
		{name: "roomlog",
			goc: catchUpClient{rest: []catchUpRun{{took: 62 * time.Millisecond, decode: 35 * time.Millisecond, pages: 1}}, sock: []recoveryRun{{took: 107 * time.Millisecond, ack: 2 * time.Millisecond}}},
			js:  catchUpClient{rest: []catchUpRun{{took: 48 * time.Millisecond, decode: 21 * time.Millisecond, pages: 1}}, sockErr: errors.New("boom"), sockFailed: 1}},
		{name: "node socket.io", sockHow: "in-memory",
			goc: catchUpClient{restErr: errNoHistory, sock: []recoveryRun{{took: 142 * time.Millisecond, ack: 142 * time.Millisecond}}},
			js:  catchUpClient{restErr: errNoHistory, sock: []recoveryRun{{took: 240 * time.Millisecond, ack: 240 * time.Millisecond}}}},
	}}
	var b strings.Builder
	printCatchUp(&b, o, cu)
	var rows []string
	for _, l := range strings.Split(b.String(), "\n") {
		if strings.HasPrefix(l, "  roomlog ") || strings.HasPrefix(l, "  node socket.io ") {
			rows = append(rows, strings.Join(strings.Fields(l), " "))
		}
	}
	want := []string{
		"roomlog " + catchUpClients[0] + " 62.00ms (62.00ms-62.00ms) in 1 page 35.00ms (35.00ms-35.00ms) 107.00ms (107.00ms-107.00ms) 2.00ms (2.00ms-2.00ms) 0.00ms",
		"roomlog " + catchUpClients[1] + " 48.00ms (48.00ms-48.00ms) in 1 page 21.00ms (21.00ms-21.00ms) failed: boom",
		"node socket.io " + catchUpClients[0] + " " + errNoHistory.Error() + " 142.00ms (142.00ms-142.00ms) [in-memory] 142.00ms (142.00ms-142.00ms) 0.00ms",
		"node socket.io " + catchUpClients[1] + " " + errNoHistory.Error() + " 240.00ms (240.00ms-240.00ms) [in-memory] 240.00ms (240.00ms-240.00ms) 0.00ms",
	}
	if !slices.Equal(rows, want) {
		t.Errorf("rows:\n%s\nwant:\n%s\n(whole output:\n%s)", strings.Join(rows, "\n"), strings.Join(want, "\n"), b.String())
	}
	if !strings.Contains(b.String(), "Node v20.0.0, socket.io-client 4.8.4") {
		t.Errorf("no JS client version in:\n%s", b.String())
	}
}

// TestScenariosFlagsRefused: flags out of range are refused before
// anything runs (no database or server is needed to get the error).
func TestScenariosFlagsRefused(t *testing.T) {
	t.Parallel()
	for name, args := range map[string][]string{
		"NegativeWarmup":    {"-warmup", "-1s"},
		"ZeroDuration":      {"-duration", "0s"},
		"NegativeStormEvs":  {"-storm-events", "-1"},
		"RoomlogEnvNoValue": {"-roomlog-env", "GOGC"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			err := runScenariosCmd(context.Background(), args)
			if err == nil || !strings.Contains(err.Error(), args[0]) {
				t.Fatalf("runScenariosCmd(%q) = %v, want an error naming %s", args, err, args[0])
			}
		})
	}
}

func TestCommitStalls(t *testing.T) {
	t.Parallel()
	scrape := func(counts ...string) commitHist {
		bounds := []string{"0.001", "0.002", "0.016", "0.032", "0.064", "0.128", "+Inf"}
		var b strings.Builder
		b.WriteString("# HELP roomlog_eventstore_commit_duration_seconds x\n")
		b.WriteString("# TYPE roomlog_eventstore_commit_duration_seconds histogram\n")
		for i, c := range counts {
			b.WriteString(commitHistName + `_bucket{le="` + bounds[i] + `"} ` + c + "\n")
		}
		b.WriteString("roomlog_eventstore_commit_duration_seconds_sum 1\n")
		b.WriteString("roomlog_eventstore_commit_duration_seconds_count " + counts[len(counts)-1] + "\n")
		sc, err := parseScrape(strings.NewReader(b.String()))
		if err != nil {
			t.Fatal(err)
		}
		return sc.commits
	}
	before := scrape("10", "20", "30", "40", "41", "41", "41")
	tests := []struct {
		name      string
		after     commitHist
		want, p99 string
	}{
		{"NoneSlow", scrape("110", "220", "330", "440", "441", "441", "441"), "0", "<=32ms"},
		{"TwoUpTo64ms", scrape("110", "220", "330", "440", "443", "443", "443"), "2 (<=64ms)", "<=32ms"},
		{"OneUpTo128ms", scrape("10", "20", "30", "40", "41", "42", "42"), "1 (<=128ms)", "<=128ms"},
		{"BeyondTheLastBucket", scrape("10", "20", "30", "40", "41", "41", "43"), "2 (some > last bucket)", "> last bucket"},
		{"MostFast", scrape("910", "1015", "1030", "1040", "1041", "1041", "1041"), "0", "<=2ms"},
		{"NoCommit", before, "0", "-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := stallsBetween(before, tt.after)
			if got := st.String(); got != tt.want {
				t.Fatalf("stalls = %q, want %q", got, tt.want)
			}
			if got := st.p99String(); got != tt.p99 {
				t.Fatalf("commit p99 = %q, want %q", got, tt.p99)
			}
		})
	}
	if got := (commitStalls{}).String(); got != "-" {
		t.Fatalf("unknown stalls = %q, want -", got)
	}
	if _, err := parseScrape(strings.NewReader("go_gc_duration_seconds 1\n")); err == nil {
		t.Fatal("parseScrape accepted a scrape without the histogram")
	}
}

// TestParseEnvList: -roomlog-env takes space-separated NAME=value pairs
// and refuses anything else before a server starts.
func TestParseEnvList(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want []string
		ok   bool
	}{
		{"", nil, true},
		{"GOGC=400", []string{"GOGC=400"}, true},
		{"  GOGC=400   GOMEMLIMIT=1GiB ", []string{"GOGC=400", "GOMEMLIMIT=1GiB"}, true},
		{"GODEBUG=gctrace=1", []string{"GODEBUG=gctrace=1"}, true},
		{"EMPTY=", []string{"EMPTY="}, true},
		{"GOGC", nil, false},
		{"=400", nil, false},
		{"GO-GC=1", nil, false},
	}
	for _, tt := range tests {
		got, err := parseEnvList(tt.in)
		if (err == nil) != tt.ok || !slices.Equal(got, tt.want) {
			t.Errorf("parseEnvList(%q) = %q, %v; want %q, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// TestGCWindow: the runtime's counters over a window give the server's
// collections and its allocation per publish; a scrape without them (the
// counters are optional) leaves the window unknown.
func TestGCWindow(t *testing.T) {
	t.Parallel()
	scrape := func(runtime string) serverScrape {
		t.Helper()
		text := "# TYPE " + commitHistName + " histogram\n" + commitHistName + `_bucket{le="+Inf"} 1` + "\n" +
			commitHistName + "_sum 1\n" + commitHistName + "_count 1\n" + runtime
		sc, err := parseScrape(strings.NewReader(text))
		if err != nil {
			t.Fatal(err)
		}
		return sc
	}
	counters := func(cycles int, alloc string) string {
		return "# TYPE go_gc_duration_seconds summary\n" +
			fmt.Sprintf("go_gc_duration_seconds_sum 0.1\ngo_gc_duration_seconds_count %d\n", cycles) +
			"# TYPE go_memstats_alloc_bytes_total counter\ngo_memstats_alloc_bytes_total " + alloc + "\n"
	}
	before := scrape(counters(17, "1e9"))
	tests := []struct {
		name        string
		before      serverScrape
		after       serverScrape
		published   int64
		want        string
		allocPerPub float64
	}{
		{"TwoCycles", before, scrape(counters(19, "1.1e9")), 5000, "2", 20000},
		{"NoCycle", before, scrape(counters(17, "1.0005e9")), 500, "0", 1000},
		{"NoPublish", before, scrape(counters(18, "1.1e9")), 0, "1", 0},
		{"NoCounters", before, scrape(""), 5000, "-", 0},
		{"NoCountersBefore", scrape(""), before, 5000, "-", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := gcBetween(tt.before, tt.after, tt.published)
			if got := w.String(); got != tt.want {
				t.Fatalf("cycles = %q, want %q", got, tt.want)
			}
			if w.allocPerPub != tt.allocPerPub {
				t.Fatalf("alloc per publish = %v, want %v", w.allocPerPub, tt.allocPerPub)
			}
		})
	}
}

// TestSoakVerdict: the soak passes only when every publish was
// acknowledged and every delivery arrived exactly once.
func TestSoakVerdict(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		r    fanoutResult
		want []string // substrings of the error; none: it passes
	}{
		{"all delivered once", fanoutResult{published: 100, expected: 1000, received: 1000}, nil},
		{"one delivery lost", fanoutResult{published: 100, expected: 1000, received: 999}, []string{"1 of 1000 deliveries lost"}},
		{"a delivery twice", fanoutResult{published: 100, expected: 1000, received: 1001}, []string{"1 deliveries more than the 1000 expected"}},
		{"a publish failed", fanoutResult{published: 100, pubErrs: 1, expected: 990, received: 990, firstErr: errors.New("503")}, []string{"1 of 100 publishes failed (first: 503)"}},
		{"failed and lost", fanoutResult{published: 100, pubErrs: 2, expected: 980, received: 900}, []string{"publishes failed", "80 of 980 deliveries lost"}},
		{"nothing published", fanoutResult{}, []string{"nothing was published"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := soakVerdict(tc.r)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("soakVerdict = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("soakVerdict = nil, want an error with %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("soakVerdict = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

// TestTryConfirmed checks (c)'s confirmation of a failing step: it is
// tried again up to confirm times and fails only if every try fails.
func TestTryConfirmed(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		confirm int
		results []bool // what each try returns, in order
		pass    bool
		tries   int
	}{
		{"PassesAtOnce", 1, []bool{true}, true, 1},
		{"PassesOnRetry", 1, []bool{false, true}, true, 2},
		{"FailsTwice", 1, []bool{false, false}, false, 2},
		{"NoConfirmation", 0, []bool{false, true}, false, 1},
		{"ThirdTry", 2, []bool{false, false, true}, true, 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tries := 0
			pass := tryConfirmed(tt.confirm, func() bool {
				tries++
				return tt.results[tries-1]
			})
			if pass != tt.pass || tries != tt.tries {
				t.Fatalf("got pass %v after %d tries, want %v after %d", pass, tries, tt.pass, tt.tries)
			}
		})
	}
}

// TestSummarizeSearchTransient checks that a step that failed once and
// passed when tried again is listed as transient, not as the lowest
// failing step.
func TestSummarizeSearchTransient(t *testing.T) {
	t.Parallel()
	step := func(rate int, pass, transient bool) searchStep {
		r := fanoutResult{deliver: &hist{}, ack: &hist{}, received: int64(rate) * 3}
		return searchStep{rate: rate, r: r, pass: pass, transient: transient, why: "p99 130ms"}
	}
	res := searchResult{steps: []searchStep{
		step(100, true, false),
		step(200, false, true), // failed once ...
		step(200, true, false), // ... then passed
		step(400, false, false),
		step(400, false, false), // confirmed
		step(300, true, false),
	}, best: 5}
	sum := summarizeSearch([]searchResult{res}, 3*time.Second)
	if !sum.ok || sum.best.rate != 300 {
		t.Fatalf("best %+v", sum.best)
	}
	if sum.failed == nil || sum.failed.rate != 400 {
		t.Fatalf("lowest failing step %+v, want 400/s", sum.failed)
	}
	if len(sum.transient) != 1 || sum.transient[0].rate != 200 {
		t.Fatalf("transient %+v, want the one try at 200/s", sum.transient)
	}
}

func TestLastGCTook(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, logs string
		want       time.Duration
	}{
		{"none", "starting\nlistening\n", 0},
		{"roomlogd", "x\nroomlogd-bench: gc done 1 took 190.2ms\nroomlogd-bench: gc done 2 took 121.5ms\n", 121500 * time.Microsecond},
		{"node", "node-peer: gc took 45.125ms\n", 45125 * time.Microsecond},
		{"the last readable one", "roomlogd-bench: gc done 1 took 2ms\nroomlogd-bench: gc done 2 took soon\n", 2 * time.Millisecond},
		{"an older hook's line without a duration", "roomlogd-bench: gc done 1\n", 0},
		{"another line that says took", `level=WARN msg="commit took 3s"` + "\n", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := lastGCTook(tc.logs); got != tc.want {
				t.Fatalf("lastGCTook = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestSampleRSS: the sampler reads a live process's resident memory and
// keeps the largest sample; a process that does not exist reads as 0.
func TestSampleRSS(t *testing.T) {
	stop := make(chan struct{})
	done := make(chan int64)
	go func() { done <- sampleRSS(os.Getpid(), stop) }()
	ballast := make([]byte, 64<<20)
	for i := range len(ballast) / 4096 {
		ballast[i*4096] = 1 // touch every page
	}
	time.Sleep(3 * rssEvery)
	close(stop)
	peak := <-done
	if peak < 64<<20 {
		t.Errorf("peak RSS %d bytes while 64 MiB were touched", peak)
	}
	runtime.KeepAlive(ballast)

	stop = make(chan struct{})
	close(stop)
	if got := sampleRSS(1<<30, stop); got != 0 {
		t.Errorf("peak RSS of no process: %d, want 0", got)
	}
}

// TestSummarizePeakRSS: a cell's peak RSS is the median of its runs',
// leaving out runs that could not read it.
func TestSummarizePeakRSS(t *testing.T) {
	run := func(rss int64) fanoutRun {
		return fanoutRun{r: fanoutResult{deliver: &hist{}, ack: &hist{}, peakRSS: rss}}
	}
	for _, tc := range []struct {
		rss  []int64
		want int64
	}{
		{[]int64{300, 100, 200}, 200},
		{[]int64{0, 100, 300}, 200},
		{[]int64{0}, 0},
	} {
		var runs []fanoutRun
		for _, r := range tc.rss {
			runs = append(runs, run(r))
		}
		if got := summarize(runs, time.Second).peakRSS; got != tc.want {
			t.Errorf("runs with peak RSS %v: %d, want %d", tc.rss, got, tc.want)
		}
	}
}
