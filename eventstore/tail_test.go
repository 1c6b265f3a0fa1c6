package eventstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/eventstoretest"
)

// drainTail reads the tail from pos until it returns nothing and returns
// the new position and what it read.
func drainTail(t *testing.T, s *eventstore.Store, pos domain.Position) (domain.Position, []domain.Delivery) {
	t.Helper()
	return drainWith(t, pos, func(pos domain.Position) ([]domain.Delivery, error) {
		return s.ReadTail(context.Background(), pos, 100)
	})
}

// drainWith reads with read from pos until it returns nothing, checking
// that the position only moves forward, and returns where it ended and
// everything read.
func drainWith(t *testing.T, pos domain.Position, read func(domain.Position) ([]domain.Delivery, error)) (domain.Position, []domain.Delivery) {
	t.Helper()
	var out []domain.Delivery
	for {
		batch, err := read(pos)
		if err != nil {
			t.Fatal(err)
		}
		if len(batch) == 0 {
			return pos, out
		}
		for _, d := range batch {
			if !pos.Less(d.Position) {
				t.Fatalf("tail went backwards: %v after %v", d.Position, pos)
			}
			pos = d.Position
		}
		out = append(out, batch...)
	}
}

// TestTailOutOfOrderCommit holds one append's transaction open while later
// appends commit, and shows that the tail neither skips the held row nor
// delivers anything past it before it commits.
func TestTailOutOfOrderCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := eventstoretest.New(t)
	s := newStore(t, pool, nil)

	pos, _ := drainTail(t, s, domain.Position{})

	// Transaction A appends to room-a and stays open: it holds the oldest
	// transaction id.
	txA := holdWriter(t, s, pool, "user-a")

	// B and C commit after A took its id, and get larger ids.
	for i := range 2 {
		if _, err := s.Append(ctx, req("x-later", fmt.Sprintf(`{"i":%d}`, i), "user-b")); err != nil {
			t.Fatal(err)
		}
	}
	// A naive "id > cursor" reader would see B and C now and then skip A
	// forever. The tail must see nothing yet.
	var naive int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM events").Scan(&naive); err != nil {
		t.Fatal(err)
	}
	if naive != 2 {
		t.Fatalf("setup: %d committed rows visible, want 2", naive)
	}
	pos, got := drainTail(t, s, pos)
	if len(got) != 0 {
		t.Fatalf("tail delivered %d rows past a running older transaction", len(got))
	}

	if err := txA.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// Other tests' transactions on the same cluster also hold xmin back, so
	// poll until the three rows are readable.
	got = nil
	deadline := time.Now().Add(20 * time.Second)
	for len(got) < 3 && time.Now().Before(deadline) {
		var more []domain.Delivery
		pos, more = drainTail(t, s, pos)
		got = append(got, more...)
		if len(got) < 3 {
			time.Sleep(5 * time.Millisecond)
		}
	}
	var types []string
	for _, d := range got {
		types = append(types, d.Type)
	}
	if fmt.Sprint(types) != "[x-held x-later x-later]" {
		t.Fatalf("tail after commit = %v, want the held row first and nothing skipped", types)
	}
}

// holdWriter opens a transaction that appends an x-held event to room and
// stays open, holding the oldest event-writing transaction id, until the
// test commits it or ends (then it is rolled back).
func holdWriter(t *testing.T, s *eventstore.Store, pool *pgxpool.Pool, room string) pgx.Tx {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	if _, err := s.AppendTx(ctx, tx, []eventstore.AppendRequest{req("x-held", `{}`, room)}); err != nil {
		t.Fatal(err)
	}
	return tx
}

// holdXid opens a transaction on pool that takes a transaction id and
// writes no event, and rolls it back at cleanup.
func holdXid(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	var xid string
	if err := tx.QueryRow(ctx, "SELECT pg_current_xact_id()::text").Scan(&xid); err != nil {
		t.Fatal(err)
	}
}

