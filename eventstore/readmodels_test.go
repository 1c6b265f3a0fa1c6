package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/eventstoretest"
)

// rmWaitFor polls f every 10ms until it returns nil, failing the test
// after total.
func rmWaitFor(t *testing.T, total time.Duration, f func() error) {
	t.Helper()
	eventstoretest.CheckFor(t, total, 10*time.Millisecond, f)
}

// rmPublish appends events and returns the whole log's deliveries once the
// tail shows all n of them. The tail reads below the cluster-wide oldest
// running transaction, so parallel tests can delay it for a moment.
func rmPublish(t *testing.T, s *eventstore.Store, reqs ...eventstore.AppendRequest) []domain.Delivery {
	t.Helper()
	ctx := context.Background()
	res, err := s.AppendBatch(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	var got []domain.Delivery
	rmWaitFor(t, 20*time.Second, func() error {
		var err error
		got, err = s.ReadTail(ctx, domain.Position{}, eventstore.MaxReadLimit)
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, d := range got {
			seen[d.ID] = true
		}
		for _, r := range res {
			if !seen[r.EventID] {
				return fmt.Errorf("the tail does not show event %s yet", r.EventID)
			}
		}
		return nil
	})
	return got
}

func unreadOf(t *testing.T, s *eventstore.Store, users ...string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, u := range users {
		n, err := s.UnreadCount(context.Background(), u)
		if err != nil {
			t.Fatal(err)
		}
		out[u] = n
	}
	return out
}

func pos(i int64) domain.Position { return domain.Position{Txid: 1, ID: i} }

func TestApplyUnread(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	inc := func(u string, i int64) eventstore.UnreadChange {
		return eventstore.UnreadChange{UserID: u, Count: 1, Position: pos(i)}
	}
	set := func(u string, n, i int64) eventstore.UnreadChange {
		return eventstore.UnreadChange{UserID: u, Set: true, Count: n, Position: pos(i)}
	}

	tests := []struct {
		name    string
		batches [][]eventstore.UnreadChange
		want    map[string]int64
	}{
		{"Increments", [][]eventstore.UnreadChange{{inc("a", 1), inc("a", 2), inc("b", 3)}}, map[string]int64{"a": 2, "b": 1, "c": 0}},
		{"SetThenIncrement", [][]eventstore.UnreadChange{{inc("a", 1), set("a", 7, 2), inc("a", 3)}}, map[string]int64{"a": 8}},
		{"SetToZero", [][]eventstore.UnreadChange{{inc("a", 1)}, {inc("a", 2), set("a", 0, 3)}}, map[string]int64{"a": 0}},
		{"AcrossBatches", [][]eventstore.UnreadChange{{set("a", 5, 1)}, {inc("a", 2)}, {inc("a", 3), inc("b", 4)}}, map[string]int64{"a": 7, "b": 1}},
		// A batch handed over again (the runner crashed after the commit)
		// or overlapping the last one applies only what is new.
		{"RetriedBatch", [][]eventstore.UnreadChange{{inc("a", 1), inc("a", 2)}, {inc("a", 1), inc("a", 2)}, {inc("a", 2), inc("a", 3)}}, map[string]int64{"a": 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t, eventstoretest.New(t), nil)
			var last domain.Position
			for _, b := range tt.batches {
				last = b[len(b)-1].Position
				if err := s.ApplyUnread(ctx, "unread", b, last); err != nil {
					t.Fatal(err)
				}
			}
			users := make([]string, 0, len(tt.want))
			for u := range tt.want {
				users = append(users, u)
			}
			if got := unreadOf(t, s, users...); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("counts %v, want %v", got, tt.want)
			}
			cp, ok, err := s.LoadCheckpoint(ctx, "unread")
			if err != nil || !ok || cp != last {
				t.Fatalf("checkpoint %v %v %v, want %v", cp, ok, err, last)
			}
		})
	}

	t.Run("CheckpointNeverMovesBack", func(t *testing.T) {
		t.Parallel()
		s := newStore(t, eventstoretest.New(t), nil)
		if err := s.ApplyUnread(ctx, "unread", []eventstore.UnreadChange{inc("a", 5)}, pos(5)); err != nil {
			t.Fatal(err)
		}
		if err := s.ApplyUnread(ctx, "unread", []eventstore.UnreadChange{inc("a", 2)}, pos(2)); err != nil {
			t.Fatal(err)
		}
		if cp, _, _ := s.LoadCheckpoint(ctx, "unread"); cp != pos(5) {
			t.Fatalf("checkpoint %v, want %v", cp, pos(5))
		}
		if n := unreadOf(t, s, "a")["a"]; n != 1 {
			t.Fatalf("count %d, want 1", n)
		}
	})

	t.Run("InvalidChange", func(t *testing.T) {
		t.Parallel()
		s := newStore(t, eventstoretest.New(t), nil)
		for _, c := range []eventstore.UnreadChange{{UserID: "", Count: 1}, {UserID: "a", Count: -1}} {
			if err := s.ApplyUnread(ctx, "unread", []eventstore.UnreadChange{c}, pos(1)); !errors.Is(err, domain.ErrInvalid) {
				t.Fatalf("%+v: err %v, want invalid", c, err)
			}
		}
	})

	// Two appliers of the same batches, as two server processes running
	// the same projection: each event counts once.
	t.Run("ConcurrentAppliers", func(t *testing.T) {
		t.Parallel()
		pool := eventstoretest.New(t)
		stores := []*eventstore.Store{newStore(t, pool, nil), newStore(t, secondPool(t, pool), nil)}
		var wg sync.WaitGroup
		errs := make(chan error, 2*50)
		for _, s := range stores {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := int64(1); i <= 50; i++ {
					errs <- s.ApplyUnread(ctx, "unread", []eventstore.UnreadChange{inc("a", i), inc("b", i)}, pos(i))
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if got := unreadOf(t, stores[0], "a", "b"); got["a"] != 50 || got["b"] != 50 {
			t.Fatalf("counts %v, want 50 each", got)
		}
	})
}

// indexAll indexes every delivery under the entities it touches, as the
// entities projection does, and returns the checkpoint.
func indexAll(t *testing.T, s *eventstore.Store, ds []domain.Delivery) domain.Position {
	t.Helper()
	var entries []eventstore.EntityEntry
	for _, d := range ds {
		for _, ref := range domain.EntityRefs(d.Type, d.Room, d.Payload) {
			entries = append(entries, eventstore.EntityEntry{Ref: ref, Delivery: d})
		}
	}
	next := ds[len(ds)-1].Position
	if err := s.ApplyEntityIndex(context.Background(), "entities", entries, next); err != nil {
		t.Fatal(err)
	}
	return next
}

func typesOf(ds []domain.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Type + "@" + string(d.Room)
	}
	return out
}

func TestEntityIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := &stepClock{t: time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)} // one second per append
	s := newStore(t, eventstoretest.New(t), &eventstore.Config{Now: clock.Now})
	var reqs []eventstore.AppendRequest
	for _, r := range []eventstore.AppendRequest{
		req("new-purchase-request", `{"_id":"r1","buyerId":"b1"}`, "sellers"),                                                                              // 09:00:00
		req("payment-created", `{"paymentId":"p1","provider":"x","requestId":"r1","buyerId":"b1","sellerId":"s1","amount":1,"currency":"USDT"}`, "global"), // :01
		req("payment-update", `{"paymentId":"p1","status":"pending"}`, "global"),                                                                           // :02
		req("payment-update", `{"paymentId":"p2","status":"pending"}`, "global"),                                                                           // :03
		req("request-cancelled", `{"requestId":"r1","reason":"x"}`, "user-b1", "user-s1"),                                                                  // :04
		req("new-message", `{"chatId":"c1","senderId":"u1","message":{"_id":"m1"}}`, "chat-c1"),                                                            // :05
		req("room-member-added", `{"userId":"u2"}`, "chat-c1", "request-r1"),                                                                               // :06
	} {
		reqs = append(reqs, r)
	}
	// One append per event, so that each gets its own time.
	var all []domain.Delivery
	for i := range reqs {
		all = rmPublish(t, s, reqs[i])
	}
	next := indexAll(t, s, all)

	tests := []struct {
		kind, id string
		at       time.Time
		want     []string
	}{
		{"request", "r1", time.Time{}, []string{
			"new-purchase-request@sellers", "payment-created@global", "payment-update@global",
			"request-cancelled@user-b1", "request-cancelled@user-s1", "room-member-added@request-r1",
		}},
		// As of 09:00:01, p1's pending update had not happened.
		{"request", "r1", time.Date(2025, 3, 1, 9, 0, 1, 0, time.UTC), []string{"new-purchase-request@sellers", "payment-created@global"}},
		{"request", "r1", time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC), []string{}},
		{"payment", "p1", time.Time{}, []string{"payment-created@global", "payment-update@global"}},
		{"payment", "p2", time.Time{}, []string{"payment-update@global"}},
		{"chat", "c1", time.Time{}, []string{"new-message@chat-c1", "room-member-added@chat-c1"}},
		{"template-checkout", "t1", time.Time{}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.kind+"/"+tt.id+"@"+tt.at.Format(time.TimeOnly), func(t *testing.T) {
			ref := domain.EntityRef{Kind: domain.EntityKind(tt.kind), ID: tt.id}
			var got []domain.Delivery
			for d, err := range s.EntityHistory(ctx, ref, tt.at) {
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, d)
			}
			if g := typesOf(got); !slices.Equal(g, tt.want) {
				t.Fatalf("history %v, want %v", g, tt.want)
			}
			for i := 1; i < len(got); i++ {
				if !got[i-1].Position.Less(got[i].Position) {
					t.Fatalf("history out of log order at %d", i)
				}
			}
		})
	}

	t.Run("Paging", func(t *testing.T) {
		var got []string
		q := eventstore.EntityQuery{Entity: domain.EntityRef{Kind: domain.EntityRequest, ID: "r1"}, Limit: 4}
		for {
			page, err := s.EntityEvents(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, typesOf(page)...)
			if len(page) < q.Limit {
				break
			}
			q.After = page[len(page)-1].Position
		}
		if len(got) != 6 {
			t.Fatalf("paged %v", got)
		}
	})

	t.Run("State", func(t *testing.T) {
		st, err := s.EntityState(ctx, domain.EntityRef{Kind: domain.EntityRequest, ID: "r1"}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		r := st.(*domain.RequestState)
		if !r.Cancelled || r.Events != 5 || len(r.Payments) != 1 || r.Payments[0].Status != "pending" || !slices.Equal(r.Members, []string{"b1", "u2"}) {
			t.Fatalf("state %+v", r)
		}
		if _, err := s.EntityState(ctx, domain.EntityRef{Kind: "nope", ID: "x"}, time.Time{}); !errors.Is(err, domain.ErrInvalid) {
			t.Fatalf("bad kind: %v", err)
		}
	})

	t.Run("ReindexingIsSkipped", func(t *testing.T) {
		// The same batch again (a retry after a crash) changes nothing and
		// does not trip the primary key.
		if got := indexAll(t, s, all); got != next {
			t.Fatal(got)
		}
		n := 0
		for _, err := range s.EntityHistory(ctx, domain.EntityRef{Kind: domain.EntityRequest, ID: "r1"}, time.Time{}) {
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
		if n != 6 {
			t.Fatalf("%d deliveries after reindexing, want 6", n)
		}
	})
}

func TestProjectionStatus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := &stepClock{t: time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)}
	s := newStore(t, eventstoretest.New(t), &eventstore.Config{Now: clock.Now})
	all := rmPublish(t, s,
		req("new-notification", `{}`, "user-a"), req("new-notification", `{}`, "user-a"), req("new-notification", `{}`, "user-b"))
	if err := s.ApplyUnread(ctx, "unread", nil, all[0].Position); err != nil {
		t.Fatal(err)
	}
	got, err := s.ProjectionStatus(ctx, "unread", "entities")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "unread" || got[1].Name != "entities" {
		t.Fatalf("status %+v", got)
	}
	u, e := got[0], got[1]
	if !u.Saved || u.Position != all[0].Position || u.Pending != 2 || !u.OldestPendingAt.Equal(all[1].OccurredAt) || u.SavedAt.IsZero() || u.Lag <= 0 {
		t.Fatalf("unread %+v", u)
	}
	if e.Saved || !e.Position.IsZero() || e.Pending != 3 || !e.OldestPendingAt.Equal(all[0].OccurredAt) {
		t.Fatalf("entities %+v", e)
	}
	if err := s.ApplyUnread(ctx, "unread", nil, all[2].Position); err != nil {
		t.Fatal(err)
	}
	got, err = s.ProjectionStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Pending != 0 || got[0].Lag != 0 || !got[0].OldestPendingAt.IsZero() {
		t.Fatalf("caught-up status %+v", got)
	}
}

