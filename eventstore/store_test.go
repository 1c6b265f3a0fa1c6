package eventstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/eventstoretest"
)

// testLogger logs warnings and errors on t.
func testLogger(t testing.TB) *slog.Logger { return eventstoretest.Logger(t, slog.LevelWarn) }

// newStore starts a store on pool and stops it at cleanup.
func newStore(t testing.TB, pool *pgxpool.Pool, cfg *eventstore.Config) *eventstore.Store {
	t.Helper()
	s := eventstore.New(pool, testLogger(t), cfg)
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// secondPool opens an independent pool on the same database, as a second
// server process would.
func secondPool(t testing.TB, pool *pgxpool.Pool) *pgxpool.Pool {
	t.Helper()
	p, err := pgxpool.NewWithConfig(context.Background(), pool.Config().Copy())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func req(typ string, payload string, rooms ...string) eventstore.AppendRequest {
	rs := make([]domain.Room, len(rooms))
	for i, r := range rooms {
		rs[i] = domain.Room(r)
	}
	return eventstore.AppendRequest{Type: typ, Rooms: rs, Payload: json.RawMessage(payload), Producer: "test"}
}

// assertGapFree checks that every room's seqs are exactly 1..head with no
// duplicates and that room_heads agrees.
func assertGapFree(t *testing.T, pool *pgxpool.Pool) (rooms int, rows int64) {
	t.Helper()
	ctx := context.Background()
	var bad int
	err := pool.QueryRow(ctx, `
		SELECT count(*) FROM (
			SELECT e.room, count(*) AS n, count(DISTINCT e.seq) AS d, min(e.seq) AS lo, max(e.seq) AS hi, h.seq AS head
			FROM events e JOIN room_heads h USING (room)
			GROUP BY e.room, h.seq
		) s WHERE n <> d OR lo <> 1 OR hi <> n OR head <> hi`).Scan(&bad)
	if err != nil {
		t.Fatal(err)
	}
	if bad != 0 {
		t.Fatalf("%d rooms have gaps, duplicates or a wrong head", bad)
	}
	if err := pool.QueryRow(ctx, "SELECT count(DISTINCT room), count(*) FROM events").Scan(&rooms, &rows); err != nil {
		t.Fatal(err)
	}
	var orphanHeads int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM room_heads h WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.room = h.room)").Scan(&orphanHeads); err != nil {
		t.Fatal(err)
	}
	if orphanHeads != 0 {
		t.Fatalf("%d heads without events", orphanHeads)
	}
	assertChains(t, pool)
	return rooms, rows
}

// assertChains verifies every room's hash chain.
func assertChains(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	rows, err := pool.Query(ctx, "SELECT room FROM room_heads ORDER BY room")
	if err != nil {
		t.Fatal(err)
	}
	rooms, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	v := eventstore.New(pool, testLogger(t), nil)
	for _, r := range rooms {
		res, err := v.Verify(ctx, domain.Room(r))
		if err != nil {
			t.Fatal(err)
		}
		if !res.OK {
			t.Fatalf("room %s: chain broken at seq %d: %s", r, res.FirstBadSeq, res.Reason)
		}
	}
}

