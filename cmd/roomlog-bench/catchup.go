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

// catchUpTarget is scenario (e) on one target, with each client: the
// Go client (readCatchUp, runRecoveryCatchUp) and the JS client
// (test/js/bench/catchup.js: fetch and socket.io-client).
type catchUpTarget struct {
	name    string
	sockHow string // how the target recovers, if worth saying
	goc, js catchUpClient
}

// catchUpClient is one client's runs of scenario (e) on one target.
type catchUpClient struct {
	rest       []catchUpRun
	restErr    error // also set when the target has no REST catch-up
	sock       []recoveryRun
	sockErr    error // the first failed run's
	sockFailed int   // failed runs
}

// errNoHistory marks a target with no history to catch up from.
var errNoHistory = errors.New("n/a (no persistence: a client that was away has nothing to catch up from)")

// runCatchUps is scenario (e) on every target, with the Go client and the
// JS client (test/js/bench/catchup.js, one process for the whole scenario).
// REST: it seeds o.CatchUpEvents events into one room of each roomlogd,
// then reads them back o.CatchUpReps times, one read per target and
// client in turn (Go, then JS). Socket.IO recovery: o.CatchUpReps runs of
// runRecoveryCatchUp and runRecoveryCatchUpJS per target in turn, each in
// a fresh room; for the Node target on a second peer started with
// socket.io's in-memory connection state recovery on (the node target
// itself runs without it, as in the other scenarios).
func runCatchUps(ctx context.Context, o scenarioOptions, targets []running, root string, watch *xactWatch, progress io.Writer) catchUpResults {
	res := make([]catchUpTarget, len(targets))
	jsVersion := ""
	client := &http.Client{Timeout: 60 * time.Second}
	defer client.CloseIdleConnections()
	sockTarget := make([]*server, len(targets))
	for ti, t := range targets {
		res[ti].name = t.s.name
		sockTarget[ti] = t.s
		if t.key == "node" {
			res[ti].goc.restErr, res[ti].js.restErr = errNoHistory, errNoHistory
			res[ti].sockHow = "in-memory connection state recovery (not durable, 2 min window)"
			p, err := startPeer(ctx, root, []string{"ROOMLOG_PEER_RECOVERY=1"})
			if err != nil {
				err = fmt.Errorf("start the peer with recovery: %w", err)
				res[ti].goc.sockErr, res[ti].js.sockErr = err, err
				sockTarget[ti] = nil
				continue
			}
			defer p.stop()
			fmt.Fprintf(progress, "  (e) node socket.io with connection state recovery at %s\n", p.base)
			sockTarget[ti] = p
			continue
		}
		fmt.Fprintf(progress, "  %s: (e) seeding %d events into %s\n", t.s.name, o.CatchUpEvents, catchUpRoom)
		err := seedRoom(ctx, t.s, client, catchUpRoom, 1, o.CatchUpEvents)
		res[ti].goc.restErr, res[ti].js.restErr = err, err
	}

	// The JS client, started again after a run it did not answer in time.
	var js *jsClient
	defer func() { js.stop() }()
	jsClientFor := func() (*jsClient, error) {
		if js != nil {
			return js, nil
		}
		c, err := startJSClient(ctx, root)
		if err != nil {
			return nil, fmt.Errorf("start the JS client: %w", err)
		}
		js, jsVersion = c, c.version
		return js, nil
	}
	jsFailed := func(err error) {
		if errors.Is(err, errJSTimeout) {
			js.stop()
			js = nil
		}
	}
	failed := func(c *catchUpClient, err error) {
		if len(c.rest) > 0 {
			err = fmt.Errorf("then failed: %w", err)
		}
		c.restErr = err
	}

	for rep := range o.CatchUpReps {
		for ti, t := range targets {
			if ctx.Err() != nil {
				continue
			}
			if c := &res[ti].goc; c.restErr == nil {
				r, err := readCatchUp(ctx, t.s, client, catchUpRoom, o.CatchUpEvents, o.CatchUpPage)
				if err != nil {
					failed(c, err)
				} else {
					c.rest = append(c.rest, r)
				}
			}
			if c := &res[ti].js; c.restErr == nil {
				jc, err := jsClientFor()
				var r catchUpRun
				if err == nil {
					r, err = readCatchUpJS(ctx, jc, t.s, catchUpRoom, o.CatchUpEvents, o.CatchUpPage)
				}
				if err != nil {
					jsFailed(err)
					failed(c, err)
					fmt.Fprintf(progress, "  %s: (e) JS client (fetch) REST run %d/%d: %v\n", t.s.name, rep+1, o.CatchUpReps, err)
				} else {
					c.rest = append(c.rest, r)
					fmt.Fprintf(progress, "  %s: (e) JS client (fetch) REST run %d/%d: %s in %d page(s), of which await res.json() %s\n", t.s.name, rep+1, o.CatchUpReps, ms(r.took), r.pages, ms(r.decode))
				}
			}
		}
	}
	for rep := range o.CatchUpReps {
		for ti := range targets {
			if sockTarget[ti] == nil || ctx.Err() != nil {
				continue
			}
			s := sockTarget[ti]
			r, err := runRecoveryCatchUp(ctx, s, fmt.Sprintf("user-recover%d", rep), o.CatchUpEvents, watch)
			res[ti].goc.recoveryDone(progress, res[ti].name+": (e) recovery run", rep, o, s, r, err, "")
			if ctx.Err() != nil {
				continue
			}
			var jsLogs string
			jc, err := jsClientFor()
			if err == nil {
				r, err = runRecoveryCatchUpJS(ctx, jc, s, fmt.Sprintf("user-recover-js%d", rep), o.CatchUpEvents, watch)
				jsLogs = jc.logs.String()
				jsFailed(err)
			}
			res[ti].js.recoveryDone(progress, res[ti].name+": (e) JS client (socket.io-client) recovery run", rep, o, s, r, err, jsLogs)
		}
	}
	return catchUpResults{targets: res, jsVersion: jsVersion}
}

