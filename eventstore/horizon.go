package eventstore

import (
	"context"
	"fmt"
	"hash/fnv"
	"time"
)

// The tail's horizon.
//
// A reader of the log in (txid, id) order may advance past a transaction id
// only once no transaction with a smaller id can still commit events. The
// simplest such bound is the cluster's xmin (pg_snapshot_xmin), but that
// waits for every transaction in the whole PostgreSQL cluster, in every
// database, whatever it does: one idle-in-transaction session anywhere
// stalls live delivery. roomlog uses a narrower bound, the writer horizon.
//
// Every transaction that inserts events takes its room advisory locks
// (lockKey "room") before it has a transaction id (AppendTx refuses a
// transaction that already has one), and holds them until it ends. So at
// any instant, a transaction with an id that can still write events holds
// a granted room lock in this database. The writer horizon is the smallest
// id among transactions that hold one, or the snapshot's xmax if that is
// smaller.
//
// It must be computed in its own statement, before the statement that reads
// below it: a writer seen running in the snapshot may end before the lock
// table is read, and only a later snapshot sees its rows. Every transaction
// below the horizon has ended by the time the horizon statement finishes,
// and transactions that get an id later get one above it, so the set of
// rows below the horizon, read with any later snapshot, never gains a
// member.

// roomLockClass is the advisory lock class (high 32 bits of the key) of
// room locks, as pg_locks shows it in classid.
var roomLockClass = func() int64 {
	ns := fnv.New32a()
	ns.Write([]byte("room"))
	return int64(ns.Sum32())
}()

// roomLockHoldersCTE lists the transactions holding a granted room lock
// in this database ($1 = roomLockClass) as h(pid, virtualtransaction),
// from l, one read of pg_locks. pid is null for a prepared transaction.
// writerLocksCTE and writerAgeSQL share it, so that the metric of the
// oldest writer counts exactly the transactions the horizon waits for.
const roomLockHoldersCTE = `WITH l AS MATERIALIZED (
		SELECT locktype, pid, virtualtransaction, transactionid, classid, objsubid, database, granted FROM pg_locks
	), h AS MATERIALIZED (
		SELECT DISTINCT pid, virtualtransaction FROM l
		WHERE locktype = 'advisory' AND granted AND objsubid = 1 AND classid = $1::int8::oid
		  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
	)`

// writerLocksCTE lists the transaction ids of transactions holding a room
// lock in this database ($1 = roomLockClass) as w(x32): 32-bit ids, as
// pg_locks and pg_stat_activity show them.
//
// The id comes from pg_stat_activity.backend_xid, which a backend
// advertises the moment it is assigned, and not only from the holder's
// transactionid lock: that lock is inserted a moment after the id is
// assigned, and a check that looked only at it once missed a writer in
// that window (a preempted backend, under load). The lock table and the
// activity table are read at two instants of the statement, in either
// order; that is safe for ids assigned before the statement started, the
// only ones the callers care about (see writerHorizonSQL and
// oldestWriterSQL). Prepared transactions have no backend; their
// transactionid lock (stable by then) stands in.
const writerLocksCTE = roomLockHoldersCTE + `, w AS MATERIALIZED (
		SELECT a.backend_xid::text::int8 AS x32 FROM h JOIN pg_stat_activity a ON a.pid = h.pid
		WHERE a.backend_xid IS NOT NULL
		UNION
		SELECT t.transactionid::text::int8 FROM h JOIN l t ON t.virtualtransaction = h.virtualtransaction
		WHERE t.locktype = 'transactionid'
	)`

// fullXid widens the 32-bit id x32 of a running transaction to its 64-bit
// xid8 value, given ref, the xid8 of another transaction id that is
// running or recent (both lie within 2^31 of each other), as int8.
func fullXid(x32, ref string) string {
	d := `(((` + x32 + ` - (` + ref + ` % 4294967296)) % 4294967296 + 4294967296) % 4294967296)`
	return `(` + ref + ` + ` + d + ` - CASE WHEN ` + d + ` >= 2147483648 THEN 4294967296 ELSE 0 END)`
}

// writerHorizonSQL returns the writer horizon (see above) as int8: the
// smallest id of a transaction holding a room lock, or the snapshot's
// xmax if that is smaller. (A snapshot's xip lists only running ids below
// its xmax, so the lock table, not xip, says which writers run.)
var writerHorizonSQL = writerLocksCTE + `, r AS (SELECT pg_snapshot_xmax(pg_current_snapshot())::text::int8 AS ref)
	SELECT least(coalesce(min(` + fullXid("w.x32", "r.ref") + `), r.ref), r.ref)
	FROM r LEFT JOIN w ON true
	GROUP BY r.ref`

// oldestWriterSQL reports, inside a writing transaction, whether no other
// transaction with a smaller id can still write events: then this
// transaction's rows are final in tail order as soon as it commits. The
// cheap test (no smaller id runs at all) goes first.
var oldestWriterSQL = writerLocksCTE + `, r AS (SELECT pg_current_xact_id()::text::int8 AS ref)
	SELECT pg_snapshot_xmin(pg_current_snapshot()) >= pg_current_xact_id()
	    OR NOT EXISTS (SELECT 1 FROM w, r WHERE ` + fullXid("w.x32", "r.ref") + ` < r.ref)`

