package projector_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/eventstoretest"
	"github.com/roomlog/roomlog/projector"
)

type recordingEmitter struct {
	mu  sync.Mutex
	got []domain.Position
}

func (e *recordingEmitter) Emit(_ context.Context, d domain.Delivery) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, d.Position)
	return nil
}

func (e *recordingEmitter) positions() []domain.Position {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.got)
}

// expect waits until e has emitted as many events as want and checks
// that it emitted exactly want: the log in tail order, each event once.
func (e *recordingEmitter) expect(t *testing.T, who string, want []domain.Position) {
	t.Helper()
	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if n := len(e.positions()); n < len(want) {
			return fmt.Errorf("%s emitted %d of %d", who, n, len(want))
		}
		return nil
	})
	time.Sleep(50 * time.Millisecond) // a late duplicate would show now
	if got := e.positions(); !slices.Equal(got, want) {
		t.Fatalf("%s emitted %d events, the log has %d: not the log in tail order, exactly once", who, len(got), len(want))
	}
}

func ev(txid uint64, id int64) domain.Delivery {
	return domain.Delivery{Position: domain.Position{Txid: txid, ID: id}}
}

func pos(txid uint64, id int64) domain.Position { return domain.Position{Txid: txid, ID: id} }

// TestFanoutPaths drives the two paths of a Fanout by hand: whatever their
// order, each event is emitted once and in tail order, and a hand-off that
// would leave a gap is refused.
func TestFanoutPaths(t *testing.T) {
	t.Parallel()
	type step struct {
		tail    []domain.Delivery // Handle
		handoff []domain.Delivery // Handoff after `after`
		after   domain.Position
	}
	tests := []struct {
		name     string
		start    *domain.Position // StartAt, if set
		steps    []step
		want     []domain.Position
		advanced domain.Position
		handed   int // events OnHandoff reported emitted
	}{
		{
			name:  "hand-off before StartAt is refused",
			steps: []step{{handoff: []domain.Delivery{ev(10, 1)}, after: pos(9, 0)}},
		},
		{
			name:     "hand-off then the tail repeats it",
			start:    &domain.Position{Txid: 9},
			steps:    []step{{handoff: []domain.Delivery{ev(10, 1), ev(10, 2)}, after: pos(9, 0)}, {tail: []domain.Delivery{ev(10, 1), ev(10, 2), ev(11, 3)}}},
			want:     []domain.Position{pos(10, 1), pos(10, 2), pos(11, 3)},
			advanced: pos(10, 2), handed: 2,
		},
		{
			name:  "tail first, then an overlapping hand-off",
			start: &domain.Position{Txid: 9},
			steps: []step{{tail: []domain.Delivery{ev(10, 1)}}, {handoff: []domain.Delivery{ev(10, 1), ev(12, 5)}, after: pos(9, 0)}},
			want:  []domain.Position{pos(10, 1), pos(12, 5)}, advanced: pos(12, 5), handed: 1,
		},
		{
			name:  "a hand-off from beyond the emitted position would leave a gap",
			start: &domain.Position{Txid: 9},
			steps: []step{{handoff: []domain.Delivery{ev(12, 5)}, after: pos(11, 3)}, {tail: []domain.Delivery{ev(10, 1), ev(12, 5)}}},
			want:  []domain.Position{pos(10, 1), pos(12, 5)},
		},
		{
			name:  "a hand-off entirely behind the tail emits nothing",
			start: &domain.Position{Txid: 9},
			steps: []step{{tail: []domain.Delivery{ev(10, 1), ev(12, 5)}}, {handoff: []domain.Delivery{ev(10, 1)}, after: pos(9, 0)}},
			want:  []domain.Position{pos(10, 1), pos(12, 5)}, advanced: pos(12, 5),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			em := &recordingEmitter{}
			var advanced domain.Position
			handed := 0
			f := &projector.Fanout{Emitter: em, Advance: func(p domain.Position) { advanced = p }, OnHandoff: func(n int) { handed += n }}
			if tt.start != nil {
				f.StartAt(*tt.start)
			}
			for _, s := range tt.steps {
				if s.tail != nil {
					if err := f.Handle(context.Background(), s.tail, s.tail[len(s.tail)-1].Position); err != nil {
						t.Fatal(err)
					}
				}
				if s.handoff != nil {
					f.Handoff(context.Background(), s.after, s.handoff)
				}
			}
			if got := em.positions(); !slices.Equal(got, tt.want) {
				t.Fatalf("emitted %v, want %v", got, tt.want)
			}
			if advanced != tt.advanced {
				t.Fatalf("advanced to %v, want %v", advanced, tt.advanced)
			}
			if handed != tt.handed {
				t.Fatalf("OnHandoff counted %d emitted events, want %d", handed, tt.handed)
			}
		})
	}
}

