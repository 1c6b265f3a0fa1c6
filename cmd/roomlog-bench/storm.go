package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// stormResult is scenario (f).
type stormResult struct {
	clients, rooms, published int
	connectTook               time.Duration
	delivered, expected       int64
	downtime                  time.Duration // SIGKILL -> restarted roomlogd ready
	times                     []time.Duration
	recovered, unrecovered    int
	failed                    int
	firstErr                  error
	replayed                  int64 // x-bench events received after reconnecting, before the live check
	liveOK                    int   // clients that got the post-restart live event
}

// runStorm is scenario (f) on roomlogd: clients connected and subscribed,
// some events published and delivered, SIGKILL, restart on the same
// database and port (nothing published meanwhile), then every client
// reconnects after a uniform 0-1 s jitter (retrying every 200-500 ms while
// refused) with {token, pid, offset}; it measures, from the moment the
// restarted server is ready, when each client's CONNECT ack carried its old
// pid (recovered=true). Finally one event per room checks the restored
// subscriptions deliver live.
func runStorm(ctx context.Context, s *server, n, rooms, events int, progress io.Writer) (stormResult, *server, error) {
	res := stormResult{clients: n, rooms: rooms}
	cs := make([]*recoveryClient, n)
	for i := range cs {
		cs[i] = &recoveryClient{token: s.token(fmt.Sprintf("bench%d", i)), room: benchRoom(i % rooms)}
	}
	defer func() {
		for _, c := range cs {
			c.dropTransport()
		}
	}()

	t0 := time.Now()
	err := inParallel(ctx, n, connectParallel, func(i int) error {
		c := cs[i]
		if _, err := c.connect(ctx, s.base, map[string]string{"token": c.token}); err != nil {
			return err
		}
		return c.subscribe()
	})
	if err != nil {
		return res, s, err
	}
	res.connectTook = time.Since(t0)
	fmt.Fprintf(progress, "  (f) %d clients connected and subscribed to %d rooms in %v\n", n, rooms, res.connectTook.Round(time.Millisecond))

	// Publish events round-robin over the rooms and wait for delivery.
	client := &http.Client{Timeout: 30 * time.Second}
	perRoom := make([]int64, rooms)
	jobs := make(chan int)
	var pubErr atomic.Pointer[error]
	var pubs sync.WaitGroup
	for range 32 {
		pubs.Add(1)
		go func() {
			defer pubs.Done()
			for i := range jobs {
				p := fmt.Appendf(nil, `{"t":%d,"pad":"%s"}`, time.Now().UnixNano(), payloadPad)
				if err := s.publish(ctx, client, benchRoom(i%rooms), p); err != nil {
					pubErr.CompareAndSwap(nil, &err)
				}
			}
		}()
	}
	for i := range events {
		jobs <- i
		perRoom[i%rooms]++
	}
	close(jobs)
	pubs.Wait()
	if p := pubErr.Load(); p != nil {
		return res, s, fmt.Errorf("publish: %w", *p)
	}
	res.published = events
	for i := range cs {
		res.expected += perRoom[i%rooms]
	}
	total := func() int64 {
		var t int64
		for _, c := range cs {
			t += c.events.Load()
		}
		return t
	}
	waitFor(ctx, func() bool { return total() >= res.expected }, 10*time.Second)
	res.delivered = total()
	noOffset := 0
	for _, c := range cs {
		if _, off := c.state(); off == "" {
			noOffset++
		}
	}
	if noOffset > 0 {
		return res, s, fmt.Errorf("%d clients have no offset (no session-offset / event offsets seen)", noOffset)
	}

	// Crash, restart, storm.
	fmt.Fprintf(progress, "  (f) %d/%d events delivered; SIGKILL roomlogd (pid %d)\n", res.delivered, res.expected, s.pid())
	killedAt := time.Now()
	s.kill()
	for _, c := range cs {
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
		}
		c.ws.Close()
	}
	before := make([]int64, n)
	for i, c := range cs {
		before[i] = c.events.Load()
	}
	s2, err := s.relaunch(ctx)
	if err != nil {
		return res, nil, fmt.Errorf("restart: %w", err)
	}
	s = s2
	start := time.Now()
	res.downtime = start.Sub(killedAt)
	fmt.Fprintf(progress, "  (f) restarted on %s after %v; %d clients reconnect with 0-1 s jitter\n", s.base, res.downtime.Round(time.Millisecond), n)

	type outcome struct {
		took      time.Duration
		recovered bool
		err       error
	}
	outs := make([]outcome, n)
	deadline := start.Add(60 * time.Second)
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(rand.N(time.Second))
			pid, off := c.state()
			for {
				got, err := c.connect(ctx, s.base, map[string]string{"token": c.token, "pid": pid, "offset": off})
				if err == nil {
					outs[i] = outcome{took: time.Since(start), recovered: got == pid}
					return
				}
				if time.Now().After(deadline) || ctx.Err() != nil {
					outs[i] = outcome{err: err}
					return
				}
				time.Sleep(200*time.Millisecond + rand.N(300*time.Millisecond))
			}
		}()
	}
	wg.Wait()
	for _, o := range outs {
		switch {
		case o.err != nil:
			res.failed++
			if res.firstErr == nil {
				res.firstErr = o.err
			}
		case o.recovered:
			res.recovered++
			res.times = append(res.times, o.took)
		default:
			res.unrecovered++
		}
	}
	slices.Sort(res.times)
	time.Sleep(time.Second) // replays in flight
	for i, c := range cs {
		res.replayed += c.events.Load() - before[i]
	}

	// Live check: one event per room must reach every recovered client.
	for i := range cs {
		before[i] = cs[i].events.Load()
	}
	for r := range rooms {
		p := fmt.Appendf(nil, `{"t":%d,"pad":"%s"}`, time.Now().UnixNano(), payloadPad)
		if err := s.publish(ctx, client, benchRoom(r), p); err != nil {
			return res, s, fmt.Errorf("publish after restart: %w", err)
		}
	}
	live := func() int {
		k := 0
		for i, c := range cs {
			if c.events.Load() > before[i] {
				k++
			}
		}
		return k
	}
	waitFor(ctx, func() bool { return live() >= n }, 10*time.Second)
	res.liveOK = live()
	return res, s, nil
}

