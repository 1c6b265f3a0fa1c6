package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"text/tabwriter"
	"time"
)

// catchUpRoom is the room scenario (e) reads back over REST.
const catchUpRoom = "user-catchup"

// seedRoom publishes n events to room in batches of 1000, in order, with
// payloads {"i": from+k, "pad": …} for k in [0, n).
func seedRoom(ctx context.Context, s *server, client *http.Client, room string, from, n int) error {
	for done := 0; done < n; {
		k := min(1000, n-done)
		ps := make([][]byte, k)
		for j := range ps {
			ps[j] = fmt.Appendf(nil, `{"i":%d,"pad":"%s"}`, from+done+j, payloadPad)
		}
		if err := s.publishBatch(ctx, client, room, ps); err != nil {
			return fmt.Errorf("seed %s: %w", room, err)
		}
		done += k
	}
	return nil
}

// catchUpRun is one REST catch-up: how long reading n events took, how
// much of it the client spent decoding, and in how many pages.
type catchUpRun struct {
	took, decode time.Duration
	pages        int
}

// catchUpEvent is one event of a catch-up page as the client decodes it:
// the whole envelope, with the payload kept as raw JSON (validated by the
// decoder, not unpacked into a map: what a payload holds is the
// application's business, and a client that needs it unmarshals it into
// its own type) and the time as the RFC 3339 string it is sent as.
type catchUpEvent struct {
	ID       string          `json:"id"`
	Room     string          `json:"room"`
	Seq      int64           `json:"seq"`
	Event    string          `json:"event"`
	Payload  json.RawMessage `json:"payload"`
	At       string          `json:"at"`
	Producer string          `json:"producer"`
}

// catchUpPage is a GET /api/v1/rooms/{room}/events answer.
type catchUpPage struct {
	Room   string         `json:"room"`
	Events []catchUpEvent `json:"events"`
	Head   int64          `json:"head"`
	More   bool           `json:"more"`
	Reset  bool           `json:"reset"`
}

// readCatchUp reads room's events from seq 0 in pages of page
// (GET /api/v1/rooms/{room}/events?after=&limit=), as a reconnecting
// client does, and checks it got n: every event of room, seqs 1..n in
// order with no gap, each with its id, type and a payload.
func readCatchUp(ctx context.Context, s *server, client *http.Client, room string, n, page int) (catchUpRun, error) {
	t0 := time.Now()
	var run catchUpRun
	var body bytes.Buffer
	after, got := int64(0), 0
	for {
		req, err := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/api/v1/rooms/%s/events?after=%d&limit=%d", s.base, room, after, page), nil)
		if err != nil {
			return catchUpRun{}, err
		}
		req.Header.Set("Authorization", "Bearer "+s.bearer)
		resp, err := client.Do(req)
		if err != nil {
			return catchUpRun{}, fmt.Errorf("catch-up page after %d: %w", after, err)
		}
		body.Reset()
		if resp.ContentLength > 0 {
			// One allocation for the page, as a client that reads the
			// Content-Length makes, instead of doubling up to it.
			body.Grow(int(resp.ContentLength))
		}
		_, err = body.ReadFrom(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			return catchUpRun{}, fmt.Errorf("catch-up page after %d: %d %v %.200s", after, resp.StatusCode, err, body.Bytes())
		}
		td := time.Now()
		var p catchUpPage
		err = json.Unmarshal(body.Bytes(), &p)
		run.decode += time.Since(td)
		if err != nil {
			return catchUpRun{}, fmt.Errorf("catch-up page after %d: %w", after, err)
		}
		run.pages++
		if p.Room != room || p.Reset {
			return catchUpRun{}, fmt.Errorf("catch-up page after %d: room %q, reset %v", after, p.Room, p.Reset)
		}
		for _, e := range p.Events {
			if e.Seq != after+1 || e.Room != room || e.ID == "" || e.Event == "" || len(e.Payload) == 0 {
				return catchUpRun{}, fmt.Errorf("catch-up: seq %d (room %q, id %q, event %q, %d payload bytes) after seq %d", e.Seq, e.Room, e.ID, e.Event, len(e.Payload), after)
			}
			after = e.Seq
			got++
		}
		if !p.More || len(p.Events) == 0 {
			break
		}
	}
	if got != n {
		return catchUpRun{}, fmt.Errorf("catch-up read %d events, want %d", got, n)
	}
	run.took = time.Since(t0)
	return run, nil
}

// catchUpTarget is scenario (e) on one target.
type catchUpTarget struct {
	name       string
	rest       []catchUpRun
	restErr    error // also set when the target has no REST catch-up
	sock       []recoveryRun
	sockErr    error  // the first failed run's
	sockFailed int    // failed runs
	sockHow    string // how the target recovers, if worth saying
}

// errNoHistory marks a target with no history to catch up from.
var errNoHistory = errors.New("n/a (no persistence: a client that was away has nothing to catch up from)")

