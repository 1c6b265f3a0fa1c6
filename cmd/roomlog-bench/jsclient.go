package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os/exec"
	"path/filepath"
	"time"
)

// jsClient is test/js/bench/catchup.js, scenario (e)'s JavaScript client:
// Node's fetch() and await res.json() for REST, the official
// socket.io-client for recovery, timed inside the Node process. The tool
// starts one and sends it one command at a time (JSON lines on stdin; one
// JSON report per line on stdout).
type jsClient struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string // stdout, closed when it ends
	logs  *lockedBuffer
	// version is the Node and socket.io-client versions, from the ready
	// line.
	version string
}

// jsCatchUpScript is the script, relative to the module root.
var jsCatchUpScript = filepath.Join("test", "js", "bench", "catchup.js")

// startJSClient starts the script and waits for its ready line.
func startJSClient(ctx context.Context, root string) (*jsClient, error) {
	cmd := exec.Command("node", filepath.Join(root, jsCatchUpScript))
	logs := &lockedBuffer{}
	cmd.Stderr = logs
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("node %s: %w", jsCatchUpScript, err)
	}
	c := &jsClient{cmd: cmd, stdin: stdin, lines: make(chan string, 16), logs: logs}
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
	}()
	r, err := c.await(ctx, 20*time.Second, "ready")
	if err != nil {
		c.stop()
		return nil, err
	}
	c.version = fmt.Sprintf("Node %s, socket.io-client %s", r.Node, r.Client)
	return c, nil
}

// jsReport is one line the script writes.
type jsReport struct {
	T       string `json:"t"`
	Message string `json:"message"`
	// ready
	Node   string `json:"node"`
	Client string `json:"client"`
	// rest
	Ms     float64 `json:"ms"`
	JSONMs float64 `json:"jsonMs"`
	Pages  int     `json:"pages"`
	// recovered
	AckMs      float64 `json:"ackMs"`
	Got        int     `json:"got"`
	Recovered  bool    `json:"recovered"`
	Extensions string  `json:"extensions"`
}

// errJSTimeout is a report that did not come in time.
var errJSTimeout = errors.New("no answer from the JS client")

// parseJSReport parses one line of the script's stdout: a report of type
// want, or the error it reports.
func parseJSReport(line, want string) (jsReport, error) {
	var r jsReport
	if err := json.Unmarshal([]byte(line), &r); err != nil || r.T == "" {
		return jsReport{}, fmt.Errorf("JS client said %.200q", line)
	}
	switch r.T {
	case want:
		return r, nil
	case "error":
		return r, fmt.Errorf("JS client: %s", r.Message)
	}
	return r, fmt.Errorf("JS client said %q, want %q: %.200s", r.T, want, line)
}

// jsDuration is a performance.now() difference in milliseconds.
func jsDuration(ms float64) time.Duration {
	return time.Duration(math.Round(ms * float64(time.Millisecond)))
}

// restRun checks a "rest" report and returns it as a run: decode is the
// time spent in await res.json() (reading the body and parsing it).
func (r jsReport) restRun() (catchUpRun, error) {
	if r.Ms <= 0 || r.Pages < 1 || r.JSONMs < 0 || r.JSONMs > r.Ms {
		return catchUpRun{}, fmt.Errorf("JS client: implausible REST report: %+v", r)
	}
	return catchUpRun{took: jsDuration(r.Ms), decode: jsDuration(r.JSONMs), pages: r.Pages}, nil
}

// recoveryRun checks a "recovered" report of n events and returns it as
// a run (without the oldest transaction, which the tool watches).
func (r jsReport) recoveryRun(n int) (recoveryRun, error) {
	switch {
	case !r.Recovered:
		return recoveryRun{}, errors.New("JS client: not recovered (socket.recovered false)")
	case r.Got != n:
		return recoveryRun{}, fmt.Errorf("JS client: received %d of the %d missed events", r.Got, n)
	case r.Ms <= 0 || r.AckMs <= 0:
		return recoveryRun{}, fmt.Errorf("JS client: implausible recovery report: %+v", r)
	}
	ext := r.Extensions
	if ext == "" {
		ext = "none"
	}
	return recoveryRun{ack: jsDuration(r.AckMs), took: jsDuration(r.Ms), extensions: ext}, nil
}

// send writes one command.
func (c *jsClient) send(cmd map[string]any) error {
	b, err := json.Marshal(cmd)
	if err != nil {
		return err
	}
	_, err = c.stdin.Write(append(b, '\n'))
	return err
}