// TestFanoutHandoffUnderLoad wires a Fanout the way roomlogd does (the
// store's hand-off plus a tail Runner) and appends from several
// goroutines of this "process", from a second process's store, and from
// transactions held open for a while (so commits land out of order). The
// Emitter must see every row of the log exactly once, in tail order, and
// the hand-off must have carried part of them.
func TestFanoutHandoffUnderLoad(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := eventstoretest.New(t)

	em := &recordingEmitter{}
	var handedOff atomic.Int64
	live := &projector.Fanout{Emitter: em}
	s := eventstore.New(pool, nil, &eventstore.Config{
		HandoffAfter: live.Position,
		Handoff: func(ctx context.Context, after domain.Position, evs []domain.Delivery) {
			before, _ := live.Position()
			live.Handoff(ctx, after, evs)
			if now, _ := live.Position(); before.Less(now) {
				handedOff.Add(1)
			}
		},
	})
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	other := eventstore.New(pool, nil, nil) // another process: tail only
	if err := other.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer other.Stop()

	r, err := live.NewRunner(projector.Config{Source: s, PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	start, _ := live.Position()

	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 6 {
		wg.Go(func() {
			st := s
			if w == 5 {
				st = other
			}
			for i := range 60 {
				room := fmt.Sprintf("user-%d", rand.IntN(4))
				if _, err := st.Append(ctx, req2("x-load", fmt.Sprintf(`{"w":%d,"i":%d}`, w, i), room)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Go(func() { // late committers
		for i := range 10 {
			tx, err := pool.BeginTx(ctx, pgx.TxOptions{})
			if err != nil {
				errs <- err
				return
			}
			if _, err := s.AppendTx(ctx, tx, []eventstore.AppendRequest{req2("x-held", fmt.Sprintf(`{"i":%d}`, i), "user-1")}); err != nil {
				errs <- err
				_ = tx.Rollback(ctx)
				return
			}
			time.Sleep(time.Duration(5+rand.IntN(20)) * time.Millisecond)
			if err := tx.Commit(ctx); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	const total = 6*60 + 10

	log := logAfter(t, pool, start)
	if len(log) != total {
		t.Fatalf("the log has %d rows after start, want %d", len(log), total)
	}
	em.expect(t, "the process", log)
	if handedOff.Load() == 0 {
		t.Fatal("no hand-off emitted anything: the fast path was not exercised")
	}
	t.Logf("%d hand-offs emitted events; %d events in all", handedOff.Load(), total)
}

func req2(typ, payload string, room string) eventstore.AppendRequest {
	return eventstore.AppendRequest{Type: typ, Rooms: []domain.Room{domain.Room(room)}, Payload: []byte(payload), Producer: "test"}
}

// TestFanoutHandoffTwoProcesses runs two "processes" (each its own pool,
// store with hand-off, Fanout and tail Runner) appending concurrently to a
// shared room and to rooms of their own. Each process's Emitter must see
// the whole log after its start, in tail order, exactly once: a hand-off
// must never run ahead of the other process's transaction that is still
// committing. (A check that took writers' ids only from their
// transactionid locks once let one through.)
func TestFanoutHandoffTwoProcesses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := eventstoretest.New(t)
	type process struct {
		em    *recordingEmitter
		live  *projector.Fanout
		store *eventstore.Store
		start domain.Position
	}
	var procs []*process
	for range 2 {
		p := &process{em: &recordingEmitter{}}
		p.live = &projector.Fanout{Emitter: p.em}
		own, err := pgxpool.NewWithConfig(ctx, pool.Config().Copy())
		if err != nil {
			t.Fatal(err)
		}
		defer own.Close()
		p.store = eventstore.New(own, nil, &eventstore.Config{HandoffAfter: p.live.Position, Handoff: p.live.Handoff})
		if err := p.store.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer p.store.Stop()
		r, err := p.live.NewRunner(projector.Config{Source: p.store, PollInterval: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer r.Stop()
		p.start, _ = p.live.Position()
		procs = append(procs, p)
	}
	const writers, each = 12, 120
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				rooms := []domain.Room{"sellers"}
				switch i % 3 {
				case 1:
					rooms = []domain.Room{domain.Room(fmt.Sprintf("user-%d", w))}
				case 2:
					rooms = []domain.Room{domain.Room(fmt.Sprintf("user-%d", w)), domain.Room(fmt.Sprintf("seller-%d", w))}
				}
				req := eventstore.AppendRequest{Type: "x-load", Rooms: rooms, Payload: []byte(`{}`), Producer: "test", IdempotencyKey: fmt.Sprintf("%d-%d", w, i)}
				if _, err := procs[w%2].store.Append(ctx, req); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	log := logAfter(t, pool, domain.Position{})
	for i, p := range procs {
		var want []domain.Position
		for _, q := range log {
			if p.start.Less(q) {
				want = append(want, q)
			}
		}
		p.em.expect(t, fmt.Sprintf("process %d", i), want)
	}
}

// logAfter returns the positions of every row after start, in tail order,
// in one query (every writer has committed).
func logAfter(t *testing.T, pool *pgxpool.Pool, start domain.Position) []domain.Position {
	t.Helper()
	var log []domain.Position
	rows, err := pool.Query(context.Background(), `SELECT txid::text::int8, id FROM events WHERE (txid, id) > ($1::text::xid8, $2) ORDER BY txid, id`,
		fmt.Sprint(start.Txid), start.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var p domain.Position
		if err := rows.Scan(&p.Txid, &p.ID); err != nil {
			t.Fatal(err)
		}
		log = append(log, p)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return log
}
