package projector

import (
	"context"
	"log/slog"
	"sync"

	"github.com/roomlog/roomlog/domain"
)

// FanoutName is the name of the live fan-out consumer.
const FanoutName = "fanout"

// Emitter pushes one logged event to the live subscribers of its room.
// transport/socketio's Hub satisfies it.
type Emitter interface {
	// Emit delivers d to every local subscriber of d.Room. It must not
	// block on slow subscribers (it drops them instead) and is called
	// from one goroutine at a time, in tail order, so each room's events
	// arrive in seq order.
	Emit(ctx context.Context, d domain.Delivery) error
}

// Fanout hands every event of the log to an Emitter, once each, in the
// tail's (txid, id) order. Events reach it by two paths:
//
//   - Handle, the Handler of a Runner on the tail (FromNow, no
//     checkpoints): every event, from every process, once it is below the
//     writer horizon (eventstore.Store.ReadTail);
//   - Handoff, which eventstore's group-commit writer calls right after a
//     COMMIT of this process (eventstore.Config.Handoff): a complete
//     stretch of the tail up to that commit's events, without waiting for
//     NOTIFY and a tail read.
//
// Both run under one lock and skip what is at or before the last emitted
// position, so the Emitter sees one gap-free stream in tail order whichever
// path is first; the hand-off only makes it earlier. Use it by pointer,
// and tell it where the tail starts (StartAt) before it can take
// hand-offs.
type Fanout struct {
	// Emitter receives the events. Required.
	Emitter Emitter
	// OnEmit, if set, is called after each event Emitter accepted, under
	// the fan-out's lock, in tail order; for metrics (e.g. commit→emit
	// lag from d.OccurredAt). It must not block.
	OnEmit func(d domain.Delivery)
	// Advance, if set, is told the position up to which a hand-off
	// emitted, so the tail Runner can skip reading those events again
	// (Runner.Advance).
	Advance func(pos domain.Position)
	// OnHandoff, if set, is called after each hand-off with the number of
	// its events the fan-out emitted (0 when it was refused or the tail
	// had emitted them all already); for metrics. It must not block.
	OnHandoff func(emitted int)
	// Logger receives hand-off errors. Default: discard.
	Logger *slog.Logger

	mu    sync.Mutex
	pos   domain.Position
	ready bool
}

// StartAt sets the position the fan-out starts after (the tail Runner's
// start position); a Runner calls it from Start. Until then Handoff is
// refused, and only Handle delivers.
func (f *Fanout) StartAt(pos domain.Position) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.ready || f.pos.Less(pos) {
		f.pos = pos
	}
	f.ready = true
}

// Position returns the position of the last event emitted (or the start
// position), and false before StartAt.
func (f *Fanout) Position() (domain.Position, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pos, f.ready
}

// NewRunner returns the fan-out's tail Runner: cfg with Handler f, Start
// FromNow, no checkpoints and, if cfg.Name is empty, FanoutName. It points
// f.Advance at the Runner, so that what a hand-off emitted is not read
// again. Set f.Emitter before the Runner starts.
func (f *Fanout) NewRunner(cfg Config) (*Runner, error) {
	if cfg.Name == "" {
		cfg.Name = FanoutName
	}
	cfg.Handler, cfg.Start, cfg.Checkpoints = f, FromNow, nil
	r, err := New(cfg)
	if err != nil {
		return nil, err
	}
	f.Advance = r.Advance
	return r, nil
}

// Handle implements Handler: it emits the tail's events that a hand-off
// has not already emitted.
func (f *Fanout) Handle(ctx context.Context, batch []domain.Delivery, _ domain.Position) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, err := f.emitLocked(ctx, batch)
	return err
}

// Handoff emits events, a complete stretch of the tail that starts right
// after position after, skipping those already emitted. If the fan-out has
// not yet emitted everything up to after (the stretch would leave a gap),
// it emits nothing: the tail brings those events in order. It satisfies
// eventstore.Config.Handoff.
func (f *Fanout) Handoff(ctx context.Context, after domain.Position, events []domain.Delivery) {
	f.mu.Lock()
	if !f.ready || f.pos.Less(after) || len(events) == 0 {
		f.mu.Unlock()
		if f.OnHandoff != nil {
			f.OnHandoff(0)
		}
		return
	}
	n, err := f.emitLocked(ctx, events)
	pos := f.pos
	f.mu.Unlock()
	if f.OnHandoff != nil {
		f.OnHandoff(n)
	}
	if err != nil {
		if f.Logger != nil {
			f.Logger.ErrorContext(ctx, "live hand-off failed; the tail delivers the rest", "error", err)
		}
		return
	}
	if f.Advance != nil {
		f.Advance(pos)
	}
}

// emitLocked emits the events after f.pos, in order, and returns how many
// it emitted; f.mu is held.
func (f *Fanout) emitLocked(ctx context.Context, events []domain.Delivery) (int, error) {
	n := 0
	for _, d := range events {
		if f.ready && !f.pos.Less(d.Position) {
			continue // emitted already, by the other path
		}
		if err := f.Emitter.Emit(ctx, d); err != nil {
			return n, err
		}
		n++
		f.pos, f.ready = d.Position, true
		if f.OnEmit != nil {
			f.OnEmit(d)
		}
	}
	return n, nil
}