// writerAgeSQL returns, as float8 seconds, how long the oldest transaction
// holding a room lock in this database ($1 = roomLockClass) has been
// running (0 when none does), and how many holders it could not date
// because pg_stat_activity hides their sessions from this role.
//
// A backend's age runs from its xact_start. A prepared transaction has no
// backend, and PostgreSQL keeps no start time for it: its age runs from
// its PREPARE TRANSACTION (pg_prepared_xacts.prepared), found through its
// transactionid lock as in writerLocksCTE. That understates it by however
// long it ran before PREPARE, but a prepared transaction is over on the
// database's side: what it still holds back, it holds from then on.
//
// A holder's xact_start is null only when this role may not see the
// session: a granted transaction-level lock means a transaction is
// running. pg_has_role mirrors PostgreSQL's own visibility rule (a member
// of the session's role or of pg_read_all_stats sees it), so a session
// that merely holds a session-level lock with the same key outside a
// transaction is not mistaken for a hidden one.
const writerAgeSQL = roomLockHoldersCTE + `, s AS (
		SELECT a.xact_start AS start,
		       a.xact_start IS NULL
		       AND NOT (pg_has_role(a.usesysid, 'USAGE') OR pg_has_role('pg_read_all_stats', 'USAGE')) AS hidden
		FROM h JOIN pg_stat_activity a ON a.pid = h.pid
		UNION ALL
		SELECT p.prepared, false
		FROM h JOIN l t ON t.virtualtransaction = h.virtualtransaction AND t.locktype = 'transactionid'
		JOIN pg_prepared_xacts p ON p.transaction = t.transactionid
		WHERE h.pid IS NULL
	)
	SELECT greatest(extract(epoch FROM now() - min(start)), 0)::float8, count(*) FILTER (WHERE hidden)
	FROM s`

// OldestWriterAge returns how long the oldest transaction that holds a
// room lock in this database has been running, or 0 when none holds one.
//
// It is for monitoring live delivery. Such a transaction can still write
// events, so the tail of every process (the writer horizon) waits for it:
// while it runs, events that other processes commit after it began reach
// no socket, however quickly they committed. roomlog's own group commits
// hold room locks for milliseconds; a large age is a producer's AppendTx
// inside a long (or idle) business transaction. The age of a prepared
// transaction counts from its PREPARE TRANSACTION (see writerAgeSQL).
//
// It is one query over pg_locks and pg_stat_activity. The role must be
// able to see the holders' sessions in pg_stat_activity (a superuser, the
// holders' own role, or a member of pg_read_all_stats); if a holder's
// session is hidden, OldestWriterAge returns an error rather than an age
// that might leave out the oldest one.
func (s *Store) OldestWriterAge(ctx context.Context) (time.Duration, error) {
	var secs float64
	var hidden int64
	if err := s.pool.QueryRow(ctx, writerAgeSQL, roomLockClass).Scan(&secs, &hidden); err != nil {
		return 0, classify("oldest writer age", err)
	}
	if hidden > 0 {
		return 0, fmt.Errorf("oldest writer age: pg_stat_activity hides %d holders of room locks from this role (grant it pg_read_all_stats)", hidden)
	}
	return time.Duration(secs * float64(time.Second)), nil
}

// WriterHorizon returns a writer horizon computed after the call began:
// every transaction with a smaller id that could write events has ended, so
// the events below it, read by any later statement, are final.
// ReadRecovery reads below one.
func (s *Store) WriterHorizon(ctx context.Context) (uint64, error) {
	return s.writerHorizon(ctx)
}

// writerHorizon returns a writer horizon computed after the call began;
// read below it in a later statement. Concurrent callers share one query:
// a caller joins the next query that has not started yet, so every caller
// still gets a horizon computed after it arrived (which the readers'
// arguments need), while a reconnect storm of thousands of recoveries, or
// every projection waking at one NOTIFY, costs a few queries instead of
// one each.
func (s *Store) writerHorizon(ctx context.Context) (uint64, error) {
	s.hmu.Lock()
	c := s.hNext
	if c == nil {
		c = &horizonCall{done: make(chan struct{})}
		s.hNext = c
	}
	s.hmu.Unlock()
	for {
		select {
		case <-c.done:
			return c.v, c.err
		case <-ctx.Done():
			return 0, classify("writer horizon", ctx.Err())
		case s.hRun <- struct{}{}:
		}
		// This caller may run a query now; run c unless another waiter of c
		// already did.
		s.hmu.Lock()
		run := !c.started
		c.started = true
		if s.hNext == c {
			s.hNext = nil // c starts: later callers need a later query
		}
		s.hmu.Unlock()
		if run {
			// Shared: one caller's cancellation must not fail the others.
			qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), horizonTimeout)
			c.v, c.err = s.queryHorizon(qctx)
			cancel()
			close(c.done)
		}
		<-s.hRun
		if run {
			return c.v, c.err
		}
	}
}

// horizonTimeout bounds the shared horizon query.
const horizonTimeout = 10 * time.Second

// horizonCall is one writer-horizon query shared by the callers that
// joined it before it started.
type horizonCall struct {
	done    chan struct{}
	started bool // guarded by Store.hmu
	v       uint64
	err     error
}

func (s *Store) queryHorizon(ctx context.Context) (uint64, error) {
	var h int64
	if err := s.pool.QueryRow(ctx, writerHorizonSQL, roomLockClass).Scan(&h); err != nil {
		return 0, classify("writer horizon", err)
	}
	if h <= 0 {
		return 0, fmt.Errorf("writer horizon: got %d", h)
	}
	return uint64(h), nil
}
