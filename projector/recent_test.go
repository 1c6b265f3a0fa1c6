package projector_test

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/eventstoretest"
	"github.com/roomlog/roomlog/projector"
)

// nopEmitter accepts every event.
type nopEmitter struct{}

func (nopEmitter) Emit(context.Context, domain.Delivery) error { return nil }

// recentLog starts a store whose fan-out (hand-off and tail, as roomlogd
// wires it) feeds recent, and returns the store and a function that waits
// until the fan-out has emitted everything committed so far.
func recentLog(t *testing.T, recent *projector.Recent) (*eventstore.Store, func()) {
	t.Helper()
	ctx := context.Background()
	pool := eventstoretest.New(t)
	live := &projector.Fanout{Emitter: nopEmitter{}, OnEmit: recent.Add}
	s := eventstore.New(pool, nil, &eventstore.Config{HandoffAfter: live.Position, Handoff: live.Handoff})
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	recent.Log = s
	r, err := live.NewRunner(projector.Config{Source: s, PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	caughtUp := func() {
		t.Helper()
		log := logAfter(t, pool, domain.Position{})
		deadline := time.Now().Add(10 * time.Second)
		for {
			pos, _ := live.Position()
			if len(log) == 0 || !pos.Less(log[len(log)-1]) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the fan-out is at %v, the log at %v", pos, log[len(log)-1])
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return s, caughtUp
}

func appendTo(t *testing.T, s *eventstore.Store, n int, rooms ...domain.Room) {
	t.Helper()
	for i := range n {
		if _, err := s.Append(context.Background(), eventstore.AppendRequest{
			Type: "x-test", Rooms: rooms, Producer: "test", Payload: fmt.Appendf(nil, `{"i":%d,"pad":"%0*d"}`, i, i%40, 0),
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// checkSame reads cursors through recent and from the store and fails
// unless the pages are identical; it returns whether memory answered.
func checkSame(t *testing.T, recent *projector.Recent, s *eventstore.Store, cursors map[domain.Room]int64, limit int, opts *eventstore.ReadOptions) bool {
	t.Helper()
	ctx := context.Background()
	before := recent.Stats().Hits
	got, err := recent.ReadRooms(ctx, cursors, limit, opts)
	if err != nil {
		t.Fatal(err)
	}
	want, err := s.ReadRooms(ctx, cursors, limit, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("cursors %v limit %d opts %+v:\nrecent %+v\nlog    %+v", cursors, limit, opts, got, want)
	}
	return recent.Stats().Hits > before
}

// TestRecentAnswersAsTheLog: whatever the cursors, limit and byte bound,
// a read through Recent gives exactly the log's pages, and memory answers
// whenever it holds every event the pages need.
func TestRecentAnswersAsTheLog(t *testing.T) {
	t.Parallel()
	recent := &projector.Recent{}
	s, caughtUp := recentLog(t, recent)
	appendTo(t, s, 30, "user-a")
	appendTo(t, s, 12, "user-a", "chat-c")
	appendTo(t, s, 5, "user-b")
	caughtUp()

	tests := []struct {
		name    string
		cursors map[domain.Room]int64
		limit   int
		opts    *eventstore.ReadOptions
		memory  bool
	}{
		{"from the start", map[domain.Room]int64{"user-a": 0}, 0, nil, true},
		{"middle, limited", map[domain.Room]int64{"user-a": 7}, 10, nil, true},
		{"negative cursor", map[domain.Room]int64{"user-a": -5}, 3, nil, true},
		{"at the head", map[domain.Room]int64{"user-a": 42}, 0, nil, true},
		{"ahead of the head", map[domain.Room]int64{"user-a": 99}, 0, nil, true},
		{"unknown room", map[domain.Room]int64{"user-zz": 0}, 0, nil, true},
		{"several rooms", map[domain.Room]int64{"user-a": 40, "chat-c": 0, "user-b": 2, "user-zz": 0}, 5, nil, true},
		{"byte bound", map[domain.Room]int64{"user-a": 0}, 0, &eventstore.ReadOptions{MaxBytes: 100}, true},
		{"byte bound below one payload", map[domain.Room]int64{"user-a": 3}, 0, &eventstore.ReadOptions{MaxBytes: 1}, true},
	}
	for _, tc := range tests {
		if got := checkSame(t, recent, s, tc.cursors, tc.limit, tc.opts); got != tc.memory {
			t.Errorf("%s: from memory %v, want %v", tc.name, got, tc.memory)
		}
	}

	// An event committed but not yet emitted: the heads are ahead of
	// memory, so the log answers, with the new event.
	stopped := &projector.Recent{Log: s}
	for _, p := range mustRead(t, s, "user-b") {
		stopped.Add(p)
	}
	appendTo(t, s, 1, "user-b")
	if checkSame(t, stopped, s, map[domain.Room]int64{"user-b": 0}, 0, nil) {
		t.Error("memory answered though it lacks the room's last event")
	}
}

func mustRead(t *testing.T, s *eventstore.Store, room domain.Room) []domain.Delivery {
	t.Helper()
	p, err := s.ReadRoom(context.Background(), room, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return p.Events
}

// TestRecentBounds: memory keeps at most MaxPerRoom events per room and
// about MaxBytes in all, drops the least recently appended rooms first,
// starts a room again after a gap, and every answer stays the log's.
func TestRecentBounds(t *testing.T) {
	t.Parallel()
	s, caughtUp := recentLog(t, &projector.Recent{}) // the log the cases read
	appendTo(t, s, 20, "user-a")
	appendTo(t, s, 20, "user-b")
	caughtUp()
	a, b := mustRead(t, s, "user-a"), mustRead(t, s, "user-b")

	t.Run("per room", func(t *testing.T) {
		t.Parallel()
		r := &projector.Recent{Log: s, MaxPerRoom: 8}
		for _, d := range a {
			r.Add(d)
		}
		if !checkSame(t, r, s, map[domain.Room]int64{"user-a": 12}, 0, nil) {
			t.Error("the last 8 events are held; memory should answer")
		}
		if checkSame(t, r, s, map[domain.Room]int64{"user-a": 11}, 0, nil) {
			t.Error("event 12 was dropped; memory answered anyway")
		}
	})
	t.Run("bytes, least recently appended room first", func(t *testing.T) {
		t.Parallel()
		probe := &projector.Recent{Log: s}
		probe.Add(a[0])
		one := probe.Stats().Bytes
		r := &projector.Recent{Log: s, MaxBytes: 25 * one}
		for _, d := range a {
			r.Add(d)
		}
		for _, d := range b {
			r.Add(d)
		}
		st := r.Stats()
		if st.Bytes > 25*one || st.Rooms != 1 {
			t.Errorf("after 40 events of ~%d bytes with a bound of 25: %+v, want user-a dropped", one, st)
		}
		if !checkSame(t, r, s, map[domain.Room]int64{"user-b": 0}, 0, nil) {
			t.Error("user-b, appended last, should be held whole")
		}
		if checkSame(t, r, s, map[domain.Room]int64{"user-a": 19}, 0, nil) {
			t.Error("user-a was dropped; memory answered anyway")
		}
	})
	t.Run("gap", func(t *testing.T) {
		t.Parallel()
		r := &projector.Recent{Log: s}
		for i, d := range a {
			if i != 9 { // seq 10 never arrives
				r.Add(d)
			}
		}
		r.Add(a[3]) // an old one again: ignored
		if checkSame(t, r, s, map[domain.Room]int64{"user-a": 5}, 0, nil) {
			t.Error("memory answered across a gap")
		}
		if !checkSame(t, r, s, map[domain.Room]int64{"user-a": 10}, 0, nil) {
			t.Error("memory should hold 11..20, after the gap")
		}
	})
}

// TestRecentConcurrent reads through Recent while the fan-out feeds it:
// every answer is a gap-free run of the room's seqs ending at or before
// the head it reports (run with -race).
func TestRecentConcurrent(t *testing.T) {
	t.Parallel()
	recent := &projector.Recent{MaxPerRoom: 50}
	s, caughtUp := recentLog(t, recent)
	ctx := context.Background()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		defer close(stop)
		appendTo(t, s, 150, "user-a")
	})
	reads := 0
	for {
		select {
		case <-stop:
			wg.Wait()
			caughtUp()
			if !checkSame(t, recent, s, map[domain.Room]int64{"user-a": 120}, 0, nil) {
				t.Error("after the appends, memory should hold the last 50")
			}
			t.Logf("%d concurrent reads; %+v", reads, recent.Stats())
			return
		default:
		}
		reads++
		pages, err := recent.ReadRooms(ctx, map[domain.Room]int64{"user-a": 0}, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		p := pages[0]
		for i, d := range p.Events {
			if d.Seq != int64(i+1) {
				t.Fatalf("event %d has seq %d", i, d.Seq)
			}
		}
		if n := int64(len(p.Events)); n != p.Head || p.More {
			t.Fatalf("%d events, head %d, more %v", n, p.Head, p.More)
		}
	}
}
