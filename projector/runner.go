package projector

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/roomlog/roomlog/domain"
)

// Source is the log as a Runner reads it. *eventstore.Store satisfies it.
type Source interface {
	// ReadTail returns up to limit events after pos in global order,
	// skipping nothing that commits late. Safe for concurrent use.
	ReadTail(ctx context.Context, after domain.Position, limit int) ([]domain.Delivery, error)
	// TailStart returns a position from which every event that commits
	// from now on will be read.
	TailStart(ctx context.Context) (domain.Position, error)
}

// TypedSource is a Source that can read only some event types (see
// Config.Types). *eventstore.Store satisfies it.
type TypedSource interface {
	Source
	// ReadTailTypes returns up to limit events of types after pos in
	// global order, skipping nothing that commits late, and, when fewer
	// than limit matched, the last event read past, whatever its type, so
	// that the position moves past what was skipped.
	ReadTailTypes(ctx context.Context, after domain.Position, types []string, limit int) ([]domain.Delivery, error)
}

// Checkpoints loads and saves consumer positions. *eventstore.Store
// satisfies it.
type Checkpoints interface {
	// LoadCheckpoint returns the stored position and whether one exists.
	LoadCheckpoint(ctx context.Context, name string) (domain.Position, bool, error)
	// SaveCheckpoint stores pos as the consumer's position.
	SaveCheckpoint(ctx context.Context, name string, pos domain.Position) error
}

// Handler consumes batches of events.
type Handler interface {
	// Handle processes batch, which is non-empty and in tail order; next
	// is the position after the batch's last event. Returning an error
	// makes the Runner retry the same batch after a backoff. Handle is
	// called from one goroutine at a time. Cancelling ctx means the
	// Runner is stopping.
	Handle(ctx context.Context, batch []domain.Delivery, next domain.Position) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, batch []domain.Delivery, next domain.Position) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, batch []domain.Delivery, next domain.Position) error {
	return f(ctx, batch, next)
}

// StartFrom says where a Runner without a stored checkpoint begins.
type StartFrom int

const (
	// FromNow starts at the log's current end: only new events.
	FromNow StartFrom = iota
	// FromBeginning replays the whole log.
	FromBeginning
)

// Config configures a Runner. Zero values mean the defaults.
type Config struct {
	// Name identifies the consumer and its checkpoint. Required.
	Name string
	// Source is the log. Required.
	Source Source
	// Handler consumes batches. Required.
	Handler Handler
	// Checkpoints, if set, is where the Runner loads its start position
	// and, unless HandlerSavesCheckpoint, saves it after every batch.
	// Without it the Runner starts according to Start and keeps its
	// position only in memory (live fan-out does this).
	Checkpoints Checkpoints
	// HandlerSavesCheckpoint says the Handler commits the checkpoint
	// itself, in the same transaction as its effects.
	HandlerSavesCheckpoint bool
	// Start applies when there is no stored checkpoint. Default FromNow.
	Start StartFrom
	// BatchSize is the most events read per batch. Default 500.
	BatchSize int
	// PollInterval is the fallback poll period; each wait is jittered
	// ±25%. Default 250ms.
	PollInterval time.Duration
	// Coalesce, if positive, is how long the Runner waits after a Wake
	// before it reads, so that the wake-ups of a burst of commits cost
	// one read and one batch instead of one each. It adds at most that
	// much lag. Zero (the default) reads at once, as live fan-out must.
	Coalesce time.Duration
	// IdleCheckpoint, if positive, lets a Handler that implements
	// IdleHandler skip the batches it would not change anything for:
	// the Runner then advances its position in memory only, and hands the
	// handler such a batch (so that it saves its checkpoint) only once
	// IdleCheckpoint has passed since it last handled one. A read model
	// that ignores most of the log then costs no transaction per batch
	// just to move its checkpoint; the stored checkpoint lags by up to
	// about IdleCheckpoint, and a restart re-reads at most that much of
	// the log, to no effect.
	IdleCheckpoint time.Duration
	// Types, if set, are the only event types the Handler acts on: the
	// Runner then reads those alone (Source must be a TypedSource), plus
	// one event of any type where a read ends, which the Handler must
	// ignore, so that the position moves on. A read model of rare events
	// then reads a fraction of the log.
	Types []string
	// Logger receives the Runner's logs. Default: discard.
	Logger *slog.Logger
}