// TestTailIgnoresNonWriters holds open, with transaction ids older than an
// append's, a transaction of this database that writes something else and
// one of another database: neither can write events, so the tail (and a
// new tail's start) does not wait for them.
func TestTailIgnoresNonWriters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := eventstoretest.New(t)
	other := eventstoretest.New(t) // another database on the same cluster
	s := newStore(t, pool, nil)
	pos, _ := drainTail(t, s, domain.Position{})

	holdXid(t, pool)
	holdXid(t, other)
	if _, err := s.Append(ctx, req("x-after", `{}`, "user-a")); err != nil {
		t.Fatal(err)
	}
	_, got := drainTail(t, s, pos)
	if len(got) != 1 || got[0].Type != "x-after" {
		t.Fatalf("tail = %v, want the appended row at once", got)
	}
	start, err := s.TailStart(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if start.Txid < got[0].Position.Txid {
		t.Fatalf("tail start %v is held back before %v by transactions that cannot write events", start, got[0].Position)
	}
}

// TestTailUnderLoad runs writers on two stores while a reader follows the
// tail, and checks the reader saw every row exactly once and each room in
// ascending seq order.
func TestTailUnderLoad(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := eventstoretest.New(t)
	stores := []*eventstore.Store{newStore(t, pool, nil), newStore(t, secondPool(t, pool), nil)}
	const writers = 16
	const each = 40
	var wg sync.WaitGroup
	done := make(chan struct{})
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				rooms := []string{fmt.Sprintf("user-%d", (w+i)%7)}
				if i%3 == 0 {
					rooms = append(rooms, "chat-hot")
				}
				r := req("x-load", `{}`, rooms...)
				if w%4 == 0 {
					// Some appends run in their own caller transaction,
					// which commits later than its id suggests.
					tx, err := pool.Begin(ctx)
					if err != nil {
						t.Error(err)
						return
					}
					if _, err := stores[w%2].AppendTx(ctx, tx, []eventstore.AppendRequest{r}); err != nil {
						t.Error(err)
						tx.Rollback(ctx) //nolint:errcheck
						return
					}
					if err := tx.Commit(ctx); err != nil {
						t.Error(err)
						return
					}
					continue
				}
				if _, err := stores[w%2].Append(ctx, r); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()

	seen := map[string]bool{}
	last := map[domain.Room]int64{}
	var pos domain.Position
	total := 0
	finished := false
	var want int
	deadline := time.Now().Add(30 * time.Second)
	for {
		if !finished {
			select {
			case <-done:
				finished = true
				// Rows become readable once every older transaction in
				// the cluster (other tests included) has ended, so read
				// until all committed rows are seen, with a deadline.
				if err := pool.QueryRow(ctx, "SELECT count(*) FROM events").Scan(&want); err != nil {
					t.Fatal(err)
				}
			default:
			}
		}
		batch, err := stores[0].ReadTail(ctx, pos, 50)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range batch {
			key := fmt.Sprintf("%s/%d", d.Room, d.Seq)
			if seen[key] {
				t.Fatalf("%s delivered twice", key)
			}
			seen[key] = true
			if d.Seq != last[d.Room]+1 {
				t.Fatalf("room %s: seq %d after %d", d.Room, d.Seq, last[d.Room])
			}
			last[d.Room] = d.Seq
			pos = d.Position
			total++
		}
		if finished && total >= want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tail saw %d of %d rows before the deadline", total, want)
		}
		if len(batch) == 0 {
			time.Sleep(5 * time.Millisecond) // polling the tail; the projector uses LISTEN
		}
	}
	if t.Failed() {
		return
	}
	_, rows := assertGapFree(t, pool)
	if int64(total) != rows {
		t.Fatalf("tail saw %d rows, log holds %d", total, rows)
	}
	t.Logf("tail saw all %d rows once, each room in seq order", total)
}

