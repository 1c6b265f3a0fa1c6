package eventstore

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/roomlog/roomlog/domain"
)

// batchTimeout bounds one group commit, so a hung database turns into
// CodeUnavailable errors instead of callers waiting forever.
const batchTimeout = 15 * time.Second

func (s *Store) writeLoop(ctx context.Context) {
	for {
		select {
		case first := <-s.queue:
			s.process(ctx, s.collect(first))
		case <-s.stopCh:
			// Flush what is already queued, then exit.
			for {
				select {
				case first := <-s.queue:
					s.process(ctx, s.collect(first))
				default:
					return
				}
			}
		}
	}
}

// collect drains queued submissions behind first, up to MaxBatchRows rows.
func (s *Store) collect(first *submission) []*submission {
	batch := []*submission{first}
	rows := first.rows
	for rows < s.cfg.MaxBatchRows {
		select {
		case sub := <-s.queue:
			batch = append(batch, sub)
			rows += sub.rows
		default:
			return batch
		}
	}
	return batch
}

func (s *Store) process(ctx context.Context, batch []*submission) {
	live := batch[:0:0]
	for _, sub := range batch {
		if err := sub.ctx.Err(); err != nil {
			// Not written: the caller gave up before the commit began.
			sub.finish(nil, err)
			continue
		}
		live = append(live, sub)
	}
	if len(live) == 0 {
		return
	}
	err := s.commit(ctx, live)
	if err == nil {
		return
	}
	if len(live) > 1 && domain.ErrorCode(err) != domain.CodeUnavailable {
		// Isolate a poisoned submission: retry each alone so that one bad
		// event cannot fail its neighbours.
		s.logger.WarnContext(ctx, "group commit failed; retrying submissions one by one", "submissions", len(live), "error", err)
		for _, sub := range live {
			if err := s.commit(ctx, []*submission{sub}); err != nil {
				sub.finish(nil, err)
			}
		}
		return
	}
	for _, sub := range live {
		sub.finish(nil, err)
	}
}

// commit writes subs in one transaction and finishes each of them on
// success. On a fatal error it finishes nothing and returns the error.
// After a successful commit it hands the committed stretch of the log to
// Config.Handoff, if any.
//
// The commit's statements run under a deadline on the connection itself
// rather than on their context: pgx watches a context that can end by
// registering a context.AfterFunc per round trip, which with the
// deadline's own timer was about a ninth of what a single-event commit
// allocated (BenchmarkAppendHandoff), and a deadline on the connection
// ends a hung commit the same way, as a failed read or write that closes
// the connection. The statements get ctx as it is: the writers run on
// Start's context without its cancellation, which pgx does not watch.
// Only the wait for a pooled connection has a context deadline.
func (s *Store) commit(ctx context.Context, subs []*submission) error {
	var done chan struct{}
	if s.cfg.HandoffMissed != nil {
		// Only handoffMissed looks at the commits in flight.
		done = s.beginFlight()
		defer s.endFlight(done)
	}
	start := time.Now()
	deadline := start.Add(s.batchTimeout)
	actx, cancel := context.WithDeadline(ctx, deadline)
	conn, err := s.pool.Acquire(actx)
	cancel()
	if err != nil {
		return classify("append: acquire connection", err)
	}
	pc := conn.Conn().PgConn()
	if err := pc.Conn().SetDeadline(deadline); err != nil {
		s.release(ctx, conn)
		return unavailable("append: set deadline", err)
	}
	results, subErrs, out, err := s.appendOwn(ctx, conn, pc, subs)
	// Cleared before anything else uses the connection; a commit that
	// timed out has closed it, and the pool drops it.
	_ = pc.Conn().SetDeadline(time.Time{})
	if err != nil {
		s.release(ctx, conn)
		return err
	}
	conn.Release()
	if out.notify {
		s.notifyAfterCommit(out.handoffTried)
	}
	if s.cfg.OnCommit != nil {
		st := CommitStats{Submissions: len(subs), RoundTrips: out.roundTrips, Took: time.Since(start)}
		for _, sub := range subs {
			st.Rows += sub.rows
		}
		s.cfg.OnCommit(st)
	}
	for i, sub := range subs {
		sub.finish(results[i], subErrs[i])
	}
	switch {
	case out.handoff != nil:
		s.cfg.Handoff(ctx, out.handoffAfter, out.handoff)
	case out.handoffTried && s.cfg.HandoffMissed != nil:
		s.handoffMissed(done)
	}
	return nil
}

// beginFlight registers a group commit in flight and returns the channel
// endFlight closes when it has ended, its hand-off included.
func (s *Store) beginFlight() chan struct{} {
	done := make(chan struct{})
	s.fmu.Lock()
	s.flight[done] = struct{}{}
	s.fmu.Unlock()
	return done
}

func (s *Store) endFlight(done chan struct{}) {
	s.fmu.Lock()
	delete(s.flight, done)
	s.fmu.Unlock()
	close(done)
}

// handoffMissed tells the hand-off consumer to read the tail after a
// commit whose events it could not take, because a transaction with an
// older id could still write events. With several writers
// (Config.Writers) that is usually another writer of this store, whose
// commit overlapped; the tail cannot deliver the events until it has
// ended, so a read at once would find nothing and the consumer would only
// look again after its recheck delay. So the call
// waits until every other group commit of this store in flight now (own,
// the commit that just finished) has ended, hand-off included; commits
// that start later get younger ids and cannot hold the events back.
// Another process's writer, or an AppendTx, is not waited for.
func (s *Store) handoffMissed(own chan struct{}) {
	s.fmu.Lock()
	var wait []chan struct{}
	for d := range s.flight {
		if d != own {
			wait = append(wait, d)
		}
	}
	s.fmu.Unlock()
	if len(wait) == 0 {
		s.cfg.HandoffMissed()
		return
	}
	go func() {
		for _, d := range wait {
			<-d
		}
		s.cfg.HandoffMissed()
	}()
}

// appendOwn appends subs in a transaction of its own on pc, whose batches
// q sends: in one round trip if the store remembers every room's head,
// else, or if what it remembered was stale, the two-round-trip way.
func (s *Store) appendOwn(ctx context.Context, q batchSender, pc *pgconn.PgConn, subs []*submission) ([][]AppendResult, []error, appended, error) {
	results, subErrs, out, err := s.appendInTx(ctx, q, subs, true, true)
	if !errors.Is(err, errStaleHeads) {
		return results, subErrs, out, err
	}
	// Nothing was written: append again, reading the heads first.
	s.logger.DebugContext(ctx, "one-round-trip append found stale heads; appending again", "error", err)
	rollback(ctx, pc)
	results, subErrs, out, err = s.appendInTx(ctx, q, subs, true, false)
	out.roundTrips++
	return results, subErrs, out, err
}

// release returns a connection whose transaction failed to the pool,
// rolling the transaction back first so the connection can be reused (the
// pool destroys a connection it gets back inside a transaction).
func (s *Store) release(ctx context.Context, conn *pgxpool.Conn) {
	rollback(ctx, conn.Conn().PgConn())
	conn.Release()
}

// rollback ends a failed transaction on pc, if one is open.
func rollback(ctx context.Context, pc *pgconn.PgConn) {
	if !pc.IsClosed() && !pc.IsBusy() && pc.TxStatus() != 'I' {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		_, _ = pc.Exec(rctx, "ROLLBACK").ReadAll()
		cancel()
	}
}