// TypedHandler is a Handler that acts on some event types only (see
// Config.Types); Registry reads only those for it.
type TypedHandler interface {
	Handler
	// Types returns the event types Handle acts on.
	Types() []string
}

// IdleHandler is a Handler that can tell, without side effects, that
// handling a batch would change nothing but its checkpoint (see
// Config.IdleCheckpoint).
type IdleHandler interface {
	Handler
	// Idle reports whether Handle(batch) would change nothing but the
	// checkpoint. It must depend on batch alone.
	Idle(batch []domain.Delivery) bool
}

func (c Config) withDefaults() Config {
	if c.BatchSize <= 0 {
		c.BatchSize = 500
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 250 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.Name == "":
		return errors.New("projector: Config.Name is required")
	case c.Source == nil:
		return errors.New("projector: Config.Source is required")
	case c.Handler == nil:
		return errors.New("projector: Config.Handler is required")
	case len(c.Types) > 0 && !isTyped(c.Source):
		return errors.New("projector: Config.Types needs a Source that implements TypedSource")
	case c.HandlerSavesCheckpoint && c.Checkpoints == nil:
		return errors.New("projector: Config.HandlerSavesCheckpoint needs Config.Checkpoints to load from")
	}
	return nil
}

// Runner follows the log for one consumer. Create it with New.
type Runner struct {
	cfg    Config
	logger *slog.Logger
	wake   chan struct{}

	// Idle skipping (Config.IdleCheckpoint), used by the loop only:
	// deferred is the last delivery of the batches skipped since the
	// handler last saw one (nil if none), and its position the checkpoint
	// they owe; handledAt is when the handler last saw one.
	deferred  []domain.Delivery
	handledAt time.Time

	mu      sync.Mutex
	pos     domain.Position
	lastAt  time.Time
	started bool
	cancel  context.CancelFunc
	done    chan struct{}
}

// New validates cfg and returns a Runner that is not yet started.
func New(cfg Config) (*Runner, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Runner{
		cfg:    cfg,
		logger: cfg.Logger.With("subsystem", "projector", "projection", cfg.Name),
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
	}, nil
}

// Name returns the consumer's name.
func (r *Runner) Name() string { return r.cfg.Name }

// Start loads the start position (returning its error, if any) and runs the
// consume loop in the background until Stop.
func (r *Runner) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started {
		return errors.New("projector: already started")
	}
	pos, err := r.startPosition(ctx)
	if err != nil {
		return err
	}
	r.pos = pos
	r.started = true
	if s, ok := r.cfg.Handler.(startAtter); ok {
		s.StartAt(pos)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.cancel = cancel
	go func() {
		defer close(r.done)
		r.loop(runCtx)
	}()
	return nil
}

// startAtter is a Handler that wants to know where the Runner starts
// (Fanout, for its hand-off path).
type startAtter interface {
	StartAt(pos domain.Position)
}

func (r *Runner) startPosition(ctx context.Context) (domain.Position, error) {
	if r.cfg.Checkpoints != nil {
		pos, ok, err := r.cfg.Checkpoints.LoadCheckpoint(ctx, r.cfg.Name)
		if err != nil {
			return domain.Position{}, err
		}
		if ok {
			return pos, nil
		}
	}
	if r.cfg.Start == FromBeginning {
		return domain.Position{}, nil
	}
	return r.cfg.Source.TailStart(ctx)
}

// Stop stops the loop and waits for it; a batch being handled is
// cancelled through its context. Stop is idempotent; Stop before Start
// does nothing.
func (r *Runner) Stop() {
	r.mu.Lock()
	started, cancel := r.started, r.cancel
	r.mu.Unlock()
	if !started {
		return
	}
	cancel()
	<-r.done
}

// Wake makes the Runner read the tail now. It never blocks.
func (r *Runner) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Advance moves the Runner's read position forward to pos, if pos is
// later: the events up to pos were handled by another path (Fanout's
// hand-off), so the next read starts after them. Never call it for a
// consumer whose Handler must see every event itself.
func (r *Runner) Advance(pos domain.Position) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pos.Less(pos) {
		r.pos = pos
	}
}

// Position returns the position after the last handled event.
func (r *Runner) Position() domain.Position {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pos
}

// LastEventAt returns the log time of the last handled event (zero if none).
func (r *Runner) LastEventAt() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastAt
}

