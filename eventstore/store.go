package eventstore

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/roomlog/roomlog/domain"
)

// NotifyChannel is the LISTEN/NOTIFY channel on which committed appends
// are announced: an AppendTx transaction notifies at its commit, the group
// commits after theirs, coalesced, from a notifier of their own (a failed
// NOTIFY is only logged). The notification is only a wake-up hint; the
// log is the truth, and tails also poll.
const NotifyChannel = "roomlog_events"

// CommitStats describes one group commit, for Config.OnCommit.
type CommitStats struct {
	// Submissions and Rows are the appends (Append or AppendBatch calls)
	// and the rows (events × rooms) the commit wrote.
	Submissions, Rows int
	// RoundTrips is how many round trips to PostgreSQL the commit took: 1
	// when the store remembered every room's head (the one-round-trip
	// append, heads.go), 2 when it read them first, 3 when what it
	// remembered was stale.
	RoundTrips int
	// Took is the commit's duration, the wait for a connection included.
	Took time.Duration
}

// Config tunes a Store. Its zero value means "use the defaults".
type Config struct {
	// MaxBatchRows caps the rows one group commit writes. Default 2000.
	MaxBatchRows int
	// QueueSize is how many pending submissions may wait for the writer
	// before Append blocks. Default 4096.
	QueueSize int
	// Writers is how many group-commit writer goroutines run. Default 1:
	// with the one-round-trip append a commit is short, and a second writer
	// mostly made the two commit to the same rooms at once (each such
	// commit then reads its heads first, and the later one's events miss
	// the hand-off and go through the tail). On a 2-CPU machine with local
	// storage, 1 instead of 2 gave 10-80% more events/s from 8 and 64
	// publishers and ~40% lower p50 and p99 at 1,000 publishes/s; 2 lets
	// one batch build while another waits for its flush, which may pay off
	// where the flush is slow (network storage).
	Writers int
	// AsyncCommit turns synchronous_commit off for appends. It exists only
	// to price durability in benchmarks: an acknowledged append may then be
	// lost in a crash. Never enable it in production.
	AsyncCommit bool
	// OnCommit, if set, is called after every group commit; for metrics.
	OnCommit func(CommitStats)
	// HandoffAfter and Handoff, if both set, hand committed events to an
	// in-process consumer (the live fan-out) the moment they are durable,
	// without the round trips of NOTIFY and a tail read. Before each group
	// commit the writer asks HandoffAfter for the position after which the
	// consumer still needs events (ok false: no hand-off). If no older
	// transaction could still write events (the writer horizon,
	// horizon.go), Handoff then receives, after the COMMIT, every event
	// after that position up to and including the commit's own, in the
	// tail's (txid, id) order:
	// exactly what ReadTail would return from it, with nothing missing.
	// Otherwise Handoff is not called and the tail delivers them. Handoff
	// is called from a writer goroutine (the writers run concurrently) and
	// must not block for long; the same events also reach ReadTail, so the
	// consumer must skip what it has already seen.
	HandoffAfter func() (after domain.Position, ok bool)
	// Handoff receives a committed stretch of the log; see HandoffAfter.
	Handoff func(ctx context.Context, after domain.Position, events []domain.Delivery)
	// HandoffMissed, if set, is called after a group commit whose events
	// the hand-off could not take (an older writer was still running):
	// the consumer must read them from the tail now. If other group
	// commits of this Store were in flight, it is called once they have
	// ended, from another goroutine, possibly while a later Handoff runs
	// (writer.go, handoffMissed). Its NOTIFY says
	// "handed off" (Notice.HandedOff) either way, so that a listener need
	// not wake the consumer for every commit of its own process.
	HandoffMissed func()
	// Now returns the current time; tests may pin it. Default time.Now.
	Now func() time.Time
}

// WithDefaults returns c with zero fields replaced by their defaults.
func (c *Config) WithDefaults() Config {
	var out Config
	if c != nil {
		out = *c
	}
	if out.MaxBatchRows <= 0 {
		out.MaxBatchRows = 2000
	}
	if out.QueueSize <= 0 {
		out.QueueSize = 4096
	}
	if out.Writers <= 0 {
		out.Writers = 1
	}
	if out.Now == nil {
		out.Now = time.Now
	}
	return out
}

