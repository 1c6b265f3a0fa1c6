package main

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/projector"
	httpapi "github.com/roomlog/roomlog/transport/http"
	"github.com/roomlog/roomlog/transport/socketio"
)

// metrics holds roomlogd's Prometheus collectors. The library packages
// know nothing of Prometheus: each exposes a small hook (eventstore's
// Config.OnCommit, projector.Fanout.OnEmit, httpapi.Params.OnRequest, the
// Hub's Stats) and metrics turns those into series. Every label is bounded:
// event types are the catalogue's names plus "extension", HTTP routes are
// gin's templates, and there is never a room, user or socket label.
type metrics struct {
	commitDuration  prometheus.Histogram
	commitRows      prometheus.Histogram
	commitSubmits   prometheus.Histogram
	commitTrips     *prometheus.CounterVec
	published       *prometheus.CounterVec
	fanoutLag       prometheus.Histogram
	fanoutEmitted   prometheus.Counter
	fanoutHandoff   prometheus.Counter
	catchUpRequests prometheus.Counter
	catchUpEvents   prometheus.Histogram
	httpDuration    *prometheus.HistogramVec

	// commitTripsBy holds commitTrips' counters for 1, 2 and 3 round
	// trips, indexed by that number (0 is unused), so a commit does not
	// look its label up.
	commitTripsBy [4]prometheus.Counter
}

// latencyBuckets spans 0.5 ms to ~16 s.
var latencyBuckets = prometheus.ExponentialBuckets(0.0005, 2, 16)

// newMetrics creates the collectors and registers them, and the Go runtime
// and process collectors, with reg.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		commitDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "roomlog_eventstore_commit_duration_seconds",
			Help:    "Time one group commit took (one transaction, one fsync), from the writer's start to COMMIT returning.",
			Buckets: latencyBuckets,
		}),
		commitRows: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "roomlog_eventstore_commit_batch_rows",
			Help:    "Rows (event × room) written by one group commit.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}),
		commitSubmits: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "roomlog_eventstore_commit_batch_submissions",
			Help:    "Append calls acknowledged by one group commit.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}),
		commitTrips: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "roomlog_eventstore_commits_total",
			Help: "Group commits by their round trips to PostgreSQL: 1 when the writer remembered every room's head, 2 when it read them first, 3 when what it remembered was stale (another process appended to the room).",
		}, []string{"round_trips"}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "roomlog_http_published_events_total",
			Help: "Events appended through the REST publish API (idempotent replays excluded), by type; producers' x- events count as \"extension\".",
		}, []string{"type"}),
		fanoutLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "roomlog_fanout_lag_seconds",
			Help:    "Time from the log accepting an event to the live fan-out handing it to the Socket.IO hub (commit→emit).",
			Buckets: latencyBuckets,
		}),
		fanoutEmitted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "roomlog_fanout_emitted_total",
			Help: "Room deliveries (event × room) the live fan-out handed to the Socket.IO hub.",
		}),
		fanoutHandoff: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "roomlog_fanout_handoff_events_total",
			Help: "Room deliveries the live fan-out emitted from this process's own commits by hand-off, without waiting for NOTIFY and the tail (a part of roomlog_fanout_emitted_total).",
		}),
		catchUpRequests: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "roomlog_http_catchup_requests_total",
			Help: "REST catch-up reads (GET /api/v1/rooms/{room}/events and POST /api/v1/catch-up).",
		}),
		catchUpEvents: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "roomlog_http_catchup_events",
			Help:    "Events returned by one REST catch-up read, all rooms together.",
			Buckets: []float64{0, 1, 10, 100, 500, 1000, 2000, 5000, 10000},
		}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "roomlog_http_request_duration_seconds",
			Help:    "REST request duration by method, route template and status class (Socket.IO's long-lived /socket.io/ requests are not included).",
			Buckets: latencyBuckets,
		}, []string{"method", "route", "code"}),
	}
	for _, c := range []prometheus.Collector{
		m.commitDuration, m.commitRows, m.commitSubmits, m.commitTrips, m.published, m.fanoutLag,
		m.fanoutEmitted, m.fanoutHandoff, m.catchUpRequests, m.catchUpEvents, m.httpDuration,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Start every catalogue type at zero so that rate() works from the
	// first publish and dashboards list the types.
	for _, spec := range domain.Catalogue() {
		m.published.WithLabelValues(spec.Name)
	}
	m.published.WithLabelValues(labelExtension)
	for n := 1; n < len(m.commitTripsBy); n++ {
		m.commitTripsBy[n] = m.commitTrips.WithLabelValues(strconv.Itoa(n))
	}
	return m, nil
}

