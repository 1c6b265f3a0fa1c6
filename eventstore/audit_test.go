package eventstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/eventstoretest"
)

// stepClock returns t0, t0+1s, t0+2s, ... on successive calls.
type stepClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.t
	c.t = c.t.Add(time.Second)
	return t
}

// waitVisible polls until an unfiltered audit after `after` sees want rows.
// Audits read only below the oldest running transaction id, which is
// cluster-wide: transactions of parallel tests in other databases delay
// visibility for a moment.
func waitVisible(t *testing.T, s *eventstore.Store, after *domain.Position, want int) []domain.Delivery {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := auditAll(t, s, eventstore.AuditQuery{After: after})
		if len(got) >= want {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit saw %d rows, want %d", len(got), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// auditAll pages through q until the end and returns every delivery.
func auditAll(t *testing.T, s *eventstore.Store, q eventstore.AuditQuery) []domain.Delivery {
	t.Helper()
	var out []domain.Delivery
	for range 1000 {
		page, err := s.Audit(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page.Events...)
		if !page.More {
			return out
		}
		last := page.Events[len(page.Events)-1].Position
		q.After = &last
	}
	t.Fatal("audit paging did not end")
	return nil
}

func seqsOf(ds []domain.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = fmt.Sprintf("%s/%d", d.Room, d.Seq)
	}
	return out
}

func TestAudit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

	// One store with a fixed history shared by the read-only subtests: each
	// append commits alone, one second after the previous one.
	pool := eventstoretest.New(t)
	s := newStore(t, pool, &eventstore.Config{Now: (&stepClock{t: t0}).Now})
	type ev struct {
		typ, producer, payload string
		rooms                  []string
	}
	history := []ev{
		{"new-purchase-request", "market", `{"_id":"r1","buyerId":"b1"}`, []string{"sellers"}},                                // t0
		{"new-offer", "market", `{"requestId":"r1","sellerId":"s1","offer":{"p":1}}`, []string{"buyer-b1"}},                   // t0+1s
		{"room-member-added", "market", `{"userId":"s1"}`, []string{"request-r1"}},                                            // t0+2s
		{"delivery-update", "shipping", `{"requestId":"r1","status":"shipped"}`, []string{"request-r1"}},                      // t0+3s
		{"delivery-update", "shipping", `{"requestId":"r2","status":"shipped"}`, []string{"request-r2"}},                      // t0+4s
		{"request-cancelled", "market", `{"requestId":"r1","reason":"late"}`, []string{"user-b1", "user-s1"}},                 // t0+5s
		{"new-message", "chat", `{"chatId":"c1","senderId":"u1","message":{"_id":"m","content":"<&>"}}`, []string{"chat-c1"}}, // t0+6s
	}
	var ids []string
	for _, e := range history {
		r := req(e.typ, e.payload, e.rooms...)
		r.Producer = e.producer
		res, err := s.Append(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.EventID)
	}
	waitVisible(t, s, nil, 8)
	all := []string{"sellers/1", "buyer-b1/1", "request-r1/1", "request-r1/2", "request-r2/1", "user-b1/1", "user-s1/1", "chat-c1/1"}

	t.Run("Filters", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name   string
			filter eventstore.AuditFilter
			want   []string
		}{
			{"None", eventstore.AuditFilter{}, all},
			{"Room", eventstore.AuditFilter{Room: "request-r1"}, []string{"request-r1/1", "request-r1/2"}},
			{"OneType", eventstore.AuditFilter{Types: []string{"delivery-update"}}, []string{"request-r1/2", "request-r2/1"}},
			{"Types", eventstore.AuditFilter{Types: []string{"new-offer", "new-message"}}, []string{"buyer-b1/1", "chat-c1/1"}},
			{"Producer", eventstore.AuditFilter{Producer: "shipping"}, []string{"request-r1/2", "request-r2/1"}},
			{"EventID", eventstore.AuditFilter{EventID: ids[5]}, []string{"user-b1/1", "user-s1/1"}},
			{"From", eventstore.AuditFilter{From: t0.Add(5 * time.Second)}, []string{"user-b1/1", "user-s1/1", "chat-c1/1"}},
			{"To", eventstore.AuditFilter{To: t0.Add(time.Second)}, []string{"sellers/1"}},
			{"Window", eventstore.AuditFilter{From: t0.Add(2 * time.Second), To: t0.Add(4 * time.Second)}, []string{"request-r1/1", "request-r1/2"}},
			{"Contains", eventstore.AuditFilter{Contains: json.RawMessage(`{"requestId":"r1"}`)}, []string{"buyer-b1/1", "request-r1/2", "user-b1/1", "user-s1/1"}},
			{"ContainsNested", eventstore.AuditFilter{Contains: json.RawMessage(`{"message":{"content":"<&>"}}`)}, []string{"chat-c1/1"}},
			{"Combined", eventstore.AuditFilter{Contains: json.RawMessage(`{"requestId":"r1"}`), Producer: "market", Room: "user-s1"}, []string{"user-s1/1"}},
			{"NoMatch", eventstore.AuditFilter{Producer: "nobody"}, []string{}},
			{"InjectionIsData", eventstore.AuditFilter{Producer: "' OR '1'='1", Types: []string{"x'); DROP TABLE events; --"}}, []string{}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				got := seqsOf(auditAll(t, s, eventstore.AuditQuery{Filter: tt.filter, Limit: 2}))
				if !slices.Equal(got, tt.want) {
					t.Errorf("got %v, want %v", got, tt.want)
				}
			})
		}
	})

	t.Run("PagingBothOrders", func(t *testing.T) {
		t.Parallel()
		for _, limit := range []int{1, 3, 8, 1000} {
			asc := auditAll(t, s, eventstore.AuditQuery{Limit: limit})
			if got := seqsOf(asc); !slices.Equal(got, all) {
				t.Fatalf("limit %d asc: %v", limit, got)
			}
			desc := seqsOf(auditAll(t, s, eventstore.AuditQuery{Limit: limit, Desc: true}))
			want := slices.Clone(all)
			slices.Reverse(want)
			if !slices.Equal(desc, want) {
				t.Fatalf("limit %d desc: %v", limit, desc)
			}
		}
		// More is exact: a page that ends with the last row says so.
		page, err := s.Audit(ctx, eventstore.AuditQuery{Limit: len(all)})
		if err != nil {
			t.Fatal(err)
		}
		if page.More || len(page.Events) != len(all) {
			t.Fatalf("full page: %d events, more %v", len(page.Events), page.More)
		}
	})

	t.Run("PayloadBytesKept", func(t *testing.T) {
		t.Parallel()
		page, err := s.Audit(ctx, eventstore.AuditQuery{Filter: eventstore.AuditFilter{Room: "chat-c1"}})
		if err != nil {
			t.Fatal(err)
		}
		if got := string(page.Events[0].Payload); got != `{"chatId":"c1","senderId":"u1","message":{"_id":"m","content":"<&>"}}` {
			t.Fatalf("payload = %s", got)
		}
		if page.Events[0].Producer != "chat" || !page.Events[0].OccurredAt.Equal(t0.Add(6*time.Second)) {
			t.Fatalf("event = %+v", page.Events[0])
		}
	})

	t.Run("Invalid", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name string
			q    eventstore.AuditQuery
			want string
		}{
			{"Room", eventstore.AuditQuery{Filter: eventstore.AuditFilter{Room: "nope"}}, "room"},
			{"EventID", eventstore.AuditQuery{Filter: eventstore.AuditFilter{EventID: "1; DROP"}}, "eventId"},
			{"Window", eventstore.AuditQuery{Filter: eventstore.AuditFilter{From: t0, To: t0}}, "to"},
			{"ContainsArray", eventstore.AuditQuery{Filter: eventstore.AuditFilter{Contains: json.RawMessage(`[1]`)}}, "contains"},
			{"ContainsBroken", eventstore.AuditQuery{Filter: eventstore.AuditFilter{Contains: json.RawMessage(`{"a":`)}}, "contains"},
			{"Limit", eventstore.AuditQuery{Limit: 1001}, "limit"},
			{"Types", eventstore.AuditQuery{Filter: eventstore.AuditFilter{Types: make([]string, 33)}}, "type"},
		}
		for _, tt := range tests {
			_, err := s.Audit(ctx, tt.q)
			var de *domain.Error
			if !errors.As(err, &de) || de.Code != domain.CodeInvalid || len(de.Fields) != 1 || de.Fields[0].Field != tt.want {
				t.Errorf("%s: err = %v (%+v), want invalid on %s", tt.name, err, de, tt.want)
			}
		}
	})

	t.Run("MemberRooms", func(t *testing.T) {
		t.Parallel()
		pool := eventstoretest.New(t)
		s := newStore(t, pool, nil)
		err := s.ApplyMembership(ctx, "m", []eventstore.MembershipChange{
			{MembershipChange: domain.MembershipChange{Room: "chat-a", UserID: "u1", Added: true}, Position: domain.Position{Txid: 1, ID: 1}},
			{MembershipChange: domain.MembershipChange{Room: "chat-b", UserID: "u2", Added: true}, Position: domain.Position{Txid: 1, ID: 1}},
			{MembershipChange: domain.MembershipChange{Room: "request-r", UserID: "u1", Added: true}, Position: domain.Position{Txid: 1, ID: 1}},
		}, domain.Position{Txid: 1, ID: 1})
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.MemberRooms(ctx, "u1", []domain.Room{"request-r", "chat-b", "chat-a", "chat-a"})
		if err != nil {
			t.Fatal(err)
		}
		if want := []domain.Room{"request-r", "chat-a"}; !slices.Equal(got, want) {
			t.Fatalf("MemberRooms = %v, want %v", got, want)
		}
		if got, err := s.MemberRooms(ctx, "u1", nil); err != nil || got != nil {
			t.Fatalf("MemberRooms(nil) = %v, %v", got, err)
		}
	})
}

