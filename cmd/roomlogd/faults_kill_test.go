//go:build faults

package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roomlog/roomlog/eventstore/eventstoretest"
)

// TestFaultSIGKILLRepeated publishes continuously with idempotency keys
// while roomlogd is killed with SIGKILL and restarted, five times. The
// publishers retry every unacknowledged key, with the same body, until it
// is acknowledged. Then: no acknowledged publish is missing from the log
// (same room, seq and event id), no room has a gap or a duplicate seq, and
// every key produced exactly one event.
func TestFaultSIGKILLRepeated(t *testing.T) {
	// Parallel with the other crash tests that judge no timing: they run
	// after the serial ones (the slow-consumer test compares latencies).
	t.Parallel()
	const (
		kills      = 5
		publishers = 6
		nRooms     = 20
	)
	u := eventstoretest.NewURL(t)
	d := newDaemon(t, "roomlogd", u, nil)
	d.start()

	rooms := make([]string, nRooms)
	for i := range rooms {
		rooms[i] = fmt.Sprintf("user-k%d", i)
	}
	type ack struct {
		id   string
		seqs map[string]int64
	}
	var (
		mu        sync.Mutex
		acked     = map[string]ack{} // key → first acknowledgement
		mismatch  []string           // a key acknowledged twice differently
		conflicts []string
		retried   atomic.Int64 // keys whose first attempt had no answer or a 503
		replayed  atomic.Int64 // retries answered 200 (the key was already in the log)
		attempts  atomic.Int64
		unacked   atomic.Int64 // keys still unacknowledged at the end
		stop      atomic.Bool
	)
	var wg sync.WaitGroup
	for w := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1_000_000 && !stop.Load(); i++ {
				key := fmt.Sprintf("w%d-%d", w, i)
				// Most events target one room; every fifth targets two, so
				// that multi-room appends are crashed too.
				rs := []string{rooms[(w*7+i)%nRooms]}
				if i%5 == 0 {
					rs = append(rs, rooms[(w*7+i+1)%nRooms])
				}
				payload := map[string]any{"k": key}
				deadline := time.Now().Add(60 * time.Second)
				first := true
				for {
					attempts.Add(1)
					r := publish(d.base, key, rs, payload)
					if r.err == nil && (r.status == 200 || r.status == 201) {
						if !first && r.status == 200 {
							replayed.Add(1)
						}
						mu.Lock()
						if prev, ok := acked[key]; ok && (prev.id != r.id || fmt.Sprint(prev.seqs) != fmt.Sprint(r.seqs)) {
							mismatch = append(mismatch, key)
						} else if !ok {
							acked[key] = ack{id: r.id, seqs: r.seqs}
						}
						mu.Unlock()
						break
					}
					if r.err == nil && r.status == 409 {
						mu.Lock()
						conflicts = append(conflicts, key)
						mu.Unlock()
						break
					}
					if first {
						retried.Add(1)
						first = false
					}
					if time.Now().After(deadline) {
						unacked.Add(1)
						break
					}
					time.Sleep(time.Duration(10+rand.IntN(40)) * time.Millisecond) // retry backoff
				}
			}
		}()
	}

	var recover []time.Duration
	for k := range kills {
		time.Sleep(time.Duration(1000+rand.IntN(1500)) * time.Millisecond) // let load run
		mu.Lock()
		before := len(acked)
		mu.Unlock()
		d.kill()
		took := d.start()
		recover = append(recover, took)
		t.Logf("kill %d: %d publishes acknowledged before it; serving again %v after restart", k+1, before, took.Round(time.Millisecond))
	}
	time.Sleep(time.Second)
	stop.Store(true)
	wg.Wait()

	pool := poolFor(t, u)
	f, heads := checkLog(t, pool)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var lost, deliveries int
	for key, a := range acked {
		for room, seq := range a.seqs {
			deliveries++
			id, err := eventIDAt(ctx, pool, room, seq)
			if err != nil {
				t.Fatal(err)
			}
			if id != a.id {
				lost++
				if lost <= 5 {
					t.Errorf("key %s: acknowledged %s at %s/%d, the log has %q there", key, a.id, room, seq, id)
				}
			}
		}
	}
	t.Logf("FIGURES sigkill: kills=%d attempts=%d acked_keys=%d acked_deliveries=%d log_rows=%d rooms=%d lost=%d gaps=%d dup_seqs=%d dup_keys=%d retried_keys=%d replayed_200=%d unacked=%d conflicts=%d recovery(%s)",
		kills, attempts.Load(), len(acked), deliveries, f.rows, f.rooms, lost, f.gaps, f.dupSeqs, f.dupKeys, retried.Load(), replayed.Load(), unacked.Load(), len(conflicts), durStats(recover))
	switch {
	case lost > 0:
		t.Errorf("%d acknowledged deliveries missing from the log", lost)
	case f.gaps > 0 || f.dupSeqs > 0:
		t.Errorf("the log has %d gaps and %d duplicate seqs; heads %v", f.gaps, f.dupSeqs, heads)
	case f.dupKeys > 0:
		t.Errorf("%d idempotency keys produced more than one event", f.dupKeys)
	case len(mismatch) > 0:
		t.Errorf("%d keys acknowledged twice with different results: %v", len(mismatch), mismatch[:min(5, len(mismatch))])
	case len(conflicts) > 0:
		t.Errorf("%d retried keys answered 409 although the body was identical: %v", len(conflicts), conflicts[:min(5, len(conflicts))])
	case unacked.Load() > 0:
		t.Errorf("%d keys never acknowledged within 60s of retries", unacked.Load())
	case retried.Load() == 0:
		t.Errorf("no publish was interrupted by a kill; the test proved nothing")
	}
	// Every acknowledged key is exactly one event in the log.
	var keysInLog int64
	if err := pool.QueryRow(ctx, `SELECT count(DISTINCT payload->>'k') FROM events WHERE type = 'x-fault'`).Scan(&keysInLog); err != nil {
		t.Fatal(err)
	}
	if keysInLog != int64(len(acked)) {
		t.Errorf("the log holds %d keys, %d were acknowledged (every attempted key was retried until acknowledged)", keysInLog, len(acked))
	}
	for _, r := range recover {
		if r > 5*time.Second {
			t.Errorf("restart to ready took %v, want ≤ 5s", r)
		}
	}
}
