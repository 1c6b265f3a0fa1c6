package eventstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/eventstoretest"
)

// TestOneRoundTripAppend: an append to rooms whose heads the store's own
// commits left takes one round trip (one pipeline in its implicit
// transaction: the locks first, the heads checked by
// roomlog_advance_heads, committed by the Sync); a new room costs a read first;
// when another process appended meanwhile, or an idempotency key is
// already stored, the one-round-trip attempt writes nothing and the append
// is made again the two-round-trip way, with the right seq, hash chain
// and idempotent result.
func TestOneRoundTripAppend(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := eventstoretest.New(t)
	s := newStore(t, pool, nil)
	other := newStore(t, secondPool(t, pool), nil) // another process

	type step struct {
		name      string
		store     *eventstore.Store
		req       eventstore.AppendRequest
		trips     int
		wantSeq   map[domain.Room]int64
		replayed  bool
		wantCode  domain.Code
		sameEvent string // a step name whose event id the result repeats
	}
	keyed := func(key, payload string, rooms ...string) eventstore.AppendRequest {
		r := req("x-keyed", payload, rooms...)
		r.IdempotencyKey = key
		return r
	}
	steps := []step{
		{name: "new room reads its head", store: s, req: req("x-a", `{}`, "chat-1"), trips: 2, wantSeq: map[domain.Room]int64{"chat-1": 1}},
		{name: "remembered room", store: s, req: req("x-a", `{}`, "chat-1"), trips: 1, wantSeq: map[domain.Room]int64{"chat-1": 2}},
		{name: "remembered and new room", store: s, req: req("x-a", `{}`, "chat-1", "chat-2"), trips: 2, wantSeq: map[domain.Room]int64{"chat-1": 3, "chat-2": 1}},
		{name: "both remembered", store: s, req: req("x-a", `{}`, "chat-2", "chat-1"), trips: 1, wantSeq: map[domain.Room]int64{"chat-1": 4, "chat-2": 2}},
		{name: "another process appends", store: other, req: req("x-b", `{}`, "chat-1"), trips: 2, wantSeq: map[domain.Room]int64{"chat-1": 5}},
		{name: "stale head is retried", store: s, req: req("x-a", `{}`, "chat-1"), trips: 3, wantSeq: map[domain.Room]int64{"chat-1": 6}},
		{name: "relearned", store: s, req: req("x-a", `{}`, "chat-1"), trips: 1, wantSeq: map[domain.Room]int64{"chat-1": 7}},
		{name: "new key", store: s, req: keyed("k1", `{"n":1}`, "chat-1"), trips: 1, wantSeq: map[domain.Room]int64{"chat-1": 8}},
		{name: "stored key is retried and replayed", store: s, req: keyed("k1", `{"n":1}`, "chat-1"), trips: 3, wantSeq: map[domain.Room]int64{"chat-1": 8}, replayed: true, sameEvent: "new key"},
		{name: "stored key with other content", store: s, req: keyed("k1", `{"n":2}`, "chat-1"), trips: 3, wantCode: domain.CodeConflict},
		{name: "after the conflict", store: s, req: req("x-a", `{}`, "chat-1"), trips: 1, wantSeq: map[domain.Room]int64{"chat-1": 9}},
	}
	ids := map[string]string{}
	for _, st := range steps {
		res, batches, err := st.store.AppendRoundTrips(ctx, []eventstore.AppendRequest{st.req})
		if len(batches) != st.trips {
			t.Errorf("%s: %d round trips, want %d: %q", st.name, len(batches), st.trips, batches)
		}
		if st.wantCode != "" {
			if domain.ErrorCode(err) != st.wantCode {
				t.Fatalf("%s: err %v, want code %s", st.name, err, st.wantCode)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		ids[st.name] = res.EventID
		got := map[domain.Room]int64{}
		for _, d := range res.Deliveries {
			got[d.Room] = d.Seq
		}
		if !maps.Equal(got, st.wantSeq) {
			t.Errorf("%s: seqs %v, want %v", st.name, got, st.wantSeq)
		}
		if res.Replayed != st.replayed {
			t.Errorf("%s: replayed %v, want %v", st.name, res.Replayed, st.replayed)
		}
		if st.sameEvent != "" && res.EventID != ids[st.sameEvent] {
			t.Errorf("%s: event %s, want the original %s", st.name, res.EventID, ids[st.sameEvent])
		}
		if st.trips == 1 {
			// One pipeline: lock, check the heads, insert; the Sync
			// commits, so no BEGIN or COMMIT of its own.
			b := batches[0]
			if !strings.Contains(b[0], "pg_advisory_xact_lock") || !slices.ContainsFunc(b, func(q string) bool { return strings.Contains(q, "roomlog_advance_heads") }) ||
				slices.ContainsFunc(b, func(q string) bool { return q == "BEGIN" || q == "COMMIT" }) {
				t.Errorf("%s: one round trip sent %q", st.name, b)
			}
		}
	}
	assertGapFree(t, pool)
	if seq, ok := s.RememberedHead("chat-1"); !ok || seq != 9 {
		t.Errorf("remembered head of chat-1: %d %v, want 9", seq, ok)
	}
}

// TestGroupCommitSynchronousCommit: a group commit's transaction runs with
// synchronous_commit on (off only with Config.AsyncCommit), in the
// one-round-trip append's implicit transaction as in the two-round-trip
// one's explicit block, and the setting ends with the transaction. A
// trigger on events records the setting each insert ran with.
func TestGroupCommitSynchronousCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := eventstoretest.New(t)
	if _, err := pool.Exec(ctx, `
		ALTER DATABASE `+quoteIdent(pool.Config().ConnConfig.Database)+` SET synchronous_commit = local;
		CREATE TABLE seen_sync (room text, seq int8, setting text);
		CREATE FUNCTION record_sync() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			INSERT INTO seen_sync VALUES (NEW.room, NEW.seq, current_setting('synchronous_commit'));
			RETURN NEW;
		END $$;
		CREATE TRIGGER record_sync AFTER INSERT ON events FOR EACH ROW EXECUTE FUNCTION record_sync();`); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		async bool
		want  string
	}{{"Durable", false, "on"}, {"AsyncCommit", true, "off"}} {
		t.Run(tt.name, func(t *testing.T) {
			// A fresh pool: its sessions start with the database's
			// synchronous_commit (local), which neither value is.
			p := secondPool(t, pool)
			s := newStore(t, p, &eventstore.Config{AsyncCommit: tt.async})
			room := "chat-" + strings.ToLower(tt.name)
			for i, trips := range []int{2, 1} { // a new room reads its head first; then one round trip
				_, batches, err := s.AppendRoundTrips(ctx, []eventstore.AppendRequest{req("x-a", `{}`, room)})
				if err != nil {
					t.Fatal(err)
				}
				if len(batches) != trips {
					t.Fatalf("append %d: %d round trips, want %d", i+1, len(batches), trips)
				}
			}
			rows, err := pool.Query(ctx, "SELECT seq, setting FROM seen_sync WHERE room = $1 ORDER BY seq", room)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for rows.Next() {
				var seq int64
				var setting string
				if err := rows.Scan(&seq, &setting); err != nil {
					t.Fatal(err)
				}
				got = append(got, fmt.Sprintf("%d:%s", seq, setting))
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if want := []string{"1:" + tt.want, "2:" + tt.want}; !slices.Equal(got, want) {
				t.Fatalf("settings the inserts ran with = %q, want %q", got, want)
			}
			// The setting was the transaction's: the sessions keep theirs.
			var session string
			if err := p.QueryRow(ctx, "SELECT current_setting('synchronous_commit')").Scan(&session); err != nil {
				t.Fatal(err)
			}
			if session != "local" {
				t.Fatalf("session synchronous_commit after the appends = %q, want local", session)
			}
		})
	}
}

// quoteIdent quotes a PostgreSQL identifier.
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// TestAdvanceHeadsChecks: roomlog_advance_heads moves a head only from
// exactly the (seq, hash) the writer built on, and otherwise raises RLH01
// so that the transaction keeps nothing.
func TestAdvanceHeadsChecks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := eventstoretest.New(t)
	s := newStore(t, pool, nil)
	for _, r := range []string{"chat-1", "chat-1", "chat-2"} {
		if _, err := s.Append(ctx, req("x-a", `{}`, r)); err != nil {
			t.Fatal(err)
		}
	}
	var h1, h2 []byte
	if err := pool.QueryRow(ctx, "SELECT (SELECT hash FROM room_heads WHERE room = 'chat-1'), (SELECT hash FROM room_heads WHERE room = 'chat-2')").Scan(&h1, &h2); err != nil {
		t.Fatal(err)
	}
	other := []byte("not the head hash, 32 bytes long")
	type advance struct {
		room    string
		oldSeq  int64
		oldHash []byte
	}
	// The function updates up to 16 rooms one by one and more in one
	// statement (migration 0008): a commit of 17 rooms takes the other
	// way.
	var many []advance
	for i := range 17 {
		room := fmt.Sprintf("many-%d", i)
		if _, err := s.Append(ctx, req("x-a", `{}`, room)); err != nil {
			t.Fatal(err)
		}
		var h []byte
		if err := pool.QueryRow(ctx, "SELECT hash FROM room_heads WHERE room = $1", room).Scan(&h); err != nil {
			t.Fatal(err)
		}
		many = append(many, advance{room, 1, h})
	}
	with := func(adv []advance, i int, a advance) []advance {
		adv = slices.Clone(adv)
		adv[i] = a
		return adv
	}
	for _, tc := range []struct {
		name string
		adv  []advance
		ok   bool
	}{
		{"exact", []advance{{"chat-1", 2, h1}}, true},
		{"both exact", []advance{{"chat-1", 2, h1}, {"chat-2", 1, h2}}, true},
		{"seq moved", []advance{{"chat-1", 1, h1}}, false},
		{"hash differs", []advance{{"chat-1", 2, other}}, false},
		{"unknown room", []advance{{"chat-9", 0, other}}, false},
		{"one of two moved", []advance{{"chat-1", 2, h1}, {"chat-2", 2, h2}}, false},
		{"16 exact", many[:16], true},
		{"16, last moved", with(many[:16], 15, advance{"many-15", 2, many[15].oldHash}), false},
		{"17 exact", many, true},
		{"17, last moved", with(many, 16, advance{"many-16", 2, many[16].oldHash}), false},
		{"17, one hash differs", with(many, 3, advance{"many-3", 1, other}), false},
		{"17, one unknown", with(many, 9, advance{"many-99", 1, other}), false},
		{"17, a room twice", with(many, 16, many[0]), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tx, err := pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx)
			var rooms []string
			var oldSeqs, seqs []int64
			var oldHashes, hashes [][]byte
			for _, a := range tc.adv {
				rooms = append(rooms, a.room)
				oldSeqs, oldHashes = append(oldSeqs, a.oldSeq), append(oldHashes, a.oldHash)
				seqs, hashes = append(seqs, a.oldSeq+1), append(hashes, other)
			}
			_, err = tx.Exec(ctx, "SELECT roomlog_advance_heads($1, $2, $3, $4, $5)", rooms, oldSeqs, oldHashes, seqs, hashes)
			var pgErr *pgconn.PgError
			switch {
			case tc.ok && err != nil:
				t.Fatalf("refused: %v", err)
			case !tc.ok && (!errors.As(err, &pgErr) || pgErr.Code != "RLH01"):
				t.Fatalf("err %v, want SQLSTATE RLH01", err)
			case tc.ok:
				for i, room := range rooms {
					var seq int64
					var hash []byte
					if err := tx.QueryRow(ctx, "SELECT seq, hash FROM room_heads WHERE room = $1", room).Scan(&seq, &hash); err != nil || seq != seqs[i] || !bytes.Equal(hash, hashes[i]) {
						t.Fatalf("head of %s: %d %x %v, want %d %x", room, seq, hash, err, seqs[i], hashes[i])
					}
				}
			case !strings.Contains(pgErr.Message, "of "+strconv.Itoa(len(rooms))+" room heads moved"):
				t.Errorf("message %q does not count the %d rooms", pgErr.Message, len(rooms))
			}
		})
	}
}
