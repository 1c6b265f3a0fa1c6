package projector_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/eventstoretest"
	"github.com/roomlog/roomlog/projector"
)

// idleCollector is a collector whose batches are idle unless they hold an
// event of type "x-real", and which saves its checkpoint.
type idleCollector struct {
	collector
	s *eventstore.Store
}

func (c *idleCollector) Handle(ctx context.Context, batch []domain.Delivery, next domain.Position) error {
	if err := c.collector.Handle(ctx, batch, next); err != nil {
		return err
	}
	return c.s.SaveCheckpoint(ctx, "idle", next)
}

func (c *idleCollector) Idle(batch []domain.Delivery) bool {
	for _, d := range batch {
		if d.Type == "x-real" {
			return false
		}
	}
	return true
}

// TestRunnerIdleCheckpoint: with IdleCheckpoint, batches the handler calls
// idle reach it at most once per IdleCheckpoint, other batches at once,
// and the checkpoint catches up with the skipped batches once the log is
// quiet.
func TestRunnerIdleCheckpoint(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := eventstoretest.New(t)
	s := eventstore.New(pool, nil, nil)
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	h := &idleCollector{s: s}
	const every = 2 * time.Second
	r, err := projector.New(projector.Config{Name: "idle", Source: s, Handler: h, Checkpoints: s, HandlerSavesCheckpoint: true,
		Start: projector.FromBeginning, PollInterval: 10 * time.Millisecond, IdleCheckpoint: every})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 1, "user-1") // the first batch is always handled
	start := time.Now()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	checkFor(t, 20*time.Second, 5*time.Millisecond, func() error {
		if n := len(h.snapshot()); n != 1 {
			return fmt.Errorf("%d of 1", n)
		}
		return nil
	})
	appendN(t, s, 3, "user-1") // idle: skipped
	checkFor(t, 20*time.Second, 5*time.Millisecond, func() error {
		if r.Position() != lastPosition(t, s) {
			return fmt.Errorf("runner at %v", r.Position())
		}
		return nil
	})
	if time.Since(start) < every && len(h.snapshot()) != 1 {
		t.Fatalf("idle batches reached the handler within IdleCheckpoint: %d events", len(h.snapshot()))
	}
	if _, err := s.Append(ctx, eventstore.AppendRequest{Type: "x-real", Rooms: []domain.Room{"user-1"}, Payload: []byte(`{}`), Producer: "test"}); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 20*time.Second, 5*time.Millisecond, func() error {
		got := h.snapshot()
		if len(got) == 0 || got[len(got)-1].Type != "x-real" {
			return fmt.Errorf("the non-idle event did not reach the handler: %d events", len(got))
		}
		return nil
	})
	if time.Since(start) < every {
		// Handled at once, not at the next IdleCheckpoint.
		t.Logf("non-idle batch handled %v after start", time.Since(start))
	}
	appendN(t, s, 2, "user-1") // idle again, then quiet
	want := lastPosition(t, s)
	checkFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		pos, ok, err := s.LoadCheckpoint(ctx, "idle")
		if err != nil {
			return err
		}
		if !ok || pos != want {
			return fmt.Errorf("checkpoint %v, want %v", pos, want)
		}
		return nil
	})
}

func lastPosition(t *testing.T, s *eventstore.Store) domain.Position {
	t.Helper()
	var pos domain.Position
	for {
		batch, err := s.ReadTail(context.Background(), pos, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(batch) == 0 {
			return pos
		}
		pos = batch[len(batch)-1].Position
	}
}
