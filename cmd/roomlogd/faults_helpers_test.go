//go:build faults

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// daemon is one roomlogd process of a fault test, on a fixed port so that a
// restart serves the same address.
type daemon struct {
	t      *testing.T
	name   string
	bin    string
	env    map[string]string
	port   int
	base   string
	cmd    *exec.Cmd
	exited chan error
	logs   *syncBuffer
}

// newDaemon builds roomlogd (once) and returns a stopped daemon serving
// dbURL on a free port of 127.0.0.1. extra overrides testEnv. The process
// is killed when the test ends.
func newDaemon(t *testing.T, name, dbURL string, extra map[string]string) *daemon {
	t.Helper()
	bin, err := buildServer()
	if err != nil {
		t.Fatal(err)
	}
	env := testEnv(dbURL)
	for k, v := range extra {
		env[k] = v
	}
	port := freePort(t)
	env["ROOMLOG_ADDR"] = fmt.Sprintf("127.0.0.1:%d", port)
	d := &daemon{t: t, name: name, bin: bin, env: env, port: port, base: fmt.Sprintf("http://127.0.0.1:%d", port), logs: &syncBuffer{}}
	t.Cleanup(func() {
		if d.running() {
			_ = d.cmd.Process.Kill()
			<-d.exited
		}
		if t.Failed() {
			t.Logf("%s logs (tail):\n%s", d.name, tail(d.logs.String(), 4000))
		}
	})
	return d
}

func (d *daemon) running() bool { return d.cmd != nil && d.cmd.ProcessState == nil }

// start starts the process and waits until /readyz answers 200; it returns
// how long that took.
func (d *daemon) start() time.Duration {
	d.t.Helper()
	began := time.Now()
	cmd := exec.Command(d.bin)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range d.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	fmt.Fprintf(d.logs, "---- %s start %s\n", d.name, began.Format(time.RFC3339Nano))
	cmd.Stdout, cmd.Stderr = d.logs, d.logs
	if err := cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.cmd = cmd
	d.exited = make(chan error, 1)
	go func() { d.exited <- cmd.Wait() }()
	if err := waitReady(d.base, 30*time.Second, d.exited); err != nil {
		d.t.Fatalf("%s not ready: %v\n%s", d.name, err, tail(d.logs.String(), 4000))
	}
	return time.Since(began)
}

// kill sends SIGKILL and waits for the process to be gone.
func (d *daemon) kill() {
	d.t.Helper()
	if !d.running() {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-d.exited:
	case <-time.After(10 * time.Second):
		d.t.Fatalf("%s: no exit 10s after SIGKILL", d.name)
	}
}

// waitReady polls base/readyz until it answers 200, the process exits or
// total elapses.
func waitReady(base string, total time.Duration, exited <-chan error) error {
	deadline := time.Now().Add(total)
	c := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("process exited: %v", err)
		default:
		}
		resp, err := c.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v (last: %v)", total, err)
		}
		time.Sleep(20 * time.Millisecond) // polling a child process
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// pubResult is the outcome of one publish attempt.
type pubResult struct {
	status int
	id     string
	seqs   map[string]int64 // room → seq
	code   string           // error code
	header http.Header
	err    error // transport error: the outcome is unknown
}

// publishClient never waits long on a dead or stopped server.
var publishClient = &http.Client{Timeout: 5 * time.Second}

// publish posts one x-fault event with idempotency key key to rooms.
func publish(base, key string, rooms []string, payload map[string]any) pubResult {
	body, _ := json.Marshal(map[string]any{"event": "x-fault", "rooms": rooms, "payload": payload, "id": key})
	return publishRaw(base, testKey, body)
}

func publishRaw(base, apiKey string, body []byte) pubResult {
	req, err := http.NewRequest("POST", base+"/api/v1/events", bytes.NewReader(body))
	if err != nil {
		return pubResult{err: err}
	}
	req.Header.Set("Authorization", "Bearer "+apiKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := publishClient.Do(req)
	if err != nil {
		return pubResult{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	r := pubResult{status: resp.StatusCode, header: resp.Header}
	if err != nil {
		r.err = err
		return r
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct {
				Code string `json:"code"`
			} `json:"error"`
		}
		_ = json.Unmarshal(b, &e)
		r.code = e.Error.Code
		return r
	}
	var out struct {
		Events []struct {
			ID         string `json:"id"`
			Deliveries []struct {
				Room string `json:"room"`
				Seq  int64  `json:"seq"`
			} `json:"deliveries"`
		} `json:"events"`
	}
	if err := json.Unmarshal(b, &out); err != nil || len(out.Events) != 1 {
		r.err = fmt.Errorf("bad publish answer %q: %v", b, err)
		return r
	}
	r.id = out.Events[0].ID
	r.seqs = map[string]int64{}
	for _, d := range out.Events[0].Deliveries {
		r.seqs[d.Room] = d.Seq
	}
	return r
}

// logFigures are what checkLog finds in the events table.
type logFigures struct {
	rows, rooms, gaps, dupSeqs, dupKeys int64
}

// checkLog checks that every room of the log holds seq 1..N with no gap or
// duplicate, and that no idempotency key ("k" in the x-fault payload)
// produced more than one event. It returns the figures and the heads.
func checkLog(t *testing.T, pool *pgxpool.Pool) (logFigures, map[string]int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var f logFigures
	heads := map[string]int64{}
	rows, err := pool.Query(ctx, `SELECT room, count(*), count(DISTINCT seq), min(seq), max(seq) FROM events GROUP BY room`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var room string
		var n, distinct, lo, hi int64
		if err := rows.Scan(&room, &n, &distinct, &lo, &hi); err != nil {
			t.Fatal(err)
		}
		f.rows += n
		f.rooms++
		heads[room] = hi
		f.dupSeqs += n - distinct
		// A gap-free room holds exactly 1..hi.
		f.gaps += (hi - distinct) + (lo - 1)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	// One event may have several rows (one per room); a key is duplicated
	// when it appears under two event ids.
	err = pool.QueryRow(ctx, `SELECT count(*) FROM (
		SELECT payload->>'k' FROM events WHERE type = 'x-fault' AND payload->>'k' IS NOT NULL
		GROUP BY 1 HAVING count(DISTINCT event_id) > 1) d`).Scan(&f.dupKeys)
	if err != nil {
		t.Fatal(err)
	}
	return f, heads
}

// eventIDAt returns the event id stored at (room, seq), or "".
func eventIDAt(ctx context.Context, pool *pgxpool.Pool, room string, seq int64) (string, error) {
	var id string
	err := pool.QueryRow(ctx, `SELECT event_id::text FROM events WHERE room = $1 AND seq = $2`, room, seq).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	return id, err
}

// durStats summarises durations: n, max and median.
func durStats(ds []time.Duration) string {
	if len(ds) == 0 {
		return "n=0"
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return fmt.Sprintf("n=%d median=%v max=%v", len(s), s[len(s)/2].Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond))
}
