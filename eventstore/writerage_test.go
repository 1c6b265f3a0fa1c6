package eventstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/eventstoretest"
)

// roomClass is the advisory lock class of room locks (the high 32 bits of
// their keys), as the store computes it.
func roomClass() int64 {
	h := fnv.New32a()
	h.Write([]byte("room"))
	return int64(h.Sum32())
}

// txAge returns how long tx has been running, by the server's clock.
func txAge(t *testing.T, tx pgx.Tx) time.Duration {
	t.Helper()
	var secs float64
	if err := tx.QueryRow(context.Background(), "SELECT extract(epoch FROM clock_timestamp() - now())::float8").Scan(&secs); err != nil {
		t.Fatal(err)
	}
	return time.Duration(secs * float64(time.Second))
}

// writerAge calls OldestWriterAge and fails the test on an error.
func writerAge(t *testing.T, s *eventstore.Store) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	age, err := s.OldestWriterAge(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return age
}

// waitWriterAge polls OldestWriterAge until it reports at least min.
func waitWriterAge(t *testing.T, s *eventstore.Store, min time.Duration) {
	t.Helper()
	rmWaitFor(t, 10*time.Second, func() error {
		if age := writerAge(t, s); age < min {
			return fmt.Errorf("oldest writer age %v, want at least %v", age, min)
		}
		return nil
	})
}

// widePool opens a second pool on pool's database with room for every
// transaction a test holds open.
func widePool(t *testing.T, pool *pgxpool.Pool) *pgxpool.Pool {
	t.Helper()
	cfg := pool.Config().Copy()
	cfg.MaxConns = 16
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// TestOldestWriterAge holds event-writing transactions open and checks
// that OldestWriterAge reports the oldest one's age, by the server's own
// clock, and 0 once they end; transactions that cannot write events here
// count for nothing.
func TestOldestWriterAge(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := eventstoretest.New(t)
	other := eventstoretest.New(t) // another database on the same cluster
	s := newStore(t, pool, nil)
	// The transactions held open below would exhaust pool.
	holders := widePool(t, pool)

	if got := writerAge(t, s); got != 0 {
		t.Fatalf("no writer: age %v, want 0", got)
	}

	// None of these can write events in this database: a transaction with
	// an id and no lock, advisory locks of another class or of the room
	// class in the two-key form (objsubid 2), a session-level room lock
	// held outside any transaction, and a writer of another database.
	holdXid(t, holders)
	lockTx, err := holders.BeginTx(ctx, pgx.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = lockTx.Rollback(ctx) }()
	if _, err := lockTx.Exec(ctx, "SELECT pg_advisory_xact_lock(42), pg_advisory_xact_lock($1::int4, 7)", roomClass()); err != nil {
		t.Fatal(err)
	}
	session, err := holders.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer session.Release()
	if _, err := session.Exec(ctx, "SELECT pg_advisory_lock($1::int8 << 32 | 7)", roomClass()); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = session.Exec(ctx, "SELECT pg_advisory_unlock_all()") }()
	holdWriter(t, newStore(t, other, nil), other, "user-elsewhere")
	if got := writerAge(t, s); got != 0 {
		t.Fatalf("only non-writers and another database's writer: age %v, want 0", got)
	}

	// A holds a room lock; B starts a few hundred ms later.
	a := holdWriter(t, s, holders, "user-a")
	waitWriterAge(t, s, 300*time.Millisecond)
	b := holdWriter(t, s, holders, "user-b")
	lo := txAge(t, a)
	got := writerAge(t, s)
	hi := txAge(t, a)
	if got < lo || got > hi {
		t.Fatalf("two writers: age %v, want A's age, between %v and %v", got, lo, hi)
	}
	if bAge := txAge(t, b); bAge >= lo {
		t.Fatalf("B (%v) is not younger than A (%v): the test proves nothing", bAge, lo)
	}

	// A ends: B is now the oldest.
	if err := a.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	lo = txAge(t, b)
	got = writerAge(t, s)
	hi = txAge(t, b)
	if got < lo || got > hi {
		t.Fatalf("B alone: age %v, want B's age, between %v and %v", got, lo, hi)
	}

	if err := b.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if got := writerAge(t, s); got != 0 {
		t.Fatalf("after the writers ended: age %v, want 0", got)
	}
}

// TestOldestWriterAgeHiddenHolder: a role that may not see a writer's
// session in pg_stat_activity gets an error, not an age that leaves the
// writer out; granted pg_read_all_stats, it gets the age.
func TestOldestWriterAgeHiddenHolder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := eventstoretest.New(t)
	s := newStore(t, pool, nil)

	b := make([]byte, 6)
	_, _ = rand.Read(b)
	role := "roomlog_test_hidden_holder_" + hex.EncodeToString(b)
	if _, err := pool.Exec(ctx, "CREATE ROLE "+role+" NOLOGIN"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := pool.Exec(context.Background(), "DROP ROLE "+role); err != nil {
			t.Errorf("drop role %s: %v", role, err)
		}
	})
	cfg := pool.Config().Copy()
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, "SET ROLE "+role)
		return err
	}
	limited, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(limited.Close) // before the role is dropped
	ls := eventstore.New(limited, testLogger(t), nil)

	if got := writerAge(t, ls); got != 0 {
		t.Fatalf("no writer: age %v, want 0", got)
	}
	holdWriter(t, s, pool, "user-a") // as the test's (superuser) role
	if got, err := ls.OldestWriterAge(ctx); err == nil {
		t.Fatalf("hidden writer: age %v and no error, want an error", got)
	}
	if _, err := pool.Exec(ctx, "GRANT pg_read_all_stats TO "+role); err != nil {
		t.Fatal(err)
	}
	waitWriterAge(t, ls, time.Nanosecond)
}