// runCatchUps is scenario (e) on every target. REST: it seeds
// o.CatchUpEvents events into one room of each roomlogd, then reads them
// back o.CatchUpReps times, one read per target in turn. Socket.IO
// recovery: o.CatchUpReps runs of runRecoveryCatchUp per target in turn,
// each in a fresh room; for the Node target on a second peer started with
// socket.io's in-memory connection state recovery on (the node target
// itself runs without it, as in the other scenarios).
func runCatchUps(ctx context.Context, o scenarioOptions, targets []running, root string, watch *xactWatch, progress io.Writer) []catchUpTarget {
	res := make([]catchUpTarget, len(targets))
	client := &http.Client{Timeout: 60 * time.Second}
	defer client.CloseIdleConnections()
	sockTarget := make([]*server, len(targets))
	for ti, t := range targets {
		res[ti].name = t.s.name
		sockTarget[ti] = t.s
		if t.key == "node" {
			res[ti].restErr = errNoHistory
			res[ti].sockHow = "in-memory connection state recovery (not durable, 2 min window)"
			p, err := startPeer(ctx, root, []string{"ROOMLOG_PEER_RECOVERY=1"})
			if err != nil {
				res[ti].sockErr = fmt.Errorf("start the peer with recovery: %w", err)
				sockTarget[ti] = nil
				continue
			}
			defer p.stop()
			fmt.Fprintf(progress, "  (e) node socket.io with connection state recovery at %s\n", p.base)
			sockTarget[ti] = p
			continue
		}
		fmt.Fprintf(progress, "  %s: (e) seeding %d events into %s\n", t.s.name, o.CatchUpEvents, catchUpRoom)
		res[ti].restErr = seedRoom(ctx, t.s, client, catchUpRoom, 1, o.CatchUpEvents)
	}
	for range o.CatchUpReps {
		for ti, t := range targets {
			if res[ti].restErr != nil || ctx.Err() != nil {
				continue
			}
			r, err := readCatchUp(ctx, t.s, client, catchUpRoom, o.CatchUpEvents, o.CatchUpPage)
			if err != nil {
				if len(res[ti].rest) > 0 {
					err = fmt.Errorf("then failed: %w", err)
				}
				res[ti].restErr = err
				continue
			}
			res[ti].rest = append(res[ti].rest, r)
		}
	}
	for rep := range o.CatchUpReps {
		for ti := range targets {
			if sockTarget[ti] == nil || ctx.Err() != nil {
				continue
			}
			r, err := runRecoveryCatchUp(ctx, sockTarget[ti], fmt.Sprintf("user-recover%d", rep), o.CatchUpEvents, watch)
			if err != nil {
				// Keep going: the other runs say whether it is rare.
				res[ti].sockFailed++
				if res[ti].sockErr == nil {
					res[ti].sockErr = err
				}
				fmt.Fprintf(progress, "  %s: (e) recovery run %d/%d: %v; server log tail:\n%s\n", res[ti].name, rep+1, o.CatchUpReps, err, tail(sockTarget[ti].logs.String(), 2000))
				continue
			}
			fmt.Fprintf(progress, "  %s: (e) recovery run %d/%d: ack %s, %d events in %s; oldest cluster xact %s\n", res[ti].name, rep+1, o.CatchUpReps, ms(r.ack), o.CatchUpEvents, ms(r.took), r.oldestXact)
			res[ti].sock = append(res[ti].sock, r)
		}
	}
	return res
}

// printCatchUp prints scenario (e).
func printCatchUp(out io.Writer, o scenarioOptions, rs []catchUpTarget) {
	fmt.Fprintf(out, "\n(e) catch-up of %d missed events of one room, %d runs per target in interleaved order, median (min-max):\n", o.CatchUpEvents, o.CatchUpReps)
	fmt.Fprintf(out, "    REST: GET /api/v1/rooms/{room}/events?after=&limit=%d, from the first request to the last page decoded (each event's envelope decoded, its payload kept as raw JSON), seqs checked gap-free\n", o.CatchUpPage)
	fmt.Fprintf(out, "    Socket.IO recovery: a subscribed client that got one live event loses its transport (no DISCONNECT), %d events are published to its room, it reconnects with {token, pid, offset}; from the reconnect's dial to the last missed event, all checked recovered, complete and in order\n", o.CatchUpEvents)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  target\tREST\tof which client decode\tSocket.IO recovery\tof which CONNECT ack\toldest xact during recovery (worst run)\t\n")
	for _, r := range rs {
		sockErr := r.sockErr
		if sockErr != nil && len(r.sock) > 0 {
			sockErr = fmt.Errorf("%d of %d runs failed, first: %w", r.sockFailed, r.sockFailed+len(r.sock), sockErr)
		}
		sock := spread(r.sock, sockErr, func(c recoveryRun) time.Duration { return c.took })
		ack, xact := "", ""
		if len(r.sock) > 0 {
			ack = spread(r.sock, nil, func(c recoveryRun) time.Duration { return c.ack })
			var worst time.Duration
			for _, run := range r.sock {
				worst = max(worst, run.oldestXact.age)
			}
			xact = ms(worst)
		}
		if r.sockHow != "" {
			sock += " [" + r.sockHow + "]"
		}
		rest, decode := spread(r.rest, r.restErr, func(c catchUpRun) time.Duration { return c.took }), ""
		if len(r.rest) > 0 {
			if rest += fmt.Sprintf(" in %d page", r.rest[0].pages); r.rest[0].pages != 1 {
				rest += "s"
			}
			decode = spread(r.rest, nil, func(c catchUpRun) time.Duration { return c.decode })
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t\n", r.name, rest, decode, sock, ack, xact)
	}
	_ = tw.Flush()
}

// spread formats the median, min and max of f over runs, or why there are
// none.
func spread[T any](runs []T, err error, f func(T) time.Duration) string {
	if len(runs) == 0 {
		switch {
		case err == nil:
			return "-"
		case errors.Is(err, errNoHistory):
			return err.Error()
		}
		return "failed: " + err.Error()
	}
	ds := make([]time.Duration, len(runs))
	for i, r := range runs {
		ds[i] = f(r)
	}
	s := fmt.Sprintf("%s (%s-%s)", ms(median(ds)), ms(slices.Min(ds)), ms(slices.Max(ds)))
	if err != nil {
		s += "; " + err.Error()
	}
	return s
}

// tail is the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