// waitFor polls cond every 20 ms until it holds or d passed.
func waitFor(ctx context.Context, cond func() bool, d time.Duration) {
	end := time.Now().Add(d)
	for !cond() && time.Now().Before(end) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond) // polling counters
	}
}

// stormQuantile is the time by which q of all clients had recovered, or
// false if fewer did.
func (r stormResult) stormQuantile(q float64) (time.Duration, bool) {
	k := int(float64(r.clients)*q + 0.999999)
	if k < 1 {
		k = 1
	}
	if len(r.times) < k {
		return 0, false
	}
	return r.times[k-1], true
}

// stormRun is one run of scenario (f).
type stormRun struct {
	r   stormResult
	err error
}

func printStorm(out io.Writer, o scenarioOptions, runs []stormRun) {
	fmt.Fprintf(out, "\n(f) reconnect storm: %d clients in %d rooms, %d events published and delivered, roomlogd SIGKILLed and restarted on the same database and port, nothing published while down; clients reconnect with 0-1 s uniform jitter sending {token, pid, offset}; times from the restarted server's readiness, jitter included; %s:\n", o.StormClients, o.StormRooms, o.StormEvents, runsNote(o.Repeat))
	var q50, q99, q100 []time.Duration
	for k, run := range runs {
		r, name := run.r, "roomlog"
		if len(runs) > 1 {
			name = fmt.Sprintf("roomlog run %d", k+1)
		}
		if run.err != nil {
			fmt.Fprintf(out, "  %s: failed: %v\n", name, run.err)
		}
		if r.recovered+r.unrecovered+r.failed == 0 {
			continue
		}
		fmt.Fprintf(out, "  %s: initial connect+subscribe %v; delivered before the crash %d/%d; SIGKILL -> ready %v\n", name, r.connectTook.Round(time.Millisecond), r.delivered, r.expected, r.downtime.Round(time.Millisecond))
		q := func(f float64, acc *[]time.Duration) string {
			if d, ok := r.stormQuantile(f); ok {
				*acc = append(*acc, d)
				return d.Round(time.Millisecond).String()
			}
			return "not reached"
		}
		fmt.Fprintf(out, "  %s: recovered=true %d/%d (recovered=false %d, failed %d): 50%% by %s, 99%% by %s, 100%% by %s; events replayed %d (none were missed); live event after restart reached %d/%d\n",
			name, r.recovered, r.clients, r.unrecovered, r.failed, q(0.5, &q50), q(0.99, &q99), q(1, &q100), r.replayed, r.liveOK, r.clients)
		if r.firstErr != nil {
			fmt.Fprintf(out, "    first reconnect error: %v\n", r.firstErr)
		}
	}
	if len(runs) > 1 {
		f := func(ds []time.Duration) string {
			if len(ds) < len(runs) {
				return fmt.Sprintf("reached in %d of %d runs", len(ds), len(runs))
			}
			return median(ds).Round(time.Millisecond).String()
		}
		fmt.Fprintf(out, "  => roomlog: median 50%% by %s, 99%% by %s, 100%% by %s\n", f(q50), f(q99), f(q100))
	}
	fmt.Fprintf(out, "  node socket.io: n/a (no durable recovery: its in-memory recovery does not survive a restart)\n")
}
