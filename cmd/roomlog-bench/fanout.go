package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// fanoutCell is one open-loop fan-out measurement: Rooms rooms with Subs
// Socket.IO subscribers each, Rate publishes/s spread round-robin over the
// rooms, Warmup then Duration. After the last publish the cell waits for
// the expected deliveries until 5 s pass with none arriving, and at most
// DrainLimit (default defaultDrainLimit); what has not arrived by then is
// lost.
type fanoutCell struct {
	Name       string
	Rooms      int
	Subs       int
	Rate       int
	Warmup     time.Duration
	Duration   time.Duration
	DrainLimit time.Duration
}

// defaultDrainLimit bounds a cell's wait for late deliveries.
const defaultDrainLimit = 60 * time.Second

// fanoutResult is what one cell measured. Latency is from each publish's
// scheduled send time (carried in the payload) to its receipt by each
// subscriber, so a stalled server cannot hide behind a slowed sender
// (coordinated omission).
type fanoutResult struct {
	connectTook        time.Duration
	published, pubErrs int64
	expected, received int64
	deliver, ack       *hist
	firstErr           error
	// oldestXact is the oldest transaction with an xid on the PostgreSQL
	// cluster seen while measuring (see xactWatch); 0 if not watched.
	oldestXact xactSample
	// stalls counts roomlogd's group commits longer than slowCommitBound
	// from the end of the warmup until the last publish was answered (not
	// known for the peer, or if a scrape failed).
	stalls commitStalls
	// gc is the server's garbage collections over the same window, and
	// its allocation per publish (not known for the peer).
	gc gcWindow
	// peakRSS is the server process's largest VmRSS sampled every
	// rssEvery from the end of the warmup until every publish was
	// answered, in bytes (0 if unknown).
	peakRSS int64
}

// rssEvery is how often runFanout samples the server's RSS.
const rssEvery = 100 * time.Millisecond

// sampleRSS samples pid's VmRSS every rssEvery until stop is closed and
// returns the largest (0 if no sample succeeded).
func sampleRSS(pid int, stop <-chan struct{}) int64 {
	var peak int64
	t := time.NewTicker(rssEvery)
	defer t.Stop()
	for {
		if rss, err := vmRSS(pid); err == nil {
			peak = max(peak, rss)
		}
		select {
		case <-stop:
			return peak
		case <-t.C:
		}
	}
}

func (r fanoutResult) lossPct() float64 {
	if r.expected == 0 {
		return 0
	}
	return 100 * float64(max(0, r.expected-r.received)) / float64(r.expected)
}

// faults says what makes r incomplete, or nil: failed publishes, and
// deliveries lost or made twice. The soak and (c)'s steps judge by it.
func (r fanoutResult) faults() error {
	var errs []error
	if r.pubErrs > 0 {
		errs = append(errs, fmt.Errorf("%d of %d publishes failed (first: %v)", r.pubErrs, r.published, r.firstErr))
	}
	switch {
	case r.received < r.expected:
		errs = append(errs, fmt.Errorf("%d of %d deliveries lost (%.2f%%): a socket dropped or an event missed", r.expected-r.received, r.expected, r.lossPct()))
	case r.received > r.expected:
		errs = append(errs, fmt.Errorf("%d deliveries more than the %d expected: events delivered twice", r.received-r.expected, r.expected))
	}
	return errors.Join(errs...)
}

// payloadPad makes a bench payload ~200 bytes, like a small chat message.
var payloadPad = strings.Repeat("x", 160)