// TestAuditLateCommit holds one append's transaction open while a later
// append commits: an audit page must neither show the later row before the
// held one commits nor skip the held row afterwards.
func TestAuditLateCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := eventstoretest.New(t)
	s := newStore(t, pool, nil)
	if _, err := s.Append(ctx, req("x-first", `{}`, "user-a")); err != nil {
		t.Fatal(err)
	}
	cursor := waitVisible(t, s, nil, 1)[0].Position

	txA := holdWriter(t, s, pool, "user-b")
	if _, err := s.Append(ctx, req("x-later", `{}`, "user-c")); err != nil {
		t.Fatal(err)
	}
	page, err := s.Audit(ctx, eventstore.AuditQuery{After: &cursor})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 0 {
		t.Fatalf("rows past a running transaction were visible: %v", seqsOf(page.Events))
	}
	// An export horizon taken now excludes both, even after they commit.
	horizon, err := s.AuditHorizon(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := txA.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, d := range waitVisible(t, s, &cursor, 2) {
		types = append(types, d.Type)
	}
	if !slices.Equal(types, []string{"x-held", "x-later"}) {
		t.Fatalf("after commit: %v, want the held row then the later one", types)
	}
	page, err = s.Audit(ctx, eventstore.AuditQuery{After: &cursor, Horizon: horizon})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 0 {
		t.Fatalf("rows at or past the horizon: %v", seqsOf(page.Events))
	}
}