func TestAppend(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("SingleAndMultiRoom", func(t *testing.T) {
		t.Parallel()
		pool := eventstoretest.New(t)
		s := newStore(t, pool, nil)
		r1, err := s.Append(ctx, req("new-message", `{"chatId":"c1", "n": 1}`, "chat-c1"))
		if err != nil {
			t.Fatal(err)
		}
		if got := r1.Deliveries; len(got) != 1 || got[0] != (eventstore.RoomSeq{Room: "chat-c1", Seq: 1}) {
			t.Fatalf("deliveries = %v", got)
		}
		r2, err := s.Append(ctx, req("request-cancelled", `{"requestId":"r1","reason":"x"}`, "user-b", "user-s", "chat-c1"))
		if err != nil {
			t.Fatal(err)
		}
		want := []eventstore.RoomSeq{{Room: "user-b", Seq: 1}, {Room: "user-s", Seq: 1}, {Room: "chat-c1", Seq: 2}}
		if fmt.Sprint(r2.Deliveries) != fmt.Sprint(want) {
			t.Fatalf("deliveries = %v, want %v", r2.Deliveries, want)
		}
		page, err := s.ReadRoom(ctx, "chat-c1", 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		if page.Head != 2 || len(page.Events) != 2 || page.More {
			t.Fatalf("page = %+v", page)
		}
		if string(page.Events[0].Payload) != `{"chatId":"c1","n":1}` {
			t.Fatalf("payload stored as %s, want compacted original", page.Events[0].Payload)
		}
		if page.Events[1].ID != r2.EventID || page.Events[1].Type != "request-cancelled" || page.Events[1].Producer != "test" {
			t.Fatalf("event = %+v", page.Events[1])
		}
		if !page.Events[1].OccurredAt.Equal(r2.At) {
			t.Fatalf("at %v != %v", page.Events[1].OccurredAt, r2.At)
		}
		assertGapFree(t, pool)
	})

	t.Run("BatchIsAtomic", func(t *testing.T) {
		t.Parallel()
		pool := eventstoretest.New(t)
		s := newStore(t, pool, nil)
		good := req("x-a", `{}`, "user-1")
		good.IdempotencyKey = "k1"
		if _, err := s.Append(ctx, good); err != nil {
			t.Fatal(err)
		}
		conflicting := req("x-a", `{"other":true}`, "user-1")
		conflicting.IdempotencyKey = "k1"
		_, err := s.AppendBatch(ctx, []eventstore.AppendRequest{req("x-b", `{}`, "user-1"), conflicting})
		if !errors.Is(err, domain.ErrConflict) {
			t.Fatalf("err = %v, want conflict", err)
		}
		if head, _ := s.Head(ctx, "user-1"); head != 1 {
			t.Fatalf("head = %d after a failed batch, want 1 (nothing of the batch written)", head)
		}
	})

	t.Run("InvalidRequests", func(t *testing.T) {
		t.Parallel()
		pool := eventstoretest.New(t)
		s := newStore(t, pool, nil)
		tests := []struct {
			name string
			req  eventstore.AppendRequest
		}{
			{"NoRooms", req("x-a", `{}`)},
			{"DuplicateRoom", req("x-a", `{}`, "user-1", "user-1")},
			{"BadJSON", req("x-a", `{`, "user-1")},
			{"NoType", req("", `{}`, "user-1")},
			{"NULEscape", req("x-a", `{"a":"x\u0000"}`, "user-1")},
			{"NoProducer", eventstore.AppendRequest{Type: "x-a", Rooms: []domain.Room{"user-1"}, Payload: json.RawMessage(`{}`)}},
		}
		for _, tt := range tests {
			_, err := s.Append(ctx, tt.req)
			if !errors.Is(err, domain.ErrInvalid) {
				t.Errorf("%s: err = %v, want invalid", tt.name, err)
			}
		}
		// An escaped backslash before "u0000" is ordinary text.
		if _, err := s.Append(ctx, req("x-a", `{"a":"\\u0000"}`, "user-1")); err != nil {
			t.Errorf("escaped backslash: %v", err)
		}
	})

	t.Run("StoppedStoreRefuses", func(t *testing.T) {
		t.Parallel()
		pool := eventstoretest.New(t)
		s := eventstore.New(pool, testLogger(t), nil)
		if err := s.Start(ctx); err != nil {
			t.Fatal(err)
		}
		s.Stop()
		s.Stop() // idempotent
		if _, err := s.Append(ctx, req("x-a", `{}`, "user-1")); !errors.Is(err, domain.ErrUnavailable) {
			t.Fatalf("err = %v, want unavailable", err)
		}
	})
}

// TestConcurrentAppends hammers one hot room and many cold rooms from many
// goroutines spread over two independent pools and stores (two processes'
// worth of writers) and checks every room is gap-free and unique.
func TestConcurrentAppends(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := eventstoretest.New(t)
	// Two writers in one store (their commits to one room in flight at
	// once), one in the other.
	stores := []*eventstore.Store{newStore(t, pool, &eventstore.Config{Writers: 2}), newStore(t, secondPool(t, pool), &eventstore.Config{Writers: 1})}
	const workers = 32
	const perWorker = 60
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := map[domain.Room][]int64{}
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			s := stores[w%2]
			for i := range perWorker {
				var r eventstore.AppendRequest
				switch rng.IntN(4) {
				case 0, 1:
					r = req("x-hot", fmt.Sprintf(`{"w":%d,"i":%d}`, w, i), "chat-hot")
				case 2:
					r = req("x-cold", `{}`, fmt.Sprintf("user-%d", rng.IntN(40)))
				default: // multi-room, including the hot room
					r = req("x-multi", `{}`, fmt.Sprintf("user-%d", rng.IntN(40)), "chat-hot", fmt.Sprintf("request-%d", rng.IntN(5)))
				}
				res, err := s.Append(ctx, r)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				for _, d := range res.Deliveries {
					acked[d.Room] = append(acked[d.Room], d.Seq)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	rooms, rows := assertGapFree(t, pool)
	var ackedRows int64
	for room, seqs := range acked {
		seen := map[int64]bool{}
		for _, s := range seqs {
			if seen[s] {
				t.Fatalf("room %s: seq %d acknowledged twice", room, s)
			}
			seen[s] = true
		}
		ackedRows += int64(len(seqs))
	}
	if ackedRows != rows {
		t.Fatalf("acknowledged %d rows, log holds %d", ackedRows, rows)
	}
	t.Logf("%d rooms, %d rows, all gap-free and unique", rooms, rows)
}

func TestIdempotency(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	keyed := func(key, payload string, rooms ...string) eventstore.AppendRequest {
		r := req("x-pay", payload, rooms...)
		r.IdempotencyKey = key
		return r
	}

	t.Run("Sequential", func(t *testing.T) {
		t.Parallel()
		pool := eventstoretest.New(t)
		s := newStore(t, pool, nil)
		first, err := s.Append(ctx, keyed("pay-1", `{"a":1,"b":2}`, "user-1", "user-2"))
		if err != nil {
			t.Fatal(err)
		}
		for range 10 {
			// Same content, other key order and spacing: a replay.
			again, err := s.Append(ctx, keyed("pay-1", `{ "b":2, "a":1 }`, "user-1", "user-2"))
			if err != nil {
				t.Fatal(err)
			}
			if !again.Replayed || again.EventID != first.EventID || fmt.Sprint(again.Deliveries) != fmt.Sprint(first.Deliveries) || !again.At.Equal(first.At) {
				t.Fatalf("replay = %+v, first = %+v", again, first)
			}
		}
		var n int
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM events").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 2 {
			t.Fatalf("%d rows, want 2", n)
		}
		// Another producer may use the same key.
		other := keyed("pay-1", `{"a":1,"b":2}`, "user-1", "user-2")
		other.Producer = "other"
		res, err := s.Append(ctx, other)
		if err != nil || res.Replayed {
			t.Fatalf("other producer: %+v, %v", res, err)
		}
	})

	t.Run("Conflicting", func(t *testing.T) {
		t.Parallel()
		pool := eventstoretest.New(t)
		s := newStore(t, pool, nil)
		if _, err := s.Append(ctx, keyed("k", `{"a":1}`, "user-1")); err != nil {
			t.Fatal(err)
		}
		for _, r := range []eventstore.AppendRequest{
			keyed("k", `{"a":2}`, "user-1"),           // other payload
			keyed("k", `{"a":1}`, "user-2"),           // other room
			keyed("k", `{"a":1}`, "user-1", "user-2"), // more rooms
		} {
			if _, err := s.Append(ctx, r); !errors.Is(err, domain.ErrConflict) {
				t.Fatalf("err = %v, want conflict", err)
			}
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		t.Parallel()
		pool := eventstoretest.New(t)
		stores := []*eventstore.Store{newStore(t, pool, nil), newStore(t, secondPool(t, pool), nil)}
		const n = 20
		results := make([]eventstore.AppendResult, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i], errs[i] = stores[i%2].Append(ctx, keyed("same", `{"x":1}`, "user-1", "chat-9"))
			}()
		}
		wg.Wait()
		replays := 0
		for i := range n {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			if results[i].EventID != results[0].EventID || fmt.Sprint(results[i].Deliveries) != fmt.Sprint(results[0].Deliveries) {
				t.Fatalf("result %d = %+v differs from %+v", i, results[i], results[0])
			}
			if results[i].Replayed {
				replays++
			}
		}
		if replays != n-1 {
			t.Fatalf("%d replays, want %d", replays, n-1)
		}
		var rows int
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM events").Scan(&rows); err != nil {
			t.Fatal(err)
		}
		if rows != 2 {
			t.Fatalf("%d rows, want 2", rows)
		}
	})

	t.Run("WithinOneBatch", func(t *testing.T) {
		t.Parallel()
		pool := eventstoretest.New(t)
		s := newStore(t, pool, nil)
		res, err := s.AppendBatch(ctx, []eventstore.AppendRequest{keyed("d", `{}`, "user-1"), keyed("d", `{}`, "user-1")})
		if err != nil {
			t.Fatal(err)
		}
		if res[0].EventID != res[1].EventID || !res[1].Replayed || res[0].Replayed {
			t.Fatalf("results = %+v", res)
		}
		if _, err := s.AppendBatch(ctx, []eventstore.AppendRequest{keyed("e", `{}`, "user-1"), keyed("e", `{"z":1}`, "user-1")}); !errors.Is(err, domain.ErrConflict) {
			t.Fatalf("err = %v, want conflict", err)
		}
	})
}

