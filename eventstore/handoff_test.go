package eventstore_test

import (
	"context"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/eventstoretest"
)

// handoffRecorder is a hand-off consumer whose position the test sets.
type handoffRecorder struct {
	mu    sync.Mutex
	after domain.Position
	calls [][]domain.Delivery
	got   chan struct{}
}

func (r *handoffRecorder) position() (domain.Position, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.after, true
}

func (r *handoffRecorder) handoff(_ context.Context, after domain.Position, evs []domain.Delivery) {
	r.mu.Lock()
	if after != r.after {
		panic("hand-off from a position the consumer did not give")
	}
	r.calls = append(r.calls, evs)
	r.after = evs[len(evs)-1].Position
	r.mu.Unlock()
	r.got <- struct{}{}
}

func (r *handoffRecorder) wait(t *testing.T) []domain.Delivery {
	t.Helper()
	select {
	case <-r.got:
	case <-time.After(10 * time.Second):
		t.Fatal("no hand-off")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[len(r.calls)-1]
}

func positions(ds []domain.Delivery) []domain.Position {
	out := make([]domain.Position, len(ds))
	for i, d := range ds {
		out[i] = d.Position
	}
	return out
}

// TestHandoff shows what the group-commit writer hands to an in-process
// consumer: right after a commit, exactly what ReadTail returns from the
// consumer's position, its own rows included (field for field); nothing while an older
// transaction runs; and, once that one ended, the rows it committed ahead
// of the next commit's, in tail order.
func TestHandoff(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := eventstoretest.New(t)
	rec := &handoffRecorder{got: make(chan struct{}, 16)}
	probe := eventstore.New(pool, nil, nil)
	start, err := probe.TailStart(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rec.after = start
	// One writer, so that each Append's hand-off happens before the next
	// Append is written.
	var missed atomic.Int32
	s := newStore(t, pool, &eventstore.Config{Writers: 1, HandoffAfter: rec.position, Handoff: rec.handoff,
		HandoffMissed: func() { missed.Add(1) }})

	// 1. A lone commit hands off its own rows, as the tail reads them.
	res, err := s.Append(ctx, req("x-one", `{"n":1}`, "user-a", "user-b"))
	if err != nil {
		t.Fatal(err)
	}
	got := rec.wait(t)
	_, tail := drainTail(t, s, start)
	// Field for field: the writer builds its own rows from memory.
	if !reflect.DeepEqual(got, tail) || len(got) != 2 {
		t.Fatalf("hand-off %+v\ntail %+v", got, tail)
	}
	for i, d := range got {
		if d.ID != res.EventID || d.Room != res.Deliveries[i].Room || d.Seq != res.Deliveries[i].Seq || string(d.Payload) != `{"n":1}` || d.Type != "x-one" {
			t.Fatalf("hand-off row %d = %+v, want event %s in %v", i, d, res.EventID, res.Deliveries[i])
		}
	}
	mark := got[len(got)-1].Position

	// 2. An older transaction is running: the next commit hands off
	// nothing (its rows are not final in tail order yet).
	txA := holdWriter(t, s, pool, "user-a")
	if _, err := s.Append(ctx, req("x-later", `{}`, "user-b")); err != nil {
		t.Fatal(err)
	}
	if err := txA.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	// 3. The next lone commit hands off the held row, the later row and
	// its own, in tail order: the same as the tail from the mark.
	if _, err := s.Append(ctx, req("x-last", `{}`, "user-a")); err != nil {
		t.Fatal(err)
	}
	got = rec.wait(t)
	rec.mu.Lock()
	calls := len(rec.calls)
	rec.mu.Unlock()
	if m := missed.Load(); m != 1 {
		t.Fatalf("HandoffMissed called %d times, want once (for the commit behind the older transaction)", m)
	}
	if calls != 2 {
		for _, c := range rec.calls {
			t.Logf("call: %v %v", positions(c), c[0].Type)
		}
		rows, _ := pool.Query(ctx, "SELECT txid::text, id, type FROM events ORDER BY id")
		for rows.Next() {
			v, _ := rows.Values()
			t.Logf("row %v", v)
		}
		rows.Close()
		t.Fatalf("%d hand-offs, want 2 (none while the older transaction ran)", calls)
	}
	_, tail = drainTail(t, s, mark)
	if !reflect.DeepEqual(got, tail) || len(got) != 3 {
		t.Fatalf("hand-off %+v\ntail %+v", got, tail)
	}
	want := []string{"x-held", "x-later", "x-last"}
	for i, d := range got {
		if d.Type != want[i] {
			t.Fatalf("hand-off order: row %d is %s, want %s", i, d.Type, want[i])
		}
	}
}

// TestListenNotices: a listener can tell its own store's hand-off commits
// (whose consumer needs no wake-up) from everything else.
func TestListenNotices(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pool := eventstoretest.New(t)
	own := newStore(t, pool, &eventstore.Config{
		HandoffAfter: func() (domain.Position, bool) { return domain.Position{}, true },
		Handoff:      func(context.Context, domain.Position, []domain.Delivery) {},
	})
	other := newStore(t, pool, nil) // another process, or a hand-off turned off
	notices := make(chan eventstore.Notice, 16)
	go own.ListenNotices(ctx, func(n eventstore.Notice) { notices <- n })
	next := func() eventstore.Notice {
		t.Helper()
		select {
		case n := <-notices:
			return n
		case <-time.After(10 * time.Second):
			t.Fatal("no notice")
			return eventstore.Notice{}
		}
	}
	if n := next(); n.HandedOff {
		t.Fatal("the wake-up after connecting says handed off")
	}
	for _, tc := range []struct {
		name string
		s    *eventstore.Store
		want bool
	}{{"own commit", own, true}, {"other store's commit", other, false}} {
		if _, err := tc.s.Append(ctx, req("x-notice", `{}`, "user-a")); err != nil {
			t.Fatal(err)
		}
		if n := next(); n.HandedOff != tc.want {
			t.Fatalf("%s: HandedOff = %v, want %v", tc.name, n.HandedOff, tc.want)
		}
	}
}