// TestAuditStatementTimeout blocks the audit query behind a table lock and
// checks that the statement timeout ends it as unavailable.
func TestAuditStatementTimeout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := eventstoretest.New(t)
	s := newStore(t, pool, nil)
	lock, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback(ctx) //nolint:errcheck
	if _, err := lock.Exec(ctx, "LOCK TABLE events IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = s.Audit(ctx, eventstore.AuditQuery{Timeout: 200 * time.Millisecond})
	if domain.ErrorCode(err) != domain.CodeUnavailable {
		t.Fatalf("err = %v, want unavailable", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("the timeout took %v", took)
	}
	var de *domain.Error
	if !errors.As(err, &de) || de.Message != "query timed out" {
		t.Fatalf("err = %v, want query timed out", err)
	}
}

// TestAuditHorizonIgnoresNonWriters: a transaction that cannot write events
// (here one holding a transaction id in another database) does not cut an
// export short: the horizon taken after an append includes it.
func TestAuditHorizonIgnoresNonWriters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := eventstoretest.New(t)
	other := eventstoretest.New(t)
	s := newStore(t, pool, nil)
	holdXid(t, other)
	res, err := s.Append(ctx, req("x-after", `{}`, "user-a"))
	if err != nil {
		t.Fatal(err)
	}
	horizon, err := s.AuditHorizon(ctx)
	if err != nil {
		t.Fatal(err)
	}
	page, err := s.Audit(ctx, eventstore.AuditQuery{Horizon: horizon})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 1 || page.Events[0].ID != res.EventID {
		t.Fatalf("export up to the horizon = %v, want the appended row (a non-writer older than it must not hold the horizon back)", seqsOf(page.Events))
	}
}
