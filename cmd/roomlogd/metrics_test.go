package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/eventstoretest"
	"github.com/roomlog/roomlog/transport/auth"
	"github.com/roomlog/roomlog/transport/socketio"
)

// scrape GETs /metrics and returns every sample, keyed by its series as
// printed ("name" or `name{label="v",...}`).
func scrape(t *testing.T, base string) map[string]float64 {
	t.Helper()
	code, body := do(t, "GET", base+"/metrics", "", "")
	if code != 200 {
		t.Fatalf("GET /metrics: %d %s", code, body)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// TestMetrics scrapes /metrics from a running Main: every series of issue 8
// exists, and the append, fan-out, publish, catch-up and HTTP series move
// after one publish and one catch-up read. No series carries a room or
// user label.
func TestMetrics(t *testing.T) {
	t.Parallel()
	vars := testEnv(eventstoretest.NewURL(t))
	cfg, err := LoadConfig(func(k string) string { return vars[k] }, nil)
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	m := NewMain(cfg, &logs)
	if err := m.Run(context.Background()); err != nil {
		t.Fatalf("run: %v\n%s", err, logs.String())
	}
	defer m.Close()
	base := "http://" + m.Addr()

	before := scrape(t, base)
	for _, name := range []string{
		"roomlog_eventstore_commit_duration_seconds_count",
		"roomlog_eventstore_commit_batch_rows_count",
		"roomlog_eventstore_commit_batch_submissions_count",
		`roomlog_eventstore_commits_total{round_trips="1"}`,
		`roomlog_eventstore_commits_total{round_trips="2"}`,
		`roomlog_eventstore_commits_total{round_trips="3"}`,
		`roomlog_http_published_events_total{type="unread-count-update"}`,
		`roomlog_http_published_events_total{type="extension"}`,
		"roomlog_fanout_lag_seconds_count",
		"roomlog_fanout_emitted_total",
		"roomlog_fanout_handoff_events_total",
		"roomlog_socketio_sockets",
		"roomlog_socketio_deliveries_total",
		"roomlog_socketio_slow_disconnects_total",
		`roomlog_socketio_recoveries_total{result="recovered"}`,
		`roomlog_socketio_recoveries_total{result="not_recoverable"}`,
		"roomlog_http_catchup_requests_total",
		"roomlog_http_catchup_events_count",
		`roomlog_catchup_reads_total{source="memory"}`,
		`roomlog_catchup_reads_total{source="log"}`,
		"roomlog_recent_rooms",
		"roomlog_recent_bytes",
		"roomlog_eventstore_oldest_writer_seconds",
		"go_goroutines",
	} {
		if _, ok := before[name]; !ok {
			t.Errorf("series %s missing", name)
		}
	}

	code, body := do(t, "POST", base+"/api/v1/events", testKey, `{"event":"unread-count-update","room":"user-u1","payload":{"unreadCount":3}}`)
	if code != 201 {
		t.Fatalf("publish %d %s", code, body)
	}
	code, body = do(t, "POST", base+"/api/v1/events", testKey, `{"event":"x-bench","room":"user-u1","payload":{"n":1}}`)
	if code != 201 {
		t.Fatalf("publish extension %d %s", code, body)
	}
	tok, err := auth.MintHS256([]byte(testSecret), domain.Principal{UserID: "u1"}, time.Hour, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := do(t, "GET", base+"/api/v1/rooms/user-u1/events", tok, ""); code != 200 {
		t.Fatalf("catch-up %d %s", code, body)
	}

	moved := func(after map[string]float64) error {
		for name, delta := range map[string]float64{
			`roomlog_http_published_events_total{type="unread-count-update"}`: 1,
			`roomlog_http_published_events_total{type="extension"}`:           1,
			"roomlog_fanout_emitted_total":                                    2,
			// The first publish to user-u1 reads its head; the second
			// builds on the head the first left (one round trip).
			`roomlog_eventstore_commits_total{round_trips="2"}`:                                            1,
			`roomlog_eventstore_commits_total{round_trips="1"}`:                                            1,
			"roomlog_fanout_lag_seconds_count":                                                             2,
			"roomlog_http_catchup_requests_total":                                                          1,
			"roomlog_http_catchup_events_sum":                                                              2,
			`roomlog_http_request_duration_seconds_count{code="2xx",method="POST",route="/api/v1/events"}`: 2,
		} {
			if got := after[name] - before[name]; got < delta {
				return fmt.Errorf("%s moved by %v, want %v", name, got, delta)
			}
		}
		reads := func(m map[string]float64) float64 {
			return m[`roomlog_catchup_reads_total{source="memory"}`] + m[`roomlog_catchup_reads_total{source="log"}`]
		}
		if got := reads(after) - reads(before); got < 1 {
			return fmt.Errorf("roomlog_catchup_reads_total moved by %v, want 1", got)
		}
		for _, name := range []string{"roomlog_eventstore_commit_duration_seconds_count", "roomlog_eventstore_commit_batch_rows_sum", "roomlog_recent_bytes"} {
			if after[name] <= before[name] {
				return fmt.Errorf("%s did not move", name)
			}
		}
		return nil
	}
	after := scrapeUntil(t, base, moved) // the fan-out is asynchronous
	for name := range after {
		if strings.Contains(name, "room=") || strings.Contains(name, "user=") || strings.Contains(name, "socket=") {
			t.Errorf("series %s has a per-room or per-user label", name)
		}
	}

	// A producer's AppendTx in a transaction that stays open holds a room
	// lock: the oldest-writer gauge grows while it runs and is 0 once it
	// has ended (nothing else here holds a room lock for long).
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, cfg.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := m.store.AppendTx(ctx, tx, []eventstore.AppendRequest{{
		Type: "x-held", Rooms: []domain.Room{"user-u2"}, Payload: json.RawMessage(`{}`), Producer: "test",
	}}); err != nil {
		t.Fatal(err)
	}
	const oldest = "roomlog_eventstore_oldest_writer_seconds"
	scrapeUntil(t, base, func(s map[string]float64) error {
		if s[oldest] < 0.3 {
			return fmt.Errorf("%s = %v while a writer has been open for a while, want at least 0.3", oldest, s[oldest])
		}
		return nil
	})
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	scrapeUntil(t, base, func(s map[string]float64) error {
		if v, ok := s[oldest]; !ok || v != 0 {
			return fmt.Errorf("%s = %v (present %v) after the writer ended, want 0", oldest, v, ok)
		}
		return nil
	})
}

// scrapeUntil scrapes /metrics until cond accepts the samples and returns
// them, failing the test after 10 s.
func scrapeUntil(t *testing.T, base string, cond func(map[string]float64) error) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := scrape(t, base)
		err := cond(s)
		if err == nil {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // polling a scrape
	}
}

func TestMetricLabels(t *testing.T) {
	t.Parallel()
	for in, want := range map[int]string{200: "2xx", 201: "2xx", 429: "4xx", 503: "5xx", 99: "other", 600: "other"} {
		if got := statusClass(in); got != want {
			t.Errorf("statusClass(%d) = %q, want %q", in, got, want)
		}
	}
	if got := methodLabel("BREW"); got != "other" {
		t.Errorf("methodLabel(BREW) = %q", got)
	}
	if got := typeLabel("x-anything"); got != labelExtension {
		t.Errorf("typeLabel(x-anything) = %q", got)
	}
	if got := typeLabel("new-message"); got != "new-message" {
		t.Errorf("typeLabel(new-message) = %q", got)
	}
	if got := typeLabel("not-a-type"); got != labelExtension {
		t.Errorf("typeLabel(not-a-type) = %q", got)
	}
}

// TestHubCollectorRecoveries: the recoveries series report the Hub's
// counters.
func TestHubCollectorRecoveries(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	reg.MustRegister(newHubCollector(func() socketio.Stats { return socketio.Stats{Recovered: 3, RecoveryFailed: 2} }))
	got := countersByLabel(t, reg, "roomlog_socketio_recoveries_total")
	if got["recovered"] != 3 || got["not_recoverable"] != 2 {
		t.Errorf("recoveries: %v, want recovered 3, not_recoverable 2", got)
	}
}

// countersByLabel gathers reg and returns the counter family name's
// values by the value of its one label.
func countersByLabel(t *testing.T, reg *prometheus.Registry, name string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			got[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	return got
}

// TestCommitTrips: onCommit counts each commit under its round trips, the
// pre-resolved counters (1, 2, 3) and any other value alike.
func TestCommitTrips(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		trips []int
		want  map[string]float64
	}{
		{"None", nil, map[string]float64{"1": 0, "2": 0, "3": 0}},
		{"Known", []int{1, 2, 2, 3, 1, 1}, map[string]float64{"1": 3, "2": 2, "3": 1}},
		{"Other", []int{0, 4, 4, 2}, map[string]float64{"0": 1, "1": 0, "2": 1, "3": 0, "4": 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := prometheus.NewRegistry()
			m, err := newMetrics(reg)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range tc.trips {
				m.onCommit(eventstore.CommitStats{RoundTrips: n})
			}
			got := countersByLabel(t, reg, "roomlog_eventstore_commits_total")
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("commits by round trips = %v, want %v", got, tc.want)
			}
		})
	}
}

// writerAgeFunc is a writerAger made of a function.
type writerAgeFunc func(ctx context.Context) (time.Duration, error)

func (f writerAgeFunc) OldestWriterAge(ctx context.Context) (time.Duration, error) { return f(ctx) }

// TestWriterCollector: the oldest-writer gauge reports the store's answer
// in seconds, and has no sample (and logs why) when the store fails or
// does not answer within the collector's timeout; every query it makes
// has a deadline.
func TestWriterCollector(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		age    writerAgeFunc
		want   float64
		sample bool
	}{
		{"None", func(context.Context) (time.Duration, error) { return 0, nil }, 0, true},
		{"Held", func(context.Context) (time.Duration, error) { return 1500 * time.Millisecond, nil }, 1.5, true},
		{"Error", func(context.Context) (time.Duration, error) { return 0, errors.New("database down") }, 0, false},
		{"Hangs", func(ctx context.Context) (time.Duration, error) {
			<-ctx.Done() // a query that never answers, but honours ctx
			return 0, ctx.Err()
		}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var logs syncBuffer
			c := newWriterCollector(writerAgeFunc(func(ctx context.Context) (time.Duration, error) {
				if _, ok := ctx.Deadline(); !ok {
					return 0, errors.New("query without a deadline")
				}
				return tc.age(ctx)
			}), slog.New(slog.NewTextHandler(&logs, nil)))
			c.timeout = 20 * time.Millisecond // Hangs waits this long
			reg := prometheus.NewRegistry()
			reg.MustRegister(c)
			mfs, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			var got []float64
			for _, mf := range mfs {
				if mf.GetName() != "roomlog_eventstore_oldest_writer_seconds" {
					continue
				}
				for _, m := range mf.GetMetric() {
					got = append(got, m.GetGauge().GetValue())
				}
			}
			switch {
			case tc.sample && (len(got) != 1 || got[0] != tc.want):
				t.Errorf("samples %v, want [%v]", got, tc.want)
			case !tc.sample && len(got) != 0:
				t.Errorf("samples %v, want none", got)
			case !tc.sample && logs.String() == "":
				t.Error("no sample and nothing logged")
			case tc.sample && logs.String() != "":
				t.Errorf("logged %q", logs.String())
			}
		})
	}
}