// runFanout connects the cell's sockets to s, subscribes them, publishes
// at a fixed rate and collects delivery latencies; watch (may be nil)
// samples the cluster's oldest transaction from the end of the warmup
// until the drain ends.
func runFanout(ctx context.Context, s *server, c fanoutCell, watch *xactWatch, progress io.Writer) (fanoutResult, error) {
	res := fanoutResult{deliver: &hist{}, ack: &hist{}}
	n := c.Rooms * c.Subs
	t0 := time.Now()
	conns, err := dialRooms(ctx, s, n,
		func(i int) string { return fmt.Sprintf("bench-%d", i) },
		func(i int) string { return benchRoom(i % c.Rooms) }, nil)
	defer closeAll(conns)
	if err != nil {
		return res, err
	}
	res.connectTook = time.Since(t0)
	fmt.Fprintf(progress, "  %s: %d sockets connected and subscribed in %v\n", s.name, n, res.connectTook.Round(time.Millisecond))

	// Publish i is due at start + i/Rate; those due from start + Warmup
	// on are measured, Duration × Rate of them. The boundary sits half an
	// interval earlier, between two due times: the Node peer parses the
	// payload's nanosecond "t" into a double and sends it back rounded by
	// up to ~128 ns, which must not move a publish across the boundary.
	interval := time.Second / time.Duration(c.Rate)
	start := time.Now()
	measureFrom := start.Add(c.Warmup - interval/2).UnixNano()
	var received atomic.Int64
	for _, sc := range conns {
		// Each reader ends when closeAll closes its connection.
		go func() {
			_ = sc.readEvents("x-bench", func(sched int64) {
				if sched < measureFrom {
					return
				}
				received.Add(1)
				res.deliver.Record(time.Duration(time.Now().UnixNano() - sched))
			})
		}()
	}

	// Open loop: publish i is due at start + i/Rate, whatever happened to
	// the ones before; a pool of senders keeps the schedule.
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256, IdleConnTimeout: time.Minute}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	type job struct {
		sched int64
		room  string
	}
	jobs := make(chan job, 1<<16)
	var pubErrs, published atomic.Int64
	var firstErr atomic.Pointer[error]
	var senders sync.WaitGroup
	for range 256 {
		senders.Add(1)
		go func() {
			defer senders.Done()
			for j := range jobs {
				p := fmt.Appendf(nil, `{"t":%d,"pad":"%s"}`, j.sched, payloadPad)
				err := s.publish(ctx, client, j.room, p)
				if j.sched < measureFrom {
					continue
				}
				published.Add(1)
				if err != nil {
					pubErrs.Add(1)
					firstErr.CompareAndSwap(nil, &err)
					continue
				}
				res.ack.Record(time.Duration(time.Now().UnixNano() - j.sched))
			}
		}()
	}
	total := int((c.Warmup + c.Duration) / interval)
	stopWatch := func() xactSample { return xactSample{} }
	watchFrom := int(c.Warmup / interval)
	// The server's metrics at the end of the warmup, scraped aside so the
	// schedule does not wait for them.
	scrapeBefore := make(chan *serverScrape, 1)
	// peakRSS stays nil unless the sampler started (the context may end
	// the schedule before the warmup does).
	stopRSS := make(chan struct{})
	var peakRSS chan int64
	for i := range total {
		if i == watchFrom {
			stopWatch = watch.start(ctx)
			peakRSS = make(chan int64, 1)
			go func() { peakRSS <- sampleRSS(s.pid(), stopRSS) }()
			if s.metricsURL != "" {
				go func() {
					sc, err := scrapeServer(ctx, s)
					if err != nil {
						scrapeBefore <- nil // stalls unknown
						return
					}
					scrapeBefore <- &sc
				}()
			}
		}
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			sleepCtx(ctx, d)
		}
		if ctx.Err() != nil {
			break
		}
		select {
		case jobs <- job{sched: due.UnixNano(), room: benchRoom(i % c.Rooms)}:
		default: // the backlog is full: the server is hopelessly behind
			pubErrs.Add(1)
		}
	}
	close(jobs)
	senders.Wait()
	close(stopRSS)
	if peakRSS != nil {
		res.peakRSS = <-peakRSS
	}
	if s.metricsURL != "" && ctx.Err() == nil {
		// Every measured publish is answered, so its commit is counted.
		before := <-scrapeBefore
		if after, err := scrapeServer(ctx, s); err == nil && before != nil {
			res.stalls = stallsBetween(before.commits, after.commits)
			res.gc = gcBetween(*before, after, int64(total-watchFrom))
		}
	}
	res.published, res.pubErrs = published.Load(), pubErrs.Load()
	res.expected = (res.published - res.pubErrs) * int64(c.Subs)
	// Drain: wait until every expected delivery arrived, 5 s of silence or
	// the drain limit.
	drainLimit := c.DrainLimit
	if drainLimit <= 0 {
		drainLimit = defaultDrainLimit
	}
	drainEnd := start.Add(time.Duration(total) * interval).Add(drainLimit)
	last, lastChange := received.Load(), time.Now()
	for received.Load() < res.expected && time.Since(lastChange) < 5*time.Second && time.Now().Before(drainEnd) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond) // polling a counter
		if r := received.Load(); r != last {
			last, lastChange = r, time.Now()
		}
	}
	res.received = received.Load()
	res.oldestXact = stopWatch()
	if p := firstErr.Load(); p != nil {
		res.firstErr = *p
	}
	return res, nil
}

func benchRoom(i int) string { return fmt.Sprintf("user-bench%d", i) }
