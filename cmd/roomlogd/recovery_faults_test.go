//go:build faults

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/eventstoretest"
)

// recClient is one socket's state as test/js/recovery.js reports it.
type recClient struct {
	ID          string           `json:"id"`
	User        string           `json:"user"`
	Connects    int              `json:"connects"`
	Recovered   int              `json:"recovered"`
	Unrecovered int              `json:"unrecovered"`
	Joined      bool             `json:"joined"`
	Connected   bool             `json:"connected"`
	Last        map[string]int64 `json:"last"`
	Count       map[string]int64 `json:"count"`
	Dups        int64            `json:"dups"`
	Gaps        int64            `json:"gaps"`
	RecoveryMs  []int64          `json:"recoveryMs"`
	LastError   *string          `json:"lastError"`
}

// recJS is one test/js/recovery.js process.
type recJS struct {
	t       *testing.T
	stdin   io.WriteCloser
	wmu     sync.Mutex
	reports chan []recClient
}

func startRecJS(t *testing.T) *recJS {
	t.Helper()
	cmd, stdin, stdout, stderr := startNodeScript(t, "recovery.js")
	j := &recJS{t: t, stdin: stdin, reports: make(chan []recClient, 4)}
	ready := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 256<<20)
		for sc.Scan() {
			var r struct {
				T       string      `json:"t"`
				Message string      `json:"message"`
				Clients []recClient `json:"clients"`
			}
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Errorf("recovery.js: unparsable report %.200s", sc.Text())
				continue
			}
			switch r.T {
			case "ready":
				close(ready)
			case "report":
				j.reports <- r.Clients
			default:
				t.Errorf("recovery.js: %s", r.Message)
			}
		}
	}()
	t.Cleanup(func() {
		j.send(map[string]any{"op": "exit"})
		_ = stdin.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		_ = cmd.Wait()
		if s := stderr.String(); s != "" {
			t.Logf("recovery.js stderr: %s", tail(s, 2000))
		}
	})
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatalf("recovery.js not ready: %s", stderr.String())
	}
	return j
}

func (j *recJS) send(cmd map[string]any) {
	b, _ := json.Marshal(cmd)
	j.wmu.Lock()
	defer j.wmu.Unlock()
	_, _ = j.stdin.Write(append(b, '\n'))
}

func (j *recJS) report() []recClient {
	j.send(map[string]any{"op": "report"})
	select {
	case r := <-j.reports:
		return r
	case <-time.After(20 * time.Second):
		j.t.Fatal("recovery.js: no report")
		return nil
	}
}

// waitAll polls until ok holds for every client, or fails after total with
// the first client that does not satisfy it.
func (j *recJS) waitAll(total time.Duration, what string, ok func(recClient) error) []recClient {
	j.t.Helper()
	deadline := time.Now().Add(total)
	for {
		cs := j.report()
		var bad error
		for _, c := range cs {
			if err := ok(c); err != nil {
				bad = fmt.Errorf("%s: %w", c.ID, err)
				break
			}
		}
		if bad == nil {
			return cs
		}
		if time.Now().After(deadline) {
			j.t.Fatalf("%s: not reached after %v: %v", what, total, bad)
		}
		time.Sleep(50 * time.Millisecond) // polling a child process
	}
}

// publishTo appends n x-msg events to each room through the store, as
// another process would (the daemon may be down meanwhile).
func publishTo(t *testing.T, s *eventstore.Store, rooms []domain.Room, n int) {
	t.Helper()
	var reqs []eventstore.AppendRequest
	for i := range n {
		for _, r := range rooms {
			reqs = append(reqs, eventstore.AppendRequest{Type: "x-msg", Rooms: []domain.Room{r}, Payload: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i)), Producer: "test"})
		}
	}
	for len(reqs) > 0 {
		k := min(len(reqs), 500)
		if _, err := s.AppendBatch(context.Background(), reqs[:k]); err != nil {
			t.Fatal(err)
		}
		reqs = reqs[k:]
	}
}