// catchUpResults is scenario (e): every target's runs and the JS client's
// versions ("" if it never started).
type catchUpResults struct {
	targets   []catchUpTarget
	jsVersion string
}

// recoveryDone records one recovery run of c (run rep, failed if err) and
// reports it on progress, with the server's log tail and the client's
// (jsLogs) if it failed.
func (c *catchUpClient) recoveryDone(progress io.Writer, what string, rep int, o scenarioOptions, s *server, r recoveryRun, err error, jsLogs string) {
	if err != nil {
		// Keep going: the other runs say whether it is rare.
		c.sockFailed++
		if c.sockErr == nil {
			c.sockErr = err
		}
		fmt.Fprintf(progress, "  %s %d/%d: %v; server log tail:\n%s\n", what, rep+1, o.CatchUpReps, err, tail(s.logs.String(), 2000))
		if jsLogs != "" {
			fmt.Fprintf(progress, "  JS client stderr tail:\n%s\n", tail(jsLogs, 2000))
		}
		return
	}
	ext := ""
	if r.extensions != "" {
		ext = "; websocket extensions: " + r.extensions
	}
	fmt.Fprintf(progress, "  %s %d/%d: ack %s, %d events in %s; oldest cluster xact %s%s\n", what, rep+1, o.CatchUpReps, ms(r.ack), o.CatchUpEvents, ms(r.took), r.oldestXact, ext)
	c.sock = append(c.sock, r)
}

// catchUpClients names scenario (e)'s clients, as its table does.
var catchUpClients = [...]string{
	"Go (net/http + encoding/json; raw websocket)",
	"JS (Node fetch + await res.json(); socket.io-client)",
}

// printCatchUp prints scenario (e): a row per target and client.
func printCatchUp(out io.Writer, o scenarioOptions, cu catchUpResults) {
	jsVersion := cu.jsVersion
	if jsVersion == "" {
		jsVersion = "Node (did not start)"
	}
	fmt.Fprintf(out, "\n(e) catch-up of %d missed events of one room, %d runs per target and client in interleaved order, median (min-max):\n", o.CatchUpEvents, o.CatchUpReps)
	fmt.Fprintf(out, "    REST: GET /api/v1/rooms/{room}/events?after=&limit=%d, from the first request to the last page decoded and checked (seqs gap-free, room, id, type, payload)\n", o.CatchUpPage)
	fmt.Fprintf(out, "      Go client: reads the body, decodes each event's envelope with encoding/json, its payload kept as raw JSON; \"of which client decode\" is encoding/json alone\n")
	fmt.Fprintf(out, "      JS client: %s; fetch() then await res.json() (the whole page parsed, payloads included), timed with performance.now() inside the process, after one untimed request for 100 events; \"of which client decode\" is the time in await res.json(): reading the body and parsing it\n", jsVersion)
	fmt.Fprintf(out, "    Socket.IO recovery: a subscribed client that got one live event loses its transport (no DISCONNECT), %d events are published to its room, it reconnects with {token, pid, offset}; from the reconnect's start to the last missed event, all checked recovered, complete and in order\n", o.CatchUpEvents)
	fmt.Fprintf(out, "      Go client: a raw websocket Socket.IO client, the socket closed without a close frame, timed from the reconnect's dial\n")
	fmt.Fprintf(out, "      JS client: socket.io-client in Node, socket.io.engine.close() then socket.connect(), timed from socket.connect() to the n-th event handed to the application; \"of which CONNECT ack\" is its \"connect\" event\n")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  target\tclient\tREST\tof which client decode\tSocket.IO recovery\tof which CONNECT ack\toldest xact during recovery (worst run)\t\n")
	for _, r := range cu.targets {
		for ci, c := range []catchUpClient{r.goc, r.js} {
			rest, decode, sock, ack, xact := c.cells(r.sockHow)
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.name, catchUpClients[ci], rest, decode, sock, ack, xact)
		}
	}
	_ = tw.Flush()
}

// cells formats c's columns of the (e) table; sockHow is how the target
// recovers, if worth saying.
func (c catchUpClient) cells(sockHow string) (rest, decode, sock, ack, xact string) {
	sockErr := c.sockErr
	if sockErr != nil && len(c.sock) > 0 {
		sockErr = fmt.Errorf("%d of %d runs failed, first: %w", c.sockFailed, c.sockFailed+len(c.sock), sockErr)
	}
	sock = spread(c.sock, sockErr, func(c recoveryRun) time.Duration { return c.took })
	if len(c.sock) > 0 {
		ack = spread(c.sock, nil, func(c recoveryRun) time.Duration { return c.ack })
		var worst time.Duration
		for _, run := range c.sock {
			worst = max(worst, run.oldestXact.age)
		}
		xact = ms(worst)
	}
	if sockHow != "" {
		sock += " [" + sockHow + "]"
	}
	rest = spread(c.rest, c.restErr, func(c catchUpRun) time.Duration { return c.took })
	if len(c.rest) > 0 {
		if rest += fmt.Sprintf(" in %d page", c.rest[0].pages); c.rest[0].pages != 1 {
			rest += "s"
		}
		decode = spread(c.rest, nil, func(c catchUpRun) time.Duration { return c.decode })
	}
	return rest, decode, sock, ack, xact
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