func TestAppendTxRules(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := eventstoretest.New(t)
	s := newStore(t, pool, nil)

	t.Run("RollbackLeavesNoGap", func(t *testing.T) {
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.AppendTx(ctx, tx, []eventstore.AppendRequest{req("x-a", `{}`, "user-rb")}); err != nil {
			t.Fatal(err)
		}
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		res, err := s.Append(ctx, req("x-a", `{}`, "user-rb"))
		if err != nil {
			t.Fatal(err)
		}
		if res.Deliveries[0].Seq != 1 {
			t.Fatalf("seq after a rolled-back append = %d, want 1", res.Deliveries[0].Seq)
		}
	})

	t.Run("MustBeFirstWrite", func(t *testing.T) {
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx) //nolint:errcheck
		if _, err := tx.Exec(ctx, "CREATE TEMP TABLE business (x int)"); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO business VALUES (1)"); err != nil {
			t.Fatal(err)
		}
		_, err = s.AppendTx(ctx, tx, []eventstore.AppendRequest{{Type: "x-a", Rooms: []domain.Room{"user-1"}, Payload: json.RawMessage(`{}`), Producer: "p"}})
		if domain.ErrorCode(err) != domain.CodeInvalid {
			t.Fatalf("err = %v, want invalid", err)
		}
	})
}

// TestTailSharedHorizon: many concurrent readers share writer-horizon
// queries, yet each reads below a horizon computed after it was called:
// every reader started after an append returned sees that append.
func TestTailSharedHorizon(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := eventstoretest.New(t)
	s := newStore(t, pool, nil)
	start, err := s.TailStart(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for round := range 20 {
		res, err := s.Append(ctx, req("x-round", fmt.Sprintf(`{"r":%d}`, round), "user-a"))
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for range 32 {
			wg.Go(func() {
				got, err := s.ReadTail(ctx, start, 1000)
				if err != nil {
					errs <- err
					return
				}
				if len(got) == 0 || got[len(got)-1].ID != res.EventID {
					errs <- fmt.Errorf("round %d: a reader started after the append returned did not see it (%d rows)", round, len(got))
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
}

// TestReadTailTypes: a consumer that reads only some types through
// ReadTailTypes, in small batches, gets exactly the tail's events of those
// types, in order, and ends where the tail ends; while an older writer's
// transaction is open it reads nothing past it.
func TestReadTailTypes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := eventstoretest.New(t)
	s := newStore(t, pool, nil)
	start, err := s.TailStart(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		typ := "x-noise"
		switch {
		case i%7 == 3:
			typ = "x-a"
		case i%11 == 5:
			typ = "x-b"
		}
		if _, err := s.Append(ctx, req(typ, fmt.Sprintf(`{"i":%d}`, i), "user-a")); err != nil {
			t.Fatal(err)
		}
	}
	// Noise after the last match: the consumer must still move past it.
	if _, err := s.Append(ctx, req("x-noise", `{}`, "user-b")); err != nil {
		t.Fatal(err)
	}
	end, all := drainTail(t, s, start)
	var want []domain.Delivery
	for _, d := range all {
		if d.Type == "x-a" || d.Type == "x-b" {
			want = append(want, d)
		}
	}
	types := []string{"x-a", "x-b"}
	drain := func(pos domain.Position) (domain.Position, []domain.Delivery) {
		end, read := drainWith(t, pos, func(pos domain.Position) ([]domain.Delivery, error) {
			return s.ReadTailTypes(ctx, pos, types, 2)
		})
		var got []domain.Delivery
		for _, d := range read {
			if d.Type == "x-a" || d.Type == "x-b" {
				got = append(got, d)
			}
		}
		return end, got
	}
	pos, got := drain(start)
	if !reflect.DeepEqual(got, want) || len(want) < 8 {
		t.Fatalf("typed read got %d events, want the tail's %d:\n%v\n%v", len(got), len(want), positions(got), positions(want))
	}
	if pos != end {
		t.Fatalf("typed read ended at %v, the tail at %v", pos, end)
	}

	// An older writer holds the horizon: nothing after it is read, and
	// the held event arrives once it commits.
	tx := holdWriter(t, s, pool, "user-h")
	if _, err := s.Append(ctx, req("x-a", `{"late":true}`, "user-a")); err != nil {
		t.Fatal(err)
	}
	if p, got := drain(pos); len(got) != 0 || p != pos {
		t.Fatalf("read %d events past an open older writer", len(got))
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, got := drain(pos); len(got) != 1 || string(got[0].Payload) != `{"late":true}` {
		t.Fatalf("after the older writer committed: %d events", len(got))
	}
}
