package projector

import (
	"context"

	"github.com/roomlog/roomlog/domain"
)

// FanoutName is the name of the live fan-out consumer.
const FanoutName = "fanout"

// Emitter pushes one logged event to the live subscribers of its room.
// transport/socketio's Hub satisfies it.
type Emitter interface {
	// Emit delivers d to every local subscriber of d.Room. It must not
	// block on slow subscribers (it drops them instead) and is called
	// from one goroutine, in tail order, so each room's events arrive in
	// seq order.
	Emit(ctx context.Context, d domain.Delivery) error
}

// Fanout is the Handler that hands every event of the tail to an Emitter.
// Run
// it without checkpoints, FromNow: each process fans out what commits while
// it runs, and clients that were away catch up from the log.
type Fanout struct {
	Emitter Emitter
	// OnEmit, if set, is called after each event Emitter accepted, from
	// the fan-out goroutine, in tail order; for metrics (e.g. commit→emit
	// lag from d.OccurredAt). It must not block.
	OnEmit func(d domain.Delivery)
}

// Handle implements Handler.
func (f Fanout) Handle(ctx context.Context, batch []domain.Delivery, _ domain.Position) error {
	for _, d := range batch {
		if err := f.Emitter.Emit(ctx, d); err != nil {
			return err
		}
		if f.OnEmit != nil {
			f.OnEmit(d)
		}
	}
	return nil
}