const labelExtension = "extension"

// onCommit is eventstore.Config.OnCommit.
func (m *metrics) onCommit(st eventstore.CommitStats) {
	m.commitDuration.Observe(st.Took.Seconds())
	m.commitRows.Observe(float64(st.Rows))
	m.commitSubmits.Observe(float64(st.Submissions))
	if n := st.RoundTrips; n > 0 && n < len(m.commitTripsBy) {
		m.commitTripsBy[n].Inc()
	} else {
		m.commitTrips.WithLabelValues(strconv.Itoa(n)).Inc()
	}
}

// onHandoff is projector.Fanout.OnHandoff.
func (m *metrics) onHandoff(emitted int) { m.fanoutHandoff.Add(float64(emitted)) }

// onEmit is projector.Fanout.OnEmit.
func (m *metrics) onEmit(d domain.Delivery) {
	m.fanoutEmitted.Inc()
	if !d.OccurredAt.IsZero() {
		m.fanoutLag.Observe(max(0, time.Since(d.OccurredAt).Seconds()))
	}
}

// onRequest is httpapi.Params.OnRequest.
func (m *metrics) onRequest(method, route string, status int, took time.Duration) {
	if strings.HasPrefix(route, "/socket.io") {
		return // a WebSocket's "request" lasts as long as the connection
	}
	m.httpDuration.WithLabelValues(methodLabel(method), route, statusClass(status)).Observe(took.Seconds())
}

// methodLabel bounds the method label: clients choose the method string.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
		http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}

func statusClass(code int) string {
	switch {
	case code >= 100 && code < 600:
		return string(rune('0'+code/100)) + "xx"
	default:
		return "other"
	}
}

// typeLabel maps an event type to a bounded label value.
func typeLabel(t string) string {
	if spec, ok := domain.Lookup(t); ok && !spec.Extension {
		return t
	}
	return labelExtension
}

// meteredStore is the REST API's view of the store, counting published
// events by type and catch-up reads. Everything else passes through.
type meteredStore struct {
	*eventstore.Store
	// rooms answers catch-up reads: projector.Recent (from memory when it
	// can) or the Store itself.
	rooms pageReader
	// members answers catch-up's membership checks (see MemberRooms).
	members projector.MembershipView
	m       *metrics
}

// MemberRooms implements httpapi.RoomReader: from the membership model
// plus the membership events it has not applied yet, so a change counts
// as soon as it commits.
func (s meteredStore) MemberRooms(ctx context.Context, userID string, rooms []domain.Room) ([]domain.Room, error) {
	return s.members.MemberRooms(ctx, userID, rooms)
}

var _ httpapi.Store = meteredStore{}

// AppendBatch implements httpapi.Appender.
func (s meteredStore) AppendBatch(ctx context.Context, reqs []eventstore.AppendRequest) ([]eventstore.AppendResult, error) {
	res, err := s.Store.AppendBatch(ctx, reqs)
	if err == nil {
		for i, r := range res {
			if !r.Replayed && i < len(reqs) {
				s.m.published.WithLabelValues(typeLabel(reqs[i].Type)).Inc()
			}
		}
	}
	return res, err
}