func shadowSchemas(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'roomlog_rebuild_%'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRebuild(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	unread := func(all []domain.Delivery) []eventstore.UnreadChange {
		var out []eventstore.UnreadChange
		for _, d := range all {
			out = append(out, eventstore.UnreadChange{UserID: d.Room.ID(), Count: 1, Position: d.Position})
		}
		return out
	}

	// The live model keeps answering, and its writers wait, while the swap
	// catches up; afterwards the writer's batch, already in the swapped-in
	// model, is skipped.
	t.Run("SwapWhileServing", func(t *testing.T) {
		t.Parallel()
		pool := eventstoretest.New(t)
		s := newStore(t, pool, nil)
		all := rmPublish(t, s, req("x-n", `{}`, "user-a"), req("x-n", `{}`, "user-a"), req("x-n", `{}`, "user-b"))
		first, rest := all[:2], all[2:]
		if err := s.ApplyUnread(ctx, "unread", unread(first), first[1].Position); err != nil {
			t.Fatal(err)
		}
		// A hand edit the rebuild will undo.
		if _, err := pool.Exec(ctx, "UPDATE notification_unread SET unread_count = 99 WHERE user_id = 'a'"); err != nil {
			t.Fatal(err)
		}

		rb, err := s.BeginRebuild(ctx, "unread", []string{eventstore.UnreadTable})
		if err != nil {
			t.Fatal(err)
		}
		defer rb.Close(ctx)
		if _, err := s.BeginRebuild(ctx, "unread", []string{eventstore.UnreadTable}); !errors.Is(err, domain.ErrConflict) {
			t.Fatalf("second rebuild: %v, want conflict", err)
		}
		if err := rb.Store().ApplyUnread(ctx, "unread", unread(first), first[1].Position); err != nil {
			t.Fatal(err)
		}
		if got := unreadOf(t, s, "a"); got["a"] != 99 {
			t.Fatalf("the live model changed before the swap: %v", got)
		}

		inSwap, release := make(chan struct{}), make(chan struct{})
		swapped := make(chan error, 1)
		var res eventstore.RebuildResult
		go func() {
			var err error
			res, err = rb.Swap(ctx, func(ctx context.Context) error {
				close(inSwap)
				<-release
				return rb.Store().ApplyUnread(ctx, "unread", unread(rest), rest[0].Position)
			})
			swapped <- err
		}()
		<-inSwap
		// Readers are not blocked.
		if got := unreadOf(t, s, "a", "b"); got["a"] != 99 || got["b"] != 0 {
			t.Fatalf("live model during the swap: %v", got)
		}
		// The live writer waits for the swap.
		wrote := make(chan error, 1)
		go func() { wrote <- s.ApplyUnread(ctx, "unread", unread(rest), rest[0].Position) }()
		rmWaitFor(t, 20*time.Second, func() error {
			var n int
			if err := pool.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'").Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				return errors.New("the live writer is not waiting")
			}
			return nil
		})
		close(release)
		if err := <-swapped; err != nil {
			t.Fatal(err)
		}
		if err := <-wrote; err != nil {
			t.Fatal(err)
		}
		if res.Position != rest[0].Position || res.Rows != 2 || res.Compared {
			t.Fatalf("result %+v", res)
		}
		if got := unreadOf(t, s, "a", "b"); got["a"] != 2 || got["b"] != 1 {
			t.Fatalf("after the swap: %v, want a=2 b=1", got)
		}
		if cp, _, _ := s.LoadCheckpoint(ctx, "unread"); cp != rest[0].Position {
			t.Fatalf("checkpoint %v", cp)
		}
		if err := rb.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if n := shadowSchemas(t, pool); n != 0 {
			t.Fatalf("%d shadow schemas left", n)
		}
		// The lock is free again.
		rb2, err := s.BeginRebuild(ctx, "unread", []string{eventstore.UnreadTable})
		if err != nil {
			t.Fatal(err)
		}
		rb2.Close(ctx)
	})

	t.Run("ComparesAtTheSamePosition", func(t *testing.T) {
		t.Parallel()
		pool := eventstoretest.New(t)
		s := newStore(t, pool, nil)
		all := rmPublish(t, s, req("x-n", `{}`, "user-a"), req("x-n", `{}`, "user-b"))
		next := all[1].Position
		if err := s.ApplyUnread(ctx, "unread", unread(all), next); err != nil {
			t.Fatal(err)
		}
		rebuild := func() eventstore.RebuildResult {
			rb, err := s.BeginRebuild(ctx, "unread", []string{eventstore.UnreadTable})
			if err != nil {
				t.Fatal(err)
			}
			defer rb.Close(ctx)
			if err := rb.Store().ApplyUnread(ctx, "unread", unread(all), next); err != nil {
				t.Fatal(err)
			}
			res, err := rb.Swap(ctx, func(context.Context) error { return nil })
			if err != nil {
				t.Fatal(err)
			}
			return res
		}
		if res := rebuild(); !res.Compared || res.Changed || res.Rows != 2 {
			t.Fatalf("identical rebuild: %+v", res)
		}
		if _, err := pool.Exec(ctx, "UPDATE notification_unread SET unread_count = 5 WHERE user_id = 'b'"); err != nil {
			t.Fatal(err)
		}
		if res := rebuild(); !res.Compared || !res.Changed {
			t.Fatalf("rebuild over a drifted model: %+v", res)
		}
		if got := unreadOf(t, s, "b"); got["b"] != 1 {
			t.Fatalf("drift survived the rebuild: %v", got)
		}
	})

	// The mechanism is generic: membership's own ApplyMembership writes the
	// shadow tables through the rebuild's Store.
	t.Run("Membership", func(t *testing.T) {
		t.Parallel()
		pool := eventstoretest.New(t)
		s := newStore(t, pool, nil)
		all := rmPublish(t, s, req("room-member-added", `{"userId":"u1"}`, "chat-c1"))
		change := []eventstore.MembershipChange{{MembershipChange: domain.MembershipChange{Room: "chat-c1", UserID: "u1", Added: true}, Position: all[0].Position}}
		if err := s.ApplyMembership(ctx, "membership", nil, all[0].Position); err != nil { // the live model missed it
			t.Fatal(err)
		}
		// A leftover schema of a rebuild that died is dropped.
		if _, err := pool.Exec(ctx, "CREATE SCHEMA roomlog_rebuild_membership; CREATE TABLE roomlog_rebuild_membership.junk (x int)"); err != nil {
			t.Fatal(err)
		}
		rb, err := s.BeginRebuild(ctx, "membership", []string{eventstore.MembershipTable})
		if err != nil {
			t.Fatal(err)
		}
		defer rb.Close(ctx)
		if err := rb.Store().ApplyMembership(ctx, "membership", change, all[0].Position); err != nil {
			t.Fatal(err)
		}
		if ok, _ := s.IsMember(ctx, "chat-c1", "u1"); ok {
			t.Fatal("the shadow write reached the live model")
		}
		res, err := rb.Swap(ctx, func(context.Context) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		if !res.Compared || !res.Changed || res.Rows != 1 {
			t.Fatalf("result %+v", res)
		}
		if ok, _ := s.IsMember(ctx, "chat-c1", "u1"); !ok {
			t.Fatal("the rebuilt membership was not swapped in")
		}
	})

	t.Run("RefusesAShadowBehindTheLiveModel", func(t *testing.T) {
		t.Parallel()
		s := newStore(t, eventstoretest.New(t), nil)
		if err := s.ApplyUnread(ctx, "unread", nil, pos(9)); err != nil {
			t.Fatal(err)
		}
		rb, err := s.BeginRebuild(ctx, "unread", []string{eventstore.UnreadTable})
		if err != nil {
			t.Fatal(err)
		}
		defer rb.Close(ctx)
		if _, err := rb.Swap(ctx, func(context.Context) error { return nil }); err == nil {
			t.Fatal("swapped in an empty model behind the live checkpoint")
		}
		if cp, _, _ := s.LoadCheckpoint(ctx, "unread"); cp != pos(9) {
			t.Fatalf("checkpoint %v after a refused swap", cp)
		}
	})

	t.Run("InvalidArguments", func(t *testing.T) {
		t.Parallel()
		s := newStore(t, eventstoretest.New(t), nil)
		for _, c := range []struct {
			name   string
			tables []string
		}{
			{"Bad-Name", []string{eventstore.UnreadTable}},
			{"unread", nil},
			{"unread", []string{"events"}},
			{"unread", []string{"no_such_table"}},
			{"unread", []string{"x; DROP TABLE events"}},
		} {
			if rb, err := s.BeginRebuild(ctx, c.name, c.tables); !errors.Is(err, domain.ErrInvalid) {
				if rb != nil {
					rb.Close(ctx)
				}
				t.Errorf("%s %v: err %v, want invalid", c.name, c.tables, err)
			}
		}
	})
}

// A read model's transaction must not wait for its own fsync (it is
// rebuilt from the log after a crash).
func TestProjectionCommitsAsync(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, eventstoretest.New(t), nil)
	got, err := s.ProjectionSetting(ctx, "unread", "synchronous_commit")
	if err != nil {
		t.Fatal(err)
	}
	if got != "off" {
		t.Fatalf("synchronous_commit in a projection transaction = %q, want off", got)
	}
}