// runRestartRecovery connects n clients to a roomlogd, each in global and
// its user room; publishes; stops the process (SIGTERM or SIGKILL);
// publishes while it is down; restarts it on the same address; and checks
// that every client reconnects with recovered = true and has every seq of
// both rooms exactly once, in order, then live. It returns the time from
// the restart until every client had recovered and caught up.
func runRestartRecovery(t *testing.T, sig syscall.Signal, n int) time.Duration {
	u := eventstoretest.NewURL(t)
	d := newDaemon(t, "roomlogd", u, nil)
	d.start()
	store := eventstore.New(poolFor(t, u), nil, nil)
	if err := store.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Stop)
	js := startRecJS(t)
	var specs []map[string]any
	users := make([]domain.Room, n)
	for i := range n {
		user := fmt.Sprintf("rr%d", i)
		users[i] = domain.Room("user-" + user)
		specs = append(specs, map[string]any{"id": user, "user": user, "token": mint(t, user)})
	}
	js.send(map[string]any{"op": "connect", "url": d.base, "clients": specs})
	js.waitAll(120*time.Second, "connected and joined", func(c recClient) error {
		if !c.Joined {
			return fmt.Errorf("not joined (connects %d, last error %v)", c.Connects, deref(c.LastError))
		}
		return nil
	})
	rooms := append([]domain.Room{domain.RoomGlobal}, users...)
	const before, away, after = 3, 5, 2
	publishTo(t, store, rooms, before)
	caughtUp := func(want int64) func(recClient) error {
		return func(c recClient) error {
			for _, r := range []string{"global", "user-" + c.User} {
				if c.Last[r] != want || c.Count[r] != want {
					return fmt.Errorf("%s: last %d count %d, want %d", r, c.Last[r], c.Count[r], want)
				}
			}
			if c.Dups != 0 || c.Gaps != 0 {
				return fmt.Errorf("dups %d gaps %d", c.Dups, c.Gaps)
			}
			return nil
		}
	}
	js.waitAll(60*time.Second, "live before the restart", caughtUp(before))

	if sig == syscall.SIGKILL {
		d.kill()
	} else {
		_ = d.cmd.Process.Signal(sig)
		select {
		case err := <-d.exited:
			if err != nil {
				t.Fatalf("exit after %v: %v", sig, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("no exit 30s after %v", sig)
		}
	}
	publishTo(t, store, rooms, away)
	restarted := time.Now()
	d.start()
	cs := js.waitAll(180*time.Second, "recovered after the restart", func(c recClient) error {
		if c.Unrecovered > 0 {
			return fmt.Errorf("reconnected with recovered = false")
		}
		if c.Recovered < 1 || !c.Connected {
			return fmt.Errorf("not recovered yet (connects %d, last error %v)", c.Connects, deref(c.LastError))
		}
		return caughtUp(before + away)(c)
	})
	took := time.Since(restarted)
	var worst int64
	for _, c := range cs {
		for _, ms := range c.RecoveryMs {
			worst = max(worst, ms)
		}
	}
	publishTo(t, store, rooms, after)
	js.waitAll(60*time.Second, "live after the recovery", caughtUp(before+away+after))
	t.Logf("%v restart: %d clients recovered gap-free; 100%% recovered and caught up %v after the restart (longest client disconnect→recovered %d ms)", sig, n, took.Round(time.Millisecond), worst)
	return took
}

func TestRecoveryAcrossSIGTERMRestart(t *testing.T) {
	runRestartRecovery(t, syscall.SIGTERM, 20)
}

func TestRecoveryAcrossSIGKILLRestart(t *testing.T) {
	runRestartRecovery(t, syscall.SIGKILL, 20)
}

// TestRecovery1000AfterSIGKILL: 1,000 clients reconnect together to a
// restarted process and all recover gap-free.
func TestRecovery1000AfterSIGKILL(t *testing.T) {
	took := runRestartRecovery(t, syscall.SIGKILL, 1000)
	fmt.Printf("1000 clients after SIGKILL: time to 100%% recovered %v\n", took.Round(time.Millisecond))
}