// Store is roomlog's PostgreSQL event store. It is safe for concurrent use.
// Reads work right after New; appends need Start.
type Store struct {
	pool   *pgxpool.Pool
	logger *slog.Logger
	cfg    Config

	queue chan *submission
	// id tells this store's own hand-off notifications apart (Notice).
	id string

	// The shared writer-horizon query (horizon.go): hNext is the query
	// callers join until it starts; hRun lets one run at a time.
	hmu   sync.Mutex
	hNext *horizonCall
	hRun  chan struct{}

	// The notifier (notify.go): what it has to send, and its wake-up.
	nmu      sync.Mutex
	nHandoff bool
	nPlain   bool
	nWake    chan struct{}
	nStop    chan struct{}
	nDone    chan struct{}

	// The group commits in flight (writer.go, handoffMissed).
	fmu    sync.Mutex
	flight map[chan struct{}]struct{}

	// heads remembers the room heads the group commits left, for the
	// one-round-trip append (heads.go).
	heads *headCache

	// batchTimeout bounds one group commit (writer.go); tests shorten it.
	batchTimeout time.Duration

	mu      sync.Mutex
	started bool
	stopped bool
	stopCh  chan struct{}
	wg      sync.WaitGroup
}

// New returns a Store over pool. logger may be nil to discard logs; cfg may
// be nil for the defaults.
func New(pool *pgxpool.Pool, logger *slog.Logger, cfg *Config) *Store {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := cfg.WithDefaults()
	return &Store{
		pool:   pool,
		logger: logger.With("subsystem", "eventstore"),
		cfg:    c,
		queue:  make(chan *submission, c.QueueSize),
		id:     uuid.NewString(),
		hRun:   make(chan struct{}, 1),
		flight: map[chan struct{}]struct{}{},
		heads:  newHeadCache(),
		nWake:  make(chan struct{}, 1),
		nStop:  make(chan struct{}),
		nDone:  make(chan struct{}),
		stopCh: make(chan struct{}),

		batchTimeout: batchTimeout,
	}
}

// Pool returns the pool the store runs on, for wiring health checks.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Start launches the group-commit writers. It returns at once; the writers
// run until Stop. Calling Start twice is an error.
func (s *Store) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("eventstore: already started")
	}
	if s.stopped {
		return errors.New("eventstore: stopped")
	}
	s.started = true
	runCtx := context.WithoutCancel(ctx)
	go func() {
		defer close(s.nDone)
		s.notifyLoop(runCtx, s.nStop)
	}()
	for range s.cfg.Writers {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.writeLoop(runCtx)
		}()
	}
	return nil
}

// Stop stops intake and waits until every submission already queued has
// been committed (or failed) and acknowledged. It is idempotent.
func (s *Store) Stop() {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		s.wg.Wait()
		if s.started {
			<-s.nDone
		}
		return
	}
	s.stopped = true
	started := s.started
	close(s.stopCh)
	s.mu.Unlock()
	s.wg.Wait()
	if started {
		// The writers are done: send their last NOTIFYs.
		close(s.nStop)
		<-s.nDone
	}
	// Anything still queued after the writers exited (a race between a
	// late Append and Stop) is failed, never silently dropped.
	for {
		select {
		case sub := <-s.queue:
			sub.finish(nil, domain.Errorf(domain.CodeUnavailable, "server is shutting down"))
		default:
			return
		}
	}
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return unavailable("ping", err)
	}
	return nil
}

// DurabilitySettings reports the server's fsync and synchronous_commit
// settings, so the service can refuse to claim durability it does not have.
func (s *Store) DurabilitySettings(ctx context.Context) (fsync, syncCommit string, err error) {
	err = s.pool.QueryRow(ctx, "SELECT current_setting('fsync'), current_setting('synchronous_commit')").Scan(&fsync, &syncCommit)
	if err != nil {
		return "", "", classify("read durability settings", err)
	}
	return fsync, syncCommit, nil
}

// SchemaVersion returns the applied golang-migrate version and whether it is
// dirty; version 0 means no migration has run.
func (s *Store) SchemaVersion(ctx context.Context) (version int64, dirty bool, err error) {
	err = s.pool.QueryRow(ctx, "SELECT version, dirty FROM schema_migrations LIMIT 1").Scan(&version, &dirty)
	if err != nil {
		return 0, false, classify("read schema version", err)
	}
	return version, dirty, nil
}

func (s *Store) now() time.Time {
	// Postgres stores microseconds; truncate so the hashed time is the
	// stored time.
	return s.cfg.Now().UTC().Truncate(time.Microsecond)
}

var errStopped = domain.Errorf(domain.CodeUnavailable, "server is shutting down")