func (r *Runner) loop(ctx context.Context) {
	backoff := time.Duration(0)
	// After a wake-up, the notified rows may not be readable yet: the tail
	// reads only below the writer horizon, the oldest transaction that can
	// still write events (eventstore/horizon.go). So a wake is followed by
	// quick re-reads with growing delays (5ms, 10ms, … up to PollInterval)
	// instead of one read.
	var recheck time.Duration
	for {
		n, err := r.step(ctx)
		if ctx.Err() != nil {
			return
		}
		switch {
		case err != nil:
			backoff = min(max(2*backoff, 50*time.Millisecond), 5*time.Second)
			r.logger.ErrorContext(ctx, "projection step failed; retrying", "error", err, "backoff", backoff)
			if !sleep(ctx, backoff) {
				return
			}
			continue
		case n == r.cfg.BatchSize:
			backoff = 0
			continue // more is waiting: read again at once
		}
		backoff = 0
		wait := jitter(r.cfg.PollInterval)
		if r.deferred != nil {
			// Save the skipped batches' checkpoint on time even if no
			// other batch comes.
			wait = min(wait, max(time.Until(r.handledAt.Add(r.cfg.IdleCheckpoint)), time.Millisecond))
		}
		if recheck > 0 {
			wait = min(recheck, wait)
			recheck *= 2
			if recheck >= r.cfg.PollInterval {
				recheck = 0
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-r.wake:
			recheck = 5 * time.Millisecond
			if c := r.cfg.Coalesce; c > 0 {
				if !sleep(ctx, c) {
					t.Stop()
					return
				}
				select { // the wake-ups of the wait are the same read
				case <-r.wake:
				default:
				}
				recheck = max(recheck, c)
			}
		case <-t.C:
		}
		t.Stop()
	}
}

func isTyped(s Source) bool {
	_, ok := s.(TypedSource)
	return ok
}

func (r *Runner) read(ctx context.Context, pos domain.Position) ([]domain.Delivery, error) {
	if len(r.cfg.Types) > 0 {
		return r.cfg.Source.(TypedSource).ReadTailTypes(ctx, pos, r.cfg.Types, r.cfg.BatchSize)
	}
	return r.cfg.Source.ReadTail(ctx, pos, r.cfg.BatchSize)
}

func (r *Runner) step(ctx context.Context) (int, error) {
	pos := r.Position()
	batch, err := r.read(ctx, pos)
	if err != nil {
		return 0, err
	}
	if len(batch) == 0 {
		if r.deferred != nil && time.Since(r.handledAt) >= r.cfg.IdleCheckpoint {
			// Nothing new: save the checkpoint the skipped batches owe.
			return 0, r.handle(ctx, r.deferred, r.deferred[0].Position)
		}
		return 0, nil
	}
	next := batch[len(batch)-1].Position
	if ih, ok := r.cfg.Handler.(IdleHandler); ok && r.cfg.IdleCheckpoint > 0 &&
		time.Since(r.handledAt) < r.cfg.IdleCheckpoint && ih.Idle(batch) {
		// The last delivery stands for the batch when the checkpoint is due.
		r.deferred = batch[len(batch)-1:]
	} else if err := r.handle(ctx, batch, next); err != nil {
		return 0, err
	}
	r.mu.Lock()
	if r.pos.Less(next) { // Advance may have moved it further meanwhile
		r.pos = next
	}
	r.lastAt = batch[len(batch)-1].OccurredAt
	r.mu.Unlock()
	return len(batch), nil
}

// checkpointTimeout bounds saving a checkpoint after its batch was
// handled.
const checkpointTimeout = 10 * time.Second

// handle hands batch to the handler and saves the checkpoint next, unless
// the handler does.
func (r *Runner) handle(ctx context.Context, batch []domain.Delivery, next domain.Position) error {
	if err := r.cfg.Handler.Handle(ctx, batch, next); err != nil {
		return err
	}
	if r.cfg.Checkpoints != nil && !r.cfg.HandlerSavesCheckpoint {
		// The handler has taken the batch: a Stop now must not also
		// cancel the checkpoint, or a restart hands the batch over again.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), checkpointTimeout)
		defer cancel()
		if err := r.cfg.Checkpoints.SaveCheckpoint(sctx, r.cfg.Name, next); err != nil {
			return err
		}
	}
	r.deferred, r.handledAt = nil, time.Now()
	return nil
}

func jitter(d time.Duration) time.Duration {
	q := d / 4
	return d - q + rand.N(2*q+1)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