// pageReader is the catch-up read of httpapi.RoomReader.
type pageReader interface {
	ReadRooms(ctx context.Context, cursors map[domain.Room]int64, limit int, opts *eventstore.ReadOptions) ([]eventstore.Page, error)
}

// ReadRooms implements httpapi.RoomReader.
func (s meteredStore) ReadRooms(ctx context.Context, cursors map[domain.Room]int64, limit int, opts *eventstore.ReadOptions) ([]eventstore.Page, error) {
	pages, err := s.rooms.ReadRooms(ctx, cursors, limit, opts)
	if err == nil {
		n := 0
		for _, p := range pages {
			n += len(p.Events)
		}
		s.m.catchUpRequests.Inc()
		s.m.catchUpEvents.Observe(float64(n))
	}
	return pages, err
}

// hubCollector exposes the Socket.IO Hub's counters, read once per scrape
// from Hub.Stats.
type hubCollector struct {
	stats func() socketio.Stats

	sockets, connections, rejected, denied, slow, encoded, written, replays, rereads, recoveries *prometheus.Desc
}

func newHubCollector(stats func() socketio.Stats) *hubCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("roomlog_socketio_"+name, help, labels, nil)
	}
	return &hubCollector{
		stats:       stats,
		sockets:     d("sockets", "Sockets connected now."),
		connections: d("connections_total", "Sockets accepted."),
		rejected:    d("rejected_handshakes_total", "Handshakes refused (bad credentials, foreign origin)."),
		denied:      d("joins_denied_total", "Refused joins, subscribes, user-online and typing."),
		slow:        d("slow_disconnects_total", "Sockets disconnected as too slow (they catch up by replay)."),
		encoded:     d("frames_encoded_total", "Logged events encoded for live delivery (once per event with local recipients)."),
		written:     d("deliveries_total", "Frames handed to sockets: one per event per receiving socket."),
		replays:     d("replays_total", "subscribe requests with after (replay, then live)."),
		rereads:     d("replay_rereads_total", "Replays that held too many live events and re-read them from the log."),
		recoveries: d("recoveries_total",
			"Connection-state recoveries by result: recovered (the session was found and its replay started), not_recoverable (no or expired session, bad offset, database error, or a replay that failed after it started, which then counts in both).", "result"),
	}
}

// Describe implements prometheus.Collector.
func (c *hubCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.sockets, c.connections, c.rejected, c.denied, c.slow, c.encoded, c.written, c.replays, c.rereads, c.recoveries} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *hubCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	ch <- prometheus.MustNewConstMetric(c.sockets, prometheus.GaugeValue, float64(s.Sockets))
	counter(c.connections, s.Connections)
	counter(c.rejected, s.Rejected)
	counter(c.denied, s.JoinsDenied)
	counter(c.slow, s.SlowDisconnects)
	counter(c.encoded, s.FramesEncoded)
	counter(c.written, s.FramesWritten)
	counter(c.replays, s.Replays)
	counter(c.rereads, s.ReplayRereads)
	counter(c.recoveries, s.Recovered, "recovered")
	counter(c.recoveries, s.RecoveryFailed, "not_recoverable")
}

// recentCollector exposes projector.Recent's counters, read once per
// scrape.
type recentCollector struct {
	stats func() projector.RecentStats

	reads, rooms, bytes *prometheus.Desc
}

