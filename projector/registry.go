package projector

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
)

// Projection describes one named read-model projection: the checkpoint
// name it runs under, the tables that hold its model and how to build its
// Handler over a store. The handler must commit its changes and its
// checkpoint in one transaction through the store it is given, because a
// rebuild hands it a Store that writes shadow tables (see
// eventstore.BeginRebuild).
type Projection struct {
	// Name is the projection's name and checkpoint name, 1 to 40 of
	// [a-z0-9_].
	Name string
	// Tables are the read-model tables the handler writes.
	Tables []string
	// Handler returns the projection's handler writing through s.
	Handler func(s *eventstore.Store) Handler
}

// Projections returns roomlog's read-model projections, in a fixed order:
// membership (shared-room members), unread (notification counts) and
// entities (the entity index behind entity histories).
func Projections() []Projection {
	return []Projection{
		{
			Name: MembershipName, Tables: []string{eventstore.MembershipTable},
			Handler: func(s *eventstore.Store) Handler { return Membership{Store: s} },
		},
		{
			Name: UnreadName, Tables: []string{eventstore.UnreadTable},
			Handler: func(s *eventstore.Store) Handler { return Unread{Store: s} },
		},
		{
			Name: EntitiesName, Tables: []string{eventstore.EntityTable},
			Handler: func(s *eventstore.Store) Handler { return EntityIndex{Store: s} },
		},
	}
}

// RegistryConfig configures a Registry. Zero values mean the defaults.
type RegistryConfig struct {
	// Store is the event store the projections read and write. Required.
	Store *eventstore.Store
	// Projections to run; nil means Projections().
	Projections []Projection
	// BatchSize is the most events a projection handles per transaction.
	// Default 500, at most eventstore.MaxReadLimit.
	BatchSize int
	// PollInterval is each Runner's fallback poll period. Default 250ms.
	PollInterval time.Duration
	// Coalesce is each Runner's wait after a wake-up before it reads (see
	// Config.Coalesce): the wake-ups of many commits then cost each
	// projection one read and one transaction. Default
	// DefaultCoalesce; negative means none.
	Coalesce time.Duration
	// IdleCheckpoint is each Runner's Config.IdleCheckpoint: how long a
	// projection may leave its stored checkpoint behind over events that
	// change nothing in its model, instead of committing a transaction
	// per batch just to move it. Default DefaultIdleCheckpoint; negative
	// means a transaction per batch.
	IdleCheckpoint time.Duration
	// Logger receives the projections' logs. Default: discard.
	Logger *slog.Logger
}

// DefaultIdleCheckpoint is RegistryConfig.IdleCheckpoint's default.
const DefaultIdleCheckpoint = time.Second

// Registry runs roomlog's named read-model projections: one Runner each,
// all starting from the beginning of the log and committing their
// checkpoints with their models. It reports their progress (Status),
// catches one up in the caller's goroutine (CatchUp) and rebuilds one from
// zero while the service keeps answering (Rebuild). The server starts it;
// the CLI uses it without starting it. It is safe for concurrent use.
type Registry struct {
	store  *eventstore.Store
	cfg    RegistryConfig
	logger *slog.Logger
	byName map[string]Projection

	mu      sync.Mutex
	runners map[string]*Runner
	started bool
	stopped bool
}

// NewRegistry validates cfg and returns a Registry that is not started.
func NewRegistry(cfg RegistryConfig) (*Registry, error) {
	if cfg.Store == nil {
		return nil, errors.New("projector: RegistryConfig.Store is required")
	}
	if cfg.Projections == nil {
		cfg.Projections = Projections()
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 500
	}
	cfg.BatchSize = min(cfg.BatchSize, eventstore.MaxReadLimit)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	byName := make(map[string]Projection, len(cfg.Projections))
	for _, p := range cfg.Projections {
		switch {
		case p.Name == "":
			return nil, errors.New("projector: RegistryConfig.Projections: a projection has no Name")
		case p.Handler == nil || len(p.Tables) == 0:
			return nil, errors.New("projector: RegistryConfig.Projections: " + p.Name + " needs Tables and Handler")
		}
		if _, dup := byName[p.Name]; dup {
			return nil, errors.New("projector: RegistryConfig.Projections: " + p.Name + " is listed twice")
		}
		byName[p.Name] = p
	}
	return &Registry{
		store: cfg.Store, cfg: cfg, byName: byName,
		logger:  cfg.Logger.With("subsystem", "projections"),
		runners: map[string]*Runner{},
	}, nil
}

