package main

import (
	"context"
	"encoding/json"
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
// rooms, Warmup then Duration.
type fanoutCell struct {
	Name     string
	Rooms    int
	Subs     int
	Rate     int
	Warmup   time.Duration
	Duration time.Duration
}

// fanoutResult is what one cell measured. Latency is from each publish's
// scheduled send time (carried in the payload) to its receipt by each
// subscriber, so a stalled server cannot hide behind a slowed sender
// (coordinated omission).
type fanoutResult struct {
	connectTook        time.Duration
	published, pubErrs int64
	expected, received int64
	deliver, ack       *hist
	elapsed            time.Duration
	firstErr           error
}

func (r fanoutResult) lossPct() float64 {
	if r.expected == 0 {
		return 0
	}
	return 100 * float64(max(0, r.expected-r.received)) / float64(r.expected)
}

// payloadPad makes a bench payload ~200 bytes, like a small chat message.
var payloadPad = strings.Repeat("x", 160)

// runFanout connects the cell's sockets to s, subscribes them, publishes
// at a fixed rate and collects delivery latencies.
func runFanout(ctx context.Context, s *server, c fanoutCell, progress io.Writer) (fanoutResult, error) {
	res := fanoutResult{deliver: &hist{}, ack: &hist{}}
	n := c.Rooms * c.Subs
	conns := make([]*sioConn, n)
	defer func() {
		var wg sync.WaitGroup
		sem := make(chan struct{}, 256)
		for _, sc := range conns {
			if sc != nil {
				wg.Add(1)
				sem <- struct{}{}
				go func() { defer wg.Done(); sc.Close(); <-sem }()
			}
		}
		wg.Wait()
	}()

	// Connect and subscribe, 64 at a time.
	t0 := time.Now()
	var connErr atomic.Pointer[error]
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := range n {
		if connErr.Load() != nil || ctx.Err() != nil {
			break
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			room := benchRoom(i % c.Rooms)
			sc, err := dialSIO(ctx, s.base, benchOrigin, s.token(fmt.Sprintf("bench-%d", i)))
			if err == nil {
				conns[i] = sc
				err = sc.subscribe(room)
			}
			if err != nil {
				err = fmt.Errorf("socket %d: %w", i, err)
				connErr.CompareAndSwap(nil, &err)
			}
		}()
	}
	wg.Wait()
	if p := connErr.Load(); p != nil {
		return res, *p
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	res.connectTook = time.Since(t0)
	fmt.Fprintf(progress, "  %s: %d sockets connected and subscribed in %v\n", s.name, n, res.connectTook.Round(time.Millisecond))

	measureFrom := time.Now().Add(c.Warmup).UnixNano()
	var received atomic.Int64
	var readers sync.WaitGroup
	for _, sc := range conns {
		readers.Add(1)
		go func() {
			defer readers.Done()
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
	start := time.Now()
	interval := time.Second / time.Duration(c.Rate)
	total := int((c.Warmup + c.Duration) / interval)
	for i := range total {
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
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
	res.elapsed = time.Since(start)
	res.published, res.pubErrs = published.Load(), pubErrs.Load()
	res.expected = (res.published - res.pubErrs) * int64(c.Subs)
	// Drain: wait until every expected delivery arrived, or 5 s of silence.
	last, lastChange := received.Load(), time.Now()
	for received.Load() < res.expected && time.Since(lastChange) < 5*time.Second && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond) // polling a counter
		if r := received.Load(); r != last {
			last, lastChange = r, time.Now()
		}
	}
	res.received = received.Load()
	if p := firstErr.Load(); p != nil {
		res.firstErr = *p
	}
	return res, nil
}

func benchRoom(i int) string { return fmt.Sprintf("user-bench%d", i) }

// catchUpResult is one catch-up measurement: reading N missed events of
// one room through REST pages of Page events.
type catchUpResult struct {
	events, pages int
	// runs are whole catch-ups; receive and decode split each into the
	// time from sending each request to its answer's last byte, and the
	// time the tool spends decoding the answers (encoding/json).
	runs, receive, decode []time.Duration
}

// runCatchUp appends n events to one room through the REST publish API
// (batches of 1000), then reads them all back from seq 0 in pages of page,
// as a reconnecting client does, reps times.
func runCatchUp(ctx context.Context, s *server, n, page, reps int) (catchUpResult, error) {
	var res catchUpResult
	room := "user-catchup"
	client := &http.Client{Timeout: 60 * time.Second}
	for done := 0; done < n; {
		k := min(1000, n-done)
		var b strings.Builder
		b.WriteString(`{"events":[`)
		for i := range k {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"event":"x-bench","room":%q,"payload":{"t":%d,"pad":"%s"}}`, room, done+i, payloadPad)
		}
		b.WriteString("]}")
		if err := post(ctx, client, s.base+"/api/v1/events", "Bearer "+s.apiKey, []byte(b.String())); err != nil {
			return res, fmt.Errorf("seed catch-up: %w", err)
		}
		done += k
	}
	for range reps {
		t0 := time.Now()
		var receive, decode time.Duration
		after, got, pages := int64(0), 0, 0
		for {
			t1 := time.Now()
			req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/api/v1/rooms/%s/events?after=%d&limit=%d", s.base, room, after, page), nil)
			req.Header.Set("Authorization", "Bearer "+s.bearer)
			resp, err := client.Do(req)
			if err != nil {
				return res, err
			}
			// Read, then decode (as json.Decoder does too: it buffers the
			// whole value before decoding it), so that the two can be
			// timed apart.
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			t2 := time.Now()
			receive += t2.Sub(t1)
			if err != nil || resp.StatusCode != 200 {
				return res, fmt.Errorf("catch-up page after %d: %d %v", after, resp.StatusCode, err)
			}
			var p struct {
				Events []struct {
					Seq int64 `json:"seq"`
				} `json:"events"`
				More bool `json:"more"`
			}
			err = json.Unmarshal(body, &p)
			decode += time.Since(t2)
			if err != nil {
				return res, fmt.Errorf("catch-up page after %d: %w", after, err)
			}
			pages++
			got += len(p.Events)
			if len(p.Events) > 0 {
				after = p.Events[len(p.Events)-1].Seq
			}
			if !p.More || len(p.Events) == 0 {
				break
			}
		}
		if got != n {
			return res, errors.New(fmt.Sprint("catch-up read ", got, " events, want ", n))
		}
		res.events, res.pages = got, pages
		res.runs = append(res.runs, time.Since(t0))
		res.receive = append(res.receive, receive)
		res.decode = append(res.decode, decode)
	}
	return res, nil
}