func TestReadRooms(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := eventstoretest.New(t)
	s := newStore(t, pool, nil)
	for i := range 5 {
		if _, err := s.Append(ctx, req("x-a", fmt.Sprintf(`{"i":%d}`, i), "user-1", "chat-1")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Append(ctx, req("x-a", `{}`, "user-2")); err != nil {
		t.Fatal(err)
	}
	pages, err := s.ReadRooms(ctx, map[domain.Room]int64{"user-1": 2, "chat-1": 0, "user-2": 1, "user-404": 0}, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[domain.Room]string{}
	for _, p := range pages {
		var seqs []int64
		for _, e := range p.Events {
			seqs = append(seqs, e.Seq)
		}
		got[p.Room] = fmt.Sprintf("head=%d more=%v seqs=%v", p.Head, p.More, seqs)
	}
	want := map[domain.Room]string{
		"chat-1":   "head=5 more=true seqs=[1 2]",
		"user-1":   "head=5 more=true seqs=[3 4]",
		"user-2":   "head=1 more=false seqs=[]",
		"user-404": "head=0 more=false seqs=[]",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
}

// TestReadRoomsDeliveries checks every field ReadRooms decodes against
// ReadTail's independent scan of the same rows, across rooms, pages,
// payloads larger than ReadRooms' largest payload chunk and event ids
// shared by several rooms.
func TestReadRoomsDeliveries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := eventstoretest.New(t)
	s := newStore(t, pool, nil)
	big := `{"big":"` + strings.Repeat("y", 100<<10) + `"}`
	var reqs []eventstore.AppendRequest
	for i := range 30 {
		switch {
		case i%10 == 3:
			reqs = append(reqs, req("x-big", big, "user-1"))
		case i%2 == 0:
			reqs = append(reqs, req("x-a", fmt.Sprintf(`{"i":%d,"s":"é \"q\" \u2028"}`, i), "user-1", "chat-1"))
		default:
			reqs = append(reqs, req("x-b", fmt.Sprintf(`[%d, {"k": null}]`, i), "chat-1"))
		}
	}
	if _, err := s.AppendBatch(ctx, reqs); err != nil {
		t.Fatal(err)
	}
	all, err := s.ReadTail(ctx, domain.Position{}, eventstore.MaxReadLimit)
	if err != nil {
		t.Fatal(err)
	}
	want := map[domain.Room][]domain.Delivery{}
	for _, d := range all {
		want[d.Room] = append(want[d.Room], d)
	}
	for _, limit := range []int{1, 7, 1000} {
		got := map[domain.Room][]domain.Delivery{}
		cursors := map[domain.Room]int64{"user-1": 0, "chat-1": 0, "user-404": 0}
		for len(cursors) > 0 {
			pages, err := s.ReadRooms(ctx, cursors, limit, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i, p := range pages {
				if i > 0 && pages[i-1].Room >= p.Room {
					t.Fatalf("pages out of order: %s before %s", pages[i-1].Room, p.Room)
				}
				if len(p.Events) > limit {
					t.Fatalf("%s: %d events, limit %d", p.Room, len(p.Events), limit)
				}
				got[p.Room] = append(got[p.Room], p.Events...)
				if !p.More {
					delete(cursors, p.Room)
					continue
				}
				cursors[p.Room] = p.Events[len(p.Events)-1].Seq
			}
		}
		for room, ds := range want {
			if len(got[room]) != len(ds) {
				t.Fatalf("limit %d: %s: read %d events, want %d", limit, room, len(got[room]), len(ds))
			}
			for i, d := range ds {
				g := got[room][i]
				if g.ID != d.ID || g.Type != d.Type || string(g.Payload) != string(d.Payload) || g.Producer != d.Producer ||
					!g.OccurredAt.Equal(d.OccurredAt) || g.OccurredAt.Location() != time.UTC || g.Room != d.Room || g.Seq != d.Seq || g.Position != d.Position {
					t.Fatalf("limit %d: %s #%d:\n got %+v\nwant %+v", limit, room, i, g, d)
				}
				if cap(g.Payload) != len(g.Payload) {
					t.Fatalf("limit %d: %s #%d: payload can grow into its neighbour (cap %d > len %d)", limit, room, i, cap(g.Payload), len(g.Payload))
				}
			}
		}
		if len(got["user-404"]) != 0 {
			t.Fatalf("user-404: %v", got["user-404"])
		}
	}
}

// TestReadRoomsMaxBytes pages through a room with payloads of varied
// sizes under byte bounds: each page stops before the first event whose
// preceding payloads reach the bound, holds at least one event, and the
// pages together are the room, in order.
func TestReadRoomsMaxBytes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, eventstoretest.New(t), nil)
	var reqs []eventstore.AppendRequest
	for i := range 40 {
		p := fmt.Sprintf(`{"i":%d,"pad":"%s"}`, i, strings.Repeat("p", (i*37)%120))
		reqs = append(reqs, req("x-a", p, "chat-1"))
	}
	if _, err := s.AppendBatch(ctx, reqs); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ limit, maxBytes int }{{7, 1}, {7, 50}, {7, 300}, {100, 300}, {100, 1000}, {100, 1 << 20}, {3, 0}} {
		t.Run(fmt.Sprintf("Limit%dMaxBytes%d", tc.limit, tc.maxBytes), func(t *testing.T) {
			t.Parallel()
			var seqs []int64
			after := int64(0)
			for {
				opts := &eventstore.ReadOptions{MaxBytes: tc.maxBytes}
				pages, err := s.ReadRooms(ctx, map[domain.Room]int64{"chat-1": after}, tc.limit, opts)
				if err != nil {
					t.Fatal(err)
				}
				// The fallback for rows out of order answers the same.
				sorted, err := s.ReadRoomsSorted(ctx, map[domain.Room]int64{"chat-1": after}, tc.limit, opts)
				if err != nil {
					t.Fatal(err)
				}
				if fmt.Sprint(sorted) != fmt.Sprint(pages) {
					t.Fatalf("after %d: sorted read differs:\n%v\n%v", after, sorted, pages)
				}
				p := pages[0]
				if len(p.Events) == 0 || len(p.Events) > tc.limit {
					t.Fatalf("after %d: %d events", after, len(p.Events))
				}
				before := 0
				for i, e := range p.Events {
					if i > 0 && tc.maxBytes > 0 && before >= tc.maxBytes {
						t.Fatalf("after %d: event %d starts at %d bytes, bound %d", after, e.Seq, before, tc.maxBytes)
					}
					before += len(e.Payload)
				}
				last := p.Events[len(p.Events)-1].Seq
				if p.More != (last < 40) || p.Head != 40 {
					t.Fatalf("after %d: more %v, head %d, last %d", after, p.More, p.Head, last)
				}
				if p.More && len(p.Events) < tc.limit && (tc.maxBytes == 0 || before < tc.maxBytes) {
					t.Fatalf("after %d: stopped at %d events, %d bytes, with room for more", after, len(p.Events), before)
				}
				for _, e := range p.Events {
					seqs = append(seqs, e.Seq)
				}
				if !p.More {
					break
				}
				after = last
			}
			for i, seq := range seqs {
				if seq != int64(i)+1 {
					t.Fatalf("read seqs %v", seqs)
				}
			}
			if len(seqs) != 40 {
				t.Fatalf("read %d events", len(seqs))
			}
		})
	}
}

// TestReadRoomsFetchesWhatItKeeps: a byte-bounded read makes PostgreSQL
// send the rows its pages keep and at most one step more, not every row
// up to the limit, and answers exactly what the one-query read does.
func TestReadRoomsFetchesWhatItKeeps(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, eventstoretest.New(t), nil)
	seed := func(room domain.Room, n, padLen int) {
		for done := 0; done < n; {
			var reqs []eventstore.AppendRequest
			for ; done < n && len(reqs) < 100; done++ {
				reqs = append(reqs, req("x-a", fmt.Sprintf(`{"i":%d,"pad":"%s"}`, done, strings.Repeat("p", padLen)), string(room)))
			}
			if _, err := s.AppendBatch(ctx, reqs); err != nil {
				t.Fatal(err)
			}
		}
	}
	seed("chat-big", 2000, 4000) // ~4 KiB payloads
	seed("chat-small", 3000, 80) // ~100-byte payloads
	for _, tc := range []struct {
		name       string
		cursors    map[domain.Room]int64
		limit      int
		maxBytes   int
		maxFetched int                 // rows PostgreSQL may send; the one-query read sends every row up to the limit
		wantEvents map[domain.Room]int // where the count is plain
	}{
		// 17 payloads reach 64 KiB: the first step (256 rows) is all,
		// where one query would send 2,000.
		{"BigRoomSmallBound", map[domain.Room]int64{"chat-big": 0}, 10_000, 64 << 10, 256, nil},
		// About 512 payloads reach 2 MiB: a second step sized to the rest
		// (one query: 1,990 rows).
		{"BigRoomLargerBound", map[domain.Room]int64{"chat-big": 10}, 10_000, 2 << 20, 640, nil},
		// Small payloads never reach 4 MiB: every row, in two steps.
		{"SmallRoom", map[domain.Room]int64{"chat-small": 0}, 10_000, 4 << 20, 3000, map[domain.Room]int{"chat-small": 3000}},
		{"RowLimit", map[domain.Room]int64{"chat-big": 0}, 3, 1 << 20, 3, map[domain.Room]int{"chat-big": 3}},
		{"NothingAfterTheCursor", map[domain.Room]int64{"chat-big": 2000}, 10_000, 64 << 10, 1, map[domain.Room]int{"chat-big": 0}},
		// Two rooms: the big one is full after the first step, the small
		// one has only 10 rows left.
		{"TwoRooms", map[domain.Room]int64{"chat-big": 0, "chat-small": 2990}, 10_000, 64 << 10, 256 + 10, map[domain.Room]int{"chat-small": 10}},
		// Both rooms need a second step, each sized to its own payloads:
		// the big room's rows past its bound are not read for the small
		// room's sake.
		{"TwoRoomsTwoSteps", map[domain.Room]int64{"chat-big": 1000, "chat-small": 0}, 10_000, 2 << 20, 3000 + 640, map[domain.Room]int{"chat-small": 3000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pages, fetched, err := s.ReadRoomsStepped(ctx, tc.cursors, tc.limit, tc.maxBytes)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("PostgreSQL sent %d rows", fetched)
			if fetched > tc.maxFetched {
				t.Errorf("PostgreSQL sent %d rows, want at most %d", fetched, tc.maxFetched)
			}
			one, err := s.ReadRoomsSorted(ctx, tc.cursors, tc.limit, &eventstore.ReadOptions{MaxBytes: tc.maxBytes})
			if err != nil {
				t.Fatal(err)
			}
			slices.SortFunc(pages, func(a, b eventstore.Page) int { return strings.Compare(string(a.Room), string(b.Room)) })
			slices.SortFunc(one, func(a, b eventstore.Page) int { return strings.Compare(string(a.Room), string(b.Room)) })
			if fmt.Sprint(pages) != fmt.Sprint(one) {
				t.Fatalf("fetched read differs from the one-query read:\n%v\n%v", pages, one)
			}
			for _, p := range pages {
				want, plain := tc.wantEvents[p.Room]
				if plain && len(p.Events) != want || !plain && len(p.Events) == 0 {
					t.Errorf("%s: %d events, want %v", p.Room, len(p.Events), tc.wantEvents[p.Room])
				}
			}
		})
	}
}

func TestAppendOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := eventstoretest.New(t)
	s := newStore(t, pool, nil)
	keyed := req("x-a", `{}`, "user-1")
	keyed.IdempotencyKey = "k"
	if _, err := s.Append(ctx, keyed); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		"UPDATE events SET type = 'forged'",
		"DELETE FROM events",
		"TRUNCATE events",
		"UPDATE idempotency_keys SET key = 'x'",
		"DELETE FROM idempotency_keys",
		"TRUNCATE idempotency_keys",
	} {
		if _, err := pool.Exec(ctx, stmt); err == nil {
			t.Errorf("%s succeeded; the log must be append-only", stmt)
		}
	}
}

func TestMigrationsUpDownUp(t *testing.T) {
	t.Parallel()
	u := eventstoretest.NewURL(t)
	st, err := eventstore.MigrateStatus(u)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Current() || st.Version == 0 {
		t.Fatalf("fresh database status = %+v, want current", st)
	}
	if err := eventstore.MigrateDown(u, 0); err != nil {
		t.Fatal(err)
	}
	if st, err := eventstore.MigrateStatus(u); err != nil || st.Version != 0 {
		t.Fatalf("after down: %+v, %v", st, err)
	}
	if err := eventstore.MigrateUp(u); err != nil {
		t.Fatal(err)
	}
	if st, err := eventstore.MigrateStatus(u); err != nil || !st.Current() {
		t.Fatalf("after up: %+v, %v", st, err)
	}
	pool, err := pgxpool.New(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	s := newStore(t, pool, nil)
	if _, err := s.Append(context.Background(), req("x-a", `{}`, "user-1")); err != nil {
		t.Fatalf("append after up/down/up: %v", err)
	}
}

func TestStopFlushesPending(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := eventstoretest.New(t)
	s := eventstore.New(pool, testLogger(t), nil)
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Append(ctx, req("x-a", `{}`, fmt.Sprintf("user-%d", i%5))); err == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			} else if !errors.Is(err, domain.ErrUnavailable) {
				t.Errorf("append during stop: %v", err)
			}
		}()
	}
	time.Sleep(time.Millisecond) // let some appends queue; correctness does not depend on it
	s.Stop()
	wg.Wait()
	_, rows := assertGapFree(t, pool)
	if int64(ok) != rows {
		t.Fatalf("%d appends acknowledged, %d rows in the log", ok, rows)
	}
}