// TestWriterCollectorWarnings: a gauge query that keeps failing is logged
// when it starts failing and then once per writerWarnEvery, each warning
// saying how many failures went unlogged; samples coming back are logged
// once, and the next failure warns at once.
func TestWriterCollectorWarnings(t *testing.T) {
	t.Parallel()
	var fail bool
	var logs syncBuffer
	c := newWriterCollector(writerAgeFunc(func(context.Context) (time.Duration, error) {
		if fail {
			return 0, errors.New("permission denied")
		}
		return 0, nil
	}), slog.New(slog.NewTextHandler(&logs, nil)))
	start := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	clock := start
	c.now = func() time.Time { return clock }
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)

	for _, step := range []struct {
		at   time.Duration // since start
		fail bool
		want string // the line logged, "" for none
	}{
		{0, false, ""},
		{15 * time.Second, true, "level=WARN msg=\"metrics: no sample of roomlog_eventstore_oldest_writer_seconds\" error=\"permission denied\" unlogged_failures=0"},
		{30 * time.Second, true, ""},
		{time.Minute, true, ""},
		{5*time.Minute + 14*time.Second, true, ""},
		{5*time.Minute + 15*time.Second, true, "level=WARN msg=\"metrics: no sample of roomlog_eventstore_oldest_writer_seconds\" error=\"permission denied\" unlogged_failures=3"},
		{5*time.Minute + 30*time.Second, true, ""},
		{5*time.Minute + 45*time.Second, false, "level=INFO msg=\"metrics: samples of roomlog_eventstore_oldest_writer_seconds are back\" unlogged_failures=1"},
		{6 * time.Minute, false, ""},
		{6*time.Minute + 15*time.Second, true, "level=WARN msg=\"metrics: no sample of roomlog_eventstore_oldest_writer_seconds\" error=\"permission denied\" unlogged_failures=0"},
	} {
		clock, fail = start.Add(step.at), step.fail
		before := len(logs.String())
		if _, err := reg.Gather(); err != nil {
			t.Fatal(err)
		}
		got := logs.String()[before:]
		switch {
		case step.want == "" && got != "":
			t.Errorf("at %v: logged %q, want nothing", step.at, got)
		case step.want != "" && !strings.Contains(got, step.want):
			t.Errorf("at %v: logged %q, want a line with %q", step.at, got, step.want)
		case strings.Count(got, "\n") > 1:
			t.Errorf("at %v: logged %d lines, want one", step.at, strings.Count(got, "\n"))
		}
	}
}
