package projector_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/eventstoretest"
	"github.com/roomlog/roomlog/projector"
)

// checkFor polls f every step until it returns nil or total elapses.
var checkFor = eventstoretest.CheckFor

type collector struct {
	mu    sync.Mutex
	got   []domain.Delivery
	failN int // fail this many calls first
	calls int
}

func (c *collector) Handle(_ context.Context, batch []domain.Delivery, _ domain.Position) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if c.failN > 0 {
		c.failN--
		return errors.New("injected failure")
	}
	c.got = append(c.got, batch...)
	return nil
}

func (c *collector) snapshot() []domain.Delivery {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]domain.Delivery(nil), c.got...)
}

func appendN(t *testing.T, s *eventstore.Store, n int, room string) {
	t.Helper()
	for i := range n {
		_, err := s.Append(context.Background(), eventstore.AppendRequest{
			Type: "x-t", Rooms: []domain.Room{domain.Room(room)}, Payload: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i)), Producer: "test",
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestRunner(t *testing.T) {
	t.Parallel()
	setup := func(t *testing.T) (*eventstore.Store, func(h projector.Handler, cp bool, start projector.StartFrom) *projector.Runner) {
		pool := eventstoretest.New(t)
		s := eventstore.New(pool, nil, nil)
		if err := s.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Stop)
		mk := func(h projector.Handler, cp bool, start projector.StartFrom) *projector.Runner {
			cfg := projector.Config{Name: "test", Source: s, Handler: h, Start: start, PollInterval: 20 * time.Millisecond, BatchSize: 7}
			if cp {
				cfg.Checkpoints = s
			}
			r, err := projector.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(r.Stop)
			return r
		}
		return s, mk
	}

	t.Run("FromBeginningWithCheckpointResumesWithoutDuplicates", func(t *testing.T) {
		t.Parallel()
		s, mk := setup(t)
		appendN(t, s, 20, "chat-1")
		c1 := &collector{}
		r1 := mk(c1, true, projector.FromBeginning)
		checkFor(t, 20*time.Second, 10*time.Millisecond, func() error {
			if n := len(c1.snapshot()); n != 20 {
				return fmt.Errorf("%d of 20", n)
			}
			return nil
		})
		r1.Stop()
		appendN(t, s, 5, "chat-1")
		c2 := &collector{}
		mk(c2, true, projector.FromBeginning)
		checkFor(t, 20*time.Second, 10*time.Millisecond, func() error {
			if n := len(c2.snapshot()); n != 5 {
				return fmt.Errorf("%d of 5", n)
			}
			return nil
		})
		for i, d := range c2.snapshot() {
			if d.Seq != int64(21+i) {
				t.Fatalf("after restart got seq %d at %d, want %d", d.Seq, i, 21+i)
			}
		}
	})

	t.Run("FromNowSkipsHistory", func(t *testing.T) {
		t.Parallel()
		s, mk := setup(t)
		appendN(t, s, 3, "user-1")
		c := &collector{}
		r := mk(c, false, projector.FromNow)
		appendN(t, s, 2, "user-1")
		r.Wake()
		// FromNow starts at the oldest transaction still running in the
		// cluster, so events that committed just before Start (while
		// other tests held old transactions) may be delivered too; what
		// matters is that everything after Start arrives, once, in order.
		checkFor(t, 20*time.Second, 10*time.Millisecond, func() error {
			got := c.snapshot()
			if len(got) == 0 || got[len(got)-1].Seq != 5 {
				return fmt.Errorf("got %d events", len(got))
			}
			first := got[0].Seq
			if first > 4 {
				return fmt.Errorf("missed seq 4: first delivered is %d", first)
			}
			for i, d := range got {
				if d.Seq != first+int64(i) {
					return fmt.Errorf("seq %d at %d", d.Seq, i)
				}
			}
			return nil
		})
	})

	t.Run("RetriesFailedBatch", func(t *testing.T) {
		t.Parallel()
		s, mk := setup(t)
		appendN(t, s, 4, "user-1")
		c := &collector{failN: 2}
		mk(c, true, projector.FromBeginning)
		checkFor(t, 20*time.Second, 10*time.Millisecond, func() error {
			if n := len(c.snapshot()); n != 4 {
				return fmt.Errorf("%d of 4", n)
			}
			return nil
		})
		c.mu.Lock()
		calls := c.calls
		c.mu.Unlock()
		if calls < 3 {
			t.Fatalf("%d calls, want the failures retried", calls)
		}
		for i, d := range c.snapshot() {
			if d.Seq != int64(i+1) {
				t.Fatalf("seq %d at %d: the failed batch was not redelivered in order", d.Seq, i)
			}
		}
	})

	t.Run("ListenWakesRunner", func(t *testing.T) {
		t.Parallel()
		s, mk := setup(t)
		c := &collector{}
		cfg := projector.Config{Name: "slowpoll", Source: s, Handler: c, PollInterval: time.Minute}
		r, err := projector.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		defer r.Stop()
		_ = mk
		ctx, cancel := context.WithCancel(context.Background())
		listening := make(chan struct{}, 1)
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.Listen(ctx, func() {
				r.Wake()
				select {
				case listening <- struct{}{}:
				default:
				}
			})
		}()
		defer func() { cancel(); <-done }()
		<-listening // the first wake comes right after LISTEN
		appendN(t, s, 1, "user-9")
		// With a minute-long poll, only the notification (and the quick
		// re-reads it triggers) can deliver this within the deadline.
		checkFor(t, 20*time.Second, 10*time.Millisecond, func() error {
			if n := len(c.snapshot()); n != 1 {
				return fmt.Errorf("%d of 1", n)
			}
			return nil
		})
	})

	t.Run("CoalesceMergesWakeups", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t)
		c := &collector{}
		src := &readSignal{Source: s, read: make(chan struct{}, 1)}
		r, err := projector.New(projector.Config{Name: "coalesce", Source: src, Handler: c, Start: projector.FromBeginning,
			PollInterval: time.Minute, Coalesce: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		defer r.Stop()
		<-src.read // the first read (of the empty log) is done; only wake-ups read now
		for range 3 {
			appendN(t, s, 1, "user-1")
			r.Wake()
		}
		checkFor(t, 20*time.Second, 10*time.Millisecond, func() error {
			if n := len(c.snapshot()); n != 3 {
				return fmt.Errorf("%d of 3", n)
			}
			return nil
		})
		c.mu.Lock()
		calls := c.calls
		c.mu.Unlock()
		if calls != 1 {
			t.Fatalf("3 wake-ups within Coalesce cost %d batches, want 1", calls)
		}
	})

	t.Run("ConfigValidation", func(t *testing.T) {
		t.Parallel()
		for _, cfg := range []projector.Config{
			{},
			{Name: "x"},
			{Name: "x", Source: fakeSource{}},
			{Name: "x", Source: fakeSource{}, Handler: &collector{}, HandlerSavesCheckpoint: true},
		} {
			if _, err := projector.New(cfg); err == nil {
				t.Errorf("config %+v accepted", cfg)
			}
		}
	})
}

type fakeSource struct{}

// readSignal is a Source that signals read after each ReadTail.
type readSignal struct {
	projector.Source
	read chan struct{}
}

func (r *readSignal) ReadTail(ctx context.Context, after domain.Position, limit int) ([]domain.Delivery, error) {
	d, err := r.Source.ReadTail(ctx, after, limit)
	select {
	case r.read <- struct{}{}:
	default:
	}
	return d, err
}

func (fakeSource) ReadTail(context.Context, domain.Position, int) ([]domain.Delivery, error) {
	return nil, nil
}
func (fakeSource) TailStart(context.Context) (domain.Position, error) { return domain.Position{}, nil }