// TestHungCommitTimesOut: a group commit that cannot finish (its room's
// lock held by another transaction, as a hung database would hold it)
// ends after the writer's batch timeout with CodeUnavailable, the code
// that keeps the writer from retrying a batch's submissions one by one,
// each with the whole timeout again. Once the lock is free, appends to
// the room go on, gap-free.
func TestHungCommitTimesOut(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := eventstoretest.New(t)
	s := eventstore.New(pool, testLogger(t), &eventstore.Config{Writers: 1})
	s.SetBatchTimeout(300 * time.Millisecond)
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	// The room's head is now remembered: the next commit takes the room's
	// lock in its first statement.
	if _, err := s.Append(ctx, req("t", `{"i":1}`, "hung")); err != nil {
		t.Fatal(err)
	}
	blocker, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = blocker.Rollback(ctx) }()
	if _, err := blocker.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", eventstore.RoomLockKey("hung")); err != nil {
		t.Fatal(err)
	}
	// The caller waits far longer than the batch timeout: the error must
	// come from the writer.
	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	_, err = s.Append(actx, req("t", `{"i":2}`, "hung"))
	cancel()
	if code := domain.ErrorCode(err); code != domain.CodeUnavailable {
		t.Fatalf("append during the hang: %v (code %q), want %q", err, code, domain.CodeUnavailable)
	}
	if err := blocker.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 3; i <= 5; i++ {
		if _, err := s.Append(ctx, req("t", fmt.Sprintf(`{"i":%d}`, i), "hung")); err != nil {
			t.Fatalf("append %d after the hang: %v", i, err)
		}
	}
	// The timed-out append's outcome is unknown to its caller (it may
	// have committed once the lock was free); the log has no gap either
	// way.
	if _, rows := assertGapFree(t, pool); rows < 4 {
		t.Fatalf("%d rows, want at least 4", rows)
	}
}