func newRecentCollector(stats func() projector.RecentStats) *recentCollector {
	return &recentCollector{
		stats: stats,
		reads: prometheus.NewDesc("roomlog_catchup_reads_total",
			"Catch-up reads by where they were answered from: memory (the latest events of active rooms) or log.", []string{"source"}, nil),
		rooms: prometheus.NewDesc("roomlog_recent_rooms", "Rooms whose latest events are held in memory for catch-up.", nil, nil),
		bytes: prometheus.NewDesc("roomlog_recent_bytes", "Approximate memory held by the latest events of active rooms (bounded by ROOMLOG_RECENT_BYTES).", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *recentCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.reads
	ch <- c.rooms
	ch <- c.bytes
}

// Collect implements prometheus.Collector.
func (c *recentCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	ch <- prometheus.MustNewConstMetric(c.reads, prometheus.CounterValue, float64(s.Hits), "memory")
	ch <- prometheus.MustNewConstMetric(c.reads, prometheus.CounterValue, float64(s.Misses), "log")
	ch <- prometheus.MustNewConstMetric(c.rooms, prometheus.GaugeValue, float64(s.Rooms))
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(s.Bytes))
}

// writerAger is the store's view the oldest-writer gauge reads at every
// scrape (eventstore.Store). OldestWriterAge must return once ctx is done.
type writerAger interface {
	OldestWriterAge(ctx context.Context) (time.Duration, error)
}

// writerScrapeTimeout bounds the oldest-writer query of one scrape: a slow
// or unreachable database costs that gauge's sample, never a hung scrape.
const writerScrapeTimeout = time.Second

// writerWarnEvery is how often a gauge query that keeps failing is logged
// again: a scrape every 15 s must not log a warning every 15 s.
const writerWarnEvery = 5 * time.Minute

// writerCollector exposes the age of the oldest transaction holding a room
// lock (eventstore.Store.OldestWriterAge), queried at each scrape. When the
// query fails or times out, the scrape has no sample of it. The first
// failure is logged as a warning, then at most one warning every
// writerWarnEvery (with how many failures it stands for) while the query
// keeps failing, and one line when samples come back.
type writerCollector struct {
	store   writerAger
	timeout time.Duration
	log     *slog.Logger
	age     *prometheus.Desc
	now     func() time.Time

	// mu guards the warning state: scrapes may run concurrently. lastWarn
	// is when the last warning was logged, zero while the query succeeds;
	// unlogged counts the failures since then that were not logged.
	mu       sync.Mutex
	lastWarn time.Time
	unlogged int
}

// oldestWriterName is the gauge writerCollector exposes.
const oldestWriterName = "roomlog_eventstore_oldest_writer_seconds"

func newWriterCollector(store writerAger, log *slog.Logger) *writerCollector {
	return &writerCollector{
		store:   store,
		timeout: writerScrapeTimeout,
		log:     log,
		now:     time.Now,
		age: prometheus.NewDesc(oldestWriterName,
			"Age of the oldest transaction holding a room lock in this database (0 when none); live delivery of other processes' events waits for it.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *writerCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.age }

// Collect implements prometheus.Collector.
func (c *writerCollector) Collect(ch chan<- prometheus.Metric) {
	// Collect gets no context from the scrape; the timeout bounds it.
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	age, err := c.store.OldestWriterAge(ctx)
	c.report(ctx, err)
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, age.Seconds())
}

// report logs the outcome of one gauge query, if it is news (see
// writerCollector).
func (c *writerCollector) report(ctx context.Context, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	failing := !c.lastWarn.IsZero()
	if err == nil {
		if failing {
			c.log.InfoContext(ctx, "metrics: samples of "+oldestWriterName+" are back", "unlogged_failures", c.unlogged)
		}
		c.lastWarn, c.unlogged = time.Time{}, 0
		return
	}
	now := c.now()
	if failing && now.Sub(c.lastWarn) < writerWarnEvery {
		c.unlogged++
		return
	}
	c.log.WarnContext(ctx, "metrics: no sample of "+oldestWriterName, "error", err,
		"unlogged_failures", c.unlogged, "next_warning_in", writerWarnEvery.String())
	c.lastWarn, c.unlogged = now, 0
}

// metricsHandler serves reg's series at GET /metrics and passes every
// other request to api untouched (no http.ServeMux: its path cleaning and
// redirects would change the API's answers to odd paths).
func metricsHandler(reg *prometheus.Registry, api http.Handler) http.Handler {
	prom := promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metrics" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			prom.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}