// await waits at most d for the next line and parses it as a report of
// type want.
func (c *jsClient) await(ctx context.Context, d time.Duration, want string) (jsReport, error) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case line, ok := <-c.lines:
		if !ok {
			return jsReport{}, fmt.Errorf("JS client ended (waiting for %q); its stderr:\n%s", want, tail(c.logs.String(), 2000))
		}
		return parseJSReport(line, want)
	case <-t.C:
		return jsReport{}, fmt.Errorf("%w in %v (waiting for %q)", errJSTimeout, d, want)
	case <-ctx.Done():
		return jsReport{}, ctx.Err()
	}
}

// abort ends the recover run in progress, if any, and skips every line
// up to the client's "aborted" (at most 10 s).
func (c *jsClient) abort(ctx context.Context) {
	if c.send(map[string]any{"op": "abort"}) != nil {
		return
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := c.await(ctx, time.Until(deadline), "aborted")
		if err == nil || r.T == "" {
			return
		}
	}
}

// stop closes its stdin (the script exits) and kills it after 5 s.
func (c *jsClient) stop() {
	if c == nil {
		return
	}
	_ = c.stdin.Close()
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
}

// readCatchUpJS is readCatchUp done by the JS client: one untimed read of
// the room's first 100 events (it opens the keep-alive connection and runs
// the code once), then the timed read of n events from seq 0 in pages of
// page, each fetched with the Authorization header readCatchUp sends, read
// with await res.json() and checked the same way.
func readCatchUpJS(ctx context.Context, c *jsClient, s *server, room string, n, page int) (catchUpRun, error) {
	err := c.send(map[string]any{"op": "rest", "base": s.base, "room": room, "n": n, "page": page, "bearer": s.bearer, "warm": 100})
	if err != nil {
		return catchUpRun{}, err
	}
	r, err := c.await(ctx, 90*time.Second, "rest")
	if err != nil {
		return catchUpRun{}, err
	}
	return r.restRun()
}

// runRecoveryCatchUpJS is runRecoveryCatchUp done by the JS client with
// socket.io-client: it connects with auth {token} and subscribes to room;
// the tool publishes one live event, on whose arrival the client closes
// its transport (socket.io.engine.close(): no DISCONNECT packet); the tool
// publishes n events; the client reconnects the same socket
// (socket.connect(), which presents {token, pid, offset}) and times the
// reconnect to the n-th missed event, checking socket.recovered, the
// count and the order.
func runRecoveryCatchUpJS(ctx context.Context, c *jsClient, s *server, room string, n int, watch *xactWatch) (run recoveryRun, err error) {
	client := &http.Client{Timeout: 60 * time.Second}
	defer client.CloseIdleConnections()
	if err := c.send(map[string]any{"op": "recover", "url": s.base, "token": s.token("recover-js"), "origin": benchOrigin, "room": room, "n": n}); err != nil {
		return recoveryRun{}, err
	}
	// Until the run ends on its own, a failure here must end it there too,
	// so that the next command finds the client idle.
	ended := false
	defer func() {
		if ended || errors.Is(err, errJSTimeout) {
			return
		}
		c.abort(ctx)
	}()
	fail := func(r jsReport, err error) error {
		ended = r.T == "error" || r.T == "recovered" // the run's last line
		return err
	}
	r, err := c.await(ctx, 40*time.Second, "subscribed")
	if err != nil {
		return recoveryRun{}, fail(r, err)
	}
	if err := s.publish(ctx, client, room, fmt.Appendf(nil, `{"i":0,"pad":"%s"}`, payloadPad)); err != nil {
		return recoveryRun{}, fmt.Errorf("publish the first event: %w", err)
	}
	if r, err = c.await(ctx, 40*time.Second, "dropped"); err != nil {
		return recoveryRun{}, fail(r, err)
	}
	if err := seedRoom(ctx, s, client, room, 1, n); err != nil {
		return recoveryRun{}, err
	}
	stopWatch := watch.start(ctx)
	if err := c.send(map[string]any{"op": "go"}); err != nil {
		stopWatch()
		return recoveryRun{}, err
	}
	r, err = c.await(ctx, 75*time.Second, "recovered")
	xact := stopWatch()
	if err != nil {
		return recoveryRun{}, fail(r, err)
	}
	ended = true
	run, err = r.recoveryRun(n)
	run.oldestXact = xact
	return run, err
}