// Names returns the projections' names in configuration order.
func (r *Registry) Names() []string {
	out := make([]string, len(r.cfg.Projections))
	for i, p := range r.cfg.Projections {
		out[i] = p.Name
	}
	return out
}

// Start starts every projection's Runner; see Runner.Start. If one fails
// to start, those already started are stopped and its error is returned.
func (r *Registry) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started || r.stopped {
		return errors.New("projector: registry already started")
	}
	for _, p := range r.cfg.Projections {
		run, err := r.startRunner(ctx, p)
		if err != nil {
			for _, started := range r.runners {
				started.Stop()
			}
			clear(r.runners)
			return err
		}
		r.runners[p.Name] = run
	}
	r.started = true
	return nil
}

func (r *Registry) startRunner(ctx context.Context, p Projection) (*Runner, error) {
	h := p.Handler(r.store)
	var types []string
	if th, ok := h.(TypedHandler); ok {
		types = th.Types()
	}
	run, err := New(Config{
		Name: p.Name, Source: r.store, Checkpoints: r.store, HandlerSavesCheckpoint: true,
		Start: FromBeginning, Handler: h, Types: types,
		BatchSize: r.cfg.BatchSize, PollInterval: r.cfg.PollInterval, Coalesce: r.coalesce(),
		IdleCheckpoint: r.idleCheckpoint(), Logger: r.cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	if err := run.Start(ctx); err != nil {
		return nil, err
	}
	return run, nil
}

// DefaultCoalesce is RegistryConfig.Coalesce's default. Under a steady
// stream of commits a projection then reads about ten times a second,
// whatever the commit rate. At 200 publishes/s, 20 ms instead cost
// PostgreSQL about 10% more of a CPU (850 transactions/s against ~660 for
// the whole server), for read models that nothing on the live path waits
// for: joins and recoveries check membership against the model plus the
// events it has not applied yet (MembershipView).
const DefaultCoalesce = 100 * time.Millisecond

func (r *Registry) coalesce() time.Duration { return orDefault(r.cfg.Coalesce, DefaultCoalesce) }

func (r *Registry) idleCheckpoint() time.Duration {
	return orDefault(r.cfg.IdleCheckpoint, DefaultIdleCheckpoint)
}

// orDefault returns d, or def if d is zero, or 0 (off) if d is negative.
func orDefault(d, def time.Duration) time.Duration {
	switch {
	case d < 0:
		return 0
	case d == 0:
		return def
	default:
		return d
	}
}

// Stop stops every Runner and waits for them. It is idempotent.
func (r *Registry) Stop() {
	r.mu.Lock()
	r.stopped = true
	runners := make([]*Runner, 0, len(r.runners))
	for _, run := range r.runners {
		runners = append(runners, run)
	}
	clear(r.runners)
	r.mu.Unlock()
	for _, run := range runners {
		run.Stop()
	}
}

// Wake makes every Runner read the log now; pass it to
// eventstore.Store.Listen. It never blocks.
func (r *Registry) Wake() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, run := range r.runners {
		run.Wake()
	}
}

// Status reports every projection's progress from its stored checkpoint,
// in configuration order: the position, the events after it and how long
// the oldest of them has waited. It reads the database, so it also covers
// projections run by other processes.
func (r *Registry) Status(ctx context.Context) ([]eventstore.ProjectionStatus, error) {
	return r.store.ProjectionStatus(ctx, r.Names()...)
}

// CatchUp runs projection name in the caller's goroutine until it has
// handled every event in the log's tail, and returns its position. The
// unread and entity projections skip what another process already applied,
// so CatchUp is safe next to a running server; the membership projection
// is not guarded that way: catch it up only where no server runs it.
func (r *Registry) CatchUp(ctx context.Context, name string) (domain.Position, error) {
	p, err := r.projection(name)
	if err != nil {
		return domain.Position{}, err
	}
	return drain(ctx, r.store, p, r.cfg.BatchSize)
}

// Rebuild rebuilds projection name from the beginning of the log while the
// live model keeps answering, then swaps the new model and its checkpoint
// in atomically (see eventstore.BeginRebuild for the mechanism). A Runner
// of name in this Registry is stopped for the swap and restarted after it.
//
// The unread and entity projections may keep running in other processes
// during a rebuild: they wait during the swap and then skip what the new
// model already holds. The membership projection applies a batch it read
// before the swap once more after it; replaying membership changes in log
// order converges to the same members, but run its rebuild from the server
// (or with the server stopped) to avoid the brief relapse.
func (r *Registry) Rebuild(ctx context.Context, name string) (eventstore.RebuildResult, error) {
	p, err := r.projection(name)
	if err != nil {
		return eventstore.RebuildResult{}, err
	}
	began := time.Now()
	log := r.logger.With("projection", name)
	log.InfoContext(ctx, "rebuild started")
	rb, err := r.store.BeginRebuild(ctx, p.Name, p.Tables)
	if err != nil {
		return eventstore.RebuildResult{}, err
	}
	defer func() {
		if err := rb.Close(ctx); err != nil {
			log.WarnContext(ctx, "rebuild cleanup failed", "error", err)
		}
	}()
	catchUp := func(ctx context.Context) error {
		_, err := drain(ctx, rb.Store(), p, r.cfg.BatchSize)
		return err
	}
	// Most of the log is replayed here, with the live model untouched;
	// Swap replays only what arrived meanwhile.
	if err := catchUp(ctx); err != nil {
		return eventstore.RebuildResult{}, err
	}
	resume := r.pause(name)
	res, err := rb.Swap(ctx, catchUp)
	if rerr := resume(ctx); rerr != nil {
		err = errors.Join(err, rerr)
	}
	if err != nil {
		log.ErrorContext(ctx, "rebuild failed", "error", err)
		return eventstore.RebuildResult{}, err
	}
	log.InfoContext(ctx, "rebuild swapped in", "rows", res.Rows, "position", res.Position,
		"compared", res.Compared, "changed", res.Changed, "took", time.Since(began))
	return res, nil
}

// pause stops this Registry's Runner of name, if it runs, and returns a
// function that starts a new one from the stored checkpoint.
func (r *Registry) pause(name string) func(ctx context.Context) error {
	r.mu.Lock()
	run := r.runners[name]
	delete(r.runners, name)
	r.mu.Unlock()
	if run == nil {
		return func(context.Context) error { return nil }
	}
	run.Stop()
	return func(ctx context.Context) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.stopped {
			return nil
		}
		next, err := r.startRunner(ctx, r.byName[name])
		if err != nil {
			return err
		}
		r.runners[name] = next
		return nil
	}
}

func (r *Registry) projection(name string) (Projection, error) {
	p, ok := r.byName[name]
	if !ok {
		return Projection{}, domain.Errorf(domain.CodeNotFound, "no projection named %q (have %v)", name, r.Names())
	}
	return p, nil
}

// drain runs p on s from its stored checkpoint until the tail is empty.
func drain(ctx context.Context, s *eventstore.Store, p Projection, batchSize int) (domain.Position, error) {
	h := p.Handler(s)
	pos, _, err := s.LoadCheckpoint(ctx, p.Name)
	if err != nil {
		return domain.Position{}, err
	}
	for {
		batch, err := s.ReadTail(ctx, pos, batchSize)
		if err != nil {
			return pos, err
		}
		if len(batch) == 0 {
			return pos, nil
		}
		next := batch[len(batch)-1].Position
		if err := h.Handle(ctx, batch, next); err != nil {
			return pos, err
		}
		pos = next
		if len(batch) < batchSize {
			return pos, nil
		}
	}
}
