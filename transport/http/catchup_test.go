package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/transport/auth"
	httpapi "github.com/roomlog/roomlog/transport/http"
)

type eventAnswer struct {
	ID       string          `json:"id"`
	Room     string          `json:"room"`
	Seq      int64           `json:"seq"`
	Event    string          `json:"event"`
	Payload  json.RawMessage `json:"payload"`
	At       time.Time       `json:"at"`
	Producer string          `json:"producer"`
}

type roomPageAnswer struct {
	Room   string        `json:"room"`
	Events []eventAnswer `json:"events"`
	Head   int64         `json:"head"`
	More   bool          `json:"more"`
	Reset  bool          `json:"reset"`
}

func seqs(es []eventAnswer) []int64 {
	out := make([]int64, len(es))
	for i, e := range es {
		out[i] = e.Seq
	}
	return out
}

// seedRooms publishes 5 events to user-u1, 3 messages from u1 to chat-c1
// (which makes u1 a member), one purchase request to sellers and one event
// to global, and waits for the membership projection.
func seedRooms(t *testing.T, b *testBundle) {
	t.Helper()
	var evs []string
	for i := 1; i <= 5; i++ {
		evs = append(evs, fmt.Sprintf(`{"event":"unread-count-update","room":"user-u1","payload":{"unreadCount":%d}}`, i))
	}
	for i := 1; i <= 3; i++ {
		evs = append(evs, fmt.Sprintf(`{"event":"new-message","room":"chat-c1","payload":{"chatId":"c1","senderId":"u1","message":{"_id":"m%d","content":"hello %d","senderId":"u1","createdAt":"2025-01-01T00:00:00Z"}}}`, i, i))
	}
	evs = append(evs, `{"event":"new-purchase-request","room":"sellers","payload":{"_id":"r1","buyerId":"b1","title":"bike"}}`)
	evs = append(evs, `{"event":"x-announcement","room":"global","payload":{"text":"hi"}}`)
	b.publish(t, http.StatusCreated, `{"events":[`+strings.Join(evs, ",")+`]}`)
	b.waitMember(t, "chat-c1", "u1", true)
}

func TestCatchUpRoom(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	seedRooms(t, b)
	u1 := as(t, "u1")

	t.Run("Page", func(t *testing.T) {
		t.Parallel()
		r := b.get(t, http.StatusOK, "/api/v1/rooms/user-u1/events?after=1&limit=2", u1...)
		golden(t, "catchup_room", r)
		p := decode[roomPageAnswer](t, r)
		if !slices.Equal(seqs(p.Events), []int64{2, 3}) || p.Head != 5 || !p.More || p.Reset {
			t.Fatalf("page = %+v", p)
		}
	})

	t.Run("PagesToTheEnd", func(t *testing.T) {
		t.Parallel()
		var got []int64
		after := int64(0)
		for {
			p := decode[roomPageAnswer](t, b.get(t, http.StatusOK, fmt.Sprintf("/api/v1/rooms/user-u1/events?after=%d&limit=2", after), u1...))
			got = append(got, seqs(p.Events)...)
			if !p.More {
				break
			}
			after = p.Events[len(p.Events)-1].Seq
		}
		if !slices.Equal(got, []int64{1, 2, 3, 4, 5}) {
			t.Fatalf("paged %v", got)
		}
		// At the head: nothing, no reset.
		p := decode[roomPageAnswer](t, b.get(t, http.StatusOK, "/api/v1/rooms/user-u1/events?after=5", u1...))
		if len(p.Events) != 0 || p.More || p.Reset || p.Head != 5 {
			t.Fatalf("at head: %+v", p)
		}
		// Default limit and after.
		p = decode[roomPageAnswer](t, b.get(t, http.StatusOK, "/api/v1/rooms/chat-c1/events", u1...))
		if !slices.Equal(seqs(p.Events), []int64{1, 2, 3}) || p.More {
			t.Fatalf("chat: %+v", p)
		}
	})

	t.Run("NotFoundIsIdentical", func(t *testing.T) {
		t.Parallel()
		want := b.get(t, http.StatusNotFound, "/api/v1/rooms/nope/events", u1...)
		golden(t, "catchup_not_found", want)
		cases := []struct {
			room string
			hdr  []string
		}{
			{"user-u2", u1},                         // another user's room, with events or not
			{"user-u1-x", u1},                       // a valid name of another user
			{"seller-u1", u1},                       // own id, but not a seller
			{"sellers", u1},                         // has events; u1 is no seller
			{"buyers", u1},                          // no events; u1 is no buyer
			{"chat-c9", u1},                         // a chat that does not exist
			{"chat-c1", as(t, "u2")},                // a chat that exists, u2 not a member
			{"request-r1", as(t, "s9")},             // exists as a name; s9 was never made a member
			{"request-", u1},                        // not a room
			{"user-" + strings.Repeat("a", 65), u1}, // id too long
			{"global%20", u1},                       // not a room
		}
		for _, c := range cases {
			r := b.get(t, http.StatusNotFound, "/api/v1/rooms/"+c.room+"/events?after=0&limit=10", c.hdr...)
			if !bytes.Equal(r.body, want.body) {
				t.Errorf("%s: body %s differs from %s", c.room, r.body, want.body)
			}
			for _, h := range []string{"Content-Type", "Content-Length", "Retry-After", "WWW-Authenticate"} {
				if r.header.Get(h) != want.header.Get(h) {
					t.Errorf("%s: header %s = %q, want %q", c.room, h, r.header.Get(h), want.header.Get(h))
				}
			}
		}
	})

	t.Run("Roles", func(t *testing.T) {
		t.Parallel()
		for _, c := range []struct {
			room string
			hdr  []string
		}{
			{"user-u1", as(t, "root", domain.RoleAdmin)},
			{"chat-c1", as(t, "aud", domain.RoleAuditor)},
			{"chat-c1", as(t, "root", domain.RoleAdmin)},
			{"sellers", as(t, "s9", domain.RoleSeller)},
			{"global", as(t, "anyone")},
			{"buyers", as(t, "b9", domain.RoleBuyer)},
		} {
			b.get(t, http.StatusOK, "/api/v1/rooms/"+c.room+"/events", c.hdr...)
		}
	})

	t.Run("Unauthorized", func(t *testing.T) {
		t.Parallel()
		want := b.get(t, http.StatusUnauthorized, "/api/v1/rooms/user-u1/events")
		golden(t, "catchup_unauthorized", want)
		expired, err := mintExpired()
		if err != nil {
			t.Fatal(err)
		}
		for name, hdr := range map[string][]string{
			"Garbage":   {"Authorization", "Bearer not-a-jwt"},
			"Expired":   {"Authorization", "Bearer " + expired},
			"APIKey":    {"X-API-Key", marketKey},
			"KeyAsJWT":  {"Authorization", "Bearer " + marketKey},
			"NoSubject": {"Authorization", "Bearer " + token(t, "x")[:20]},
		} {
			r := b.get(t, http.StatusUnauthorized, "/api/v1/rooms/user-u1/events", hdr...)
			if !bytes.Equal(r.body, want.body) {
				t.Errorf("%s: %s", name, r.body)
			}
		}
	})

	t.Run("BadParameters", func(t *testing.T) {
		t.Parallel()
		golden(t, "catchup_bad_params", b.get(t, http.StatusBadRequest, "/api/v1/rooms/user-u1/events?after=-1&limit=10001", u1...))
		for _, q := range []string{"after=x", "after=1.5", "limit=0", "limit=", "limit=10001", "after=99999999999999999999"} {
			// Bad parameters answer 400 whatever the room, so that they
			// reveal nothing about it.
			for _, room := range []string{"user-u1", "user-u2", "nope"} {
				b.get(t, http.StatusBadRequest, "/api/v1/rooms/"+room+"/events?"+q, u1...)
			}
		}
	})

	t.Run("ResetAheadOfHead", func(t *testing.T) {
		t.Parallel()
		r := b.get(t, http.StatusOK, "/api/v1/rooms/user-u1/events?after=9&limit=3", u1...)
		golden(t, "catchup_reset_ahead", r)
		p := decode[roomPageAnswer](t, r)
		if !p.Reset || !slices.Equal(seqs(p.Events), []int64{1, 2, 3}) || !p.More || p.Head != 5 {
			t.Fatalf("reset page = %+v", p)
		}
		// A room with no events: reset with nothing to rebuild from.
		p = decode[roomPageAnswer](t, b.get(t, http.StatusOK, "/api/v1/rooms/user-u3/events?after=4", as(t, "u3")...))
		if !p.Reset || len(p.Events) != 0 || p.Head != 0 || p.More {
			t.Fatalf("empty room reset = %+v", p)
		}
		// A readable room with no events and no cursor: an empty answer.
		p = decode[roomPageAnswer](t, b.get(t, http.StatusOK, "/api/v1/rooms/user-u3/events", as(t, "u3")...))
		if p.Reset || len(p.Events) != 0 || p.Head != 0 {
			t.Fatalf("empty room = %+v", p)
		}
	})
}

// TestCatchUpRetention removes a room's oldest rows, as retention would,
// and checks that cursors older than what the log holds get a reset.
func TestCatchUpRetention(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	seedRooms(t, b)
	ctx := context.Background()
	tx, err := b.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The append-only trigger is a seatbelt that a superuser can take off;
	// that is how retention (or tampering) would remove rows.
	if _, err := tx.Exec(ctx, "SET LOCAL session_replication_role = replica"); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "DELETE FROM events WHERE room = 'user-u1' AND seq <= 2"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	u1 := as(t, "u1")
	for _, c := range []struct {
		after int64
		reset bool
		seqs  []int64
	}{
		{0, true, []int64{3, 4, 5}},
		{1, true, []int64{3, 4, 5}},
		{2, false, []int64{3, 4, 5}},
		{4, false, []int64{5}},
		{7, true, []int64{3, 4, 5}},
	} {
		p := decode[roomPageAnswer](t, b.get(t, http.StatusOK, fmt.Sprintf("/api/v1/rooms/user-u1/events?after=%d", c.after), u1...))
		if p.Reset != c.reset || !slices.Equal(seqs(p.Events), c.seqs) {
			t.Errorf("after %d: reset %v seqs %v, want %v %v", c.after, p.Reset, seqs(p.Events), c.reset, c.seqs)
		}
	}
	r := b.do(t, http.MethodPost, "/api/v1/catch-up", `{"cursors":{"user-u1":1}}`, u1...)
	golden(t, "catchup_reset_retention", r)
}

type catchUpAnswer struct {
	Rooms []json.RawMessage `json:"rooms"`
}

func TestCatchUpMulti(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	seedRooms(t, b)
	u1 := as(t, "u1")

	t.Run("Mixed", func(t *testing.T) {
		t.Parallel()
		r := b.do(t, http.MethodPost, "/api/v1/catch-up",
			`{"cursors":{"user-u1":3,"chat-c1":0,"user-u2":0,"nope":1,"global":9,"sellers":0,"chat-c9":0}, "limit": 2}`, u1...)
		if r.status != http.StatusOK {
			t.Fatalf("%v", r)
		}
		golden(t, "catchup_multi", r)
		got := decode[catchUpAnswer](t, r)
		var names []string
		byRoom := map[string]string{}
		for _, e := range got.Rooms {
			var head struct {
				Room string `json:"room"`
			}
			if err := json.Unmarshal(e, &head); err != nil {
				t.Fatal(err)
			}
			names = append(names, head.Room)
			byRoom[head.Room] = strings.Replace(string(e), `"`+head.Room+`"`, `"ROOM"`, 1)
		}
		if !slices.IsSorted(names) || len(names) != 7 {
			t.Fatalf("rooms %v", names)
		}
		// Unreadable and non-existent rooms are indistinguishable.
		for _, name := range []string{"user-u2", "sellers", "chat-c9"} {
			if byRoom[name] != byRoom["nope"] {
				t.Errorf("%s: %s differs from %s", name, byRoom[name], byRoom["nope"])
			}
		}
	})

	t.Run("Bounded", func(t *testing.T) {
		t.Parallel()
		// 100 rooms at the largest limit still answer at most 10,000
		// events; each room says whether more exists.
		cursors := map[string]int64{"user-u1": 0}
		for i := range 99 {
			cursors[fmt.Sprintf("user-u1-%d", i)] = 0
		}
		body, _ := json.Marshal(map[string]any{"cursors": cursors, "limit": httpapi.MaxCatchUpLimit})
		r := b.do(t, http.MethodPost, "/api/v1/catch-up", string(body), u1...)
		if r.status != http.StatusOK || len(decode[catchUpAnswer](t, r).Rooms) != 100 {
			t.Fatalf("%v", r)
		}
	})

	t.Run("Invalid", func(t *testing.T) {
		t.Parallel()
		golden(t, "catchup_multi_invalid", b.do(t, http.MethodPost, "/api/v1/catch-up",
			`{"cursors":{"user-u1":-1,"chat-c1":"3"},"limit":0,"rooms":[]}`, u1...))
		many := map[string]int64{}
		for i := range 101 {
			many[fmt.Sprintf("user-u%d", i)] = 0
		}
		manyBody, _ := json.Marshal(map[string]any{"cursors": many})
		for name, body := range map[string]string{
			"NotJSON":     `{"cursors":`,
			"NotObject":   `[]`,
			"NoCursors":   `{}`,
			"Empty":       `{"cursors":{}}`,
			"CursorsList": `{"cursors":["user-u1"]}`,
			"Repeated":    `{"cursors":{"user-u1":1,"user-u1":2}}`,
			"Fraction":    `{"cursors":{"user-u1":1.5}}`,
			"TooMany":     string(manyBody),
			"LimitTooBig": `{"cursors":{"user-u1":1},"limit":10001}`,
			"Trailing":    `{"cursors":{"user-u1":1}} x`,
		} {
			if r := b.do(t, http.MethodPost, "/api/v1/catch-up", body, u1...); r.status != http.StatusBadRequest {
				t.Errorf("%s: %v", name, r)
			}
		}
		huge := `{"cursors":{"user-u1":1},"pad":"` + strings.Repeat("x", 70<<10) + `"}`
		if r := b.do(t, http.MethodPost, "/api/v1/catch-up", huge, u1...); r.status != http.StatusRequestEntityTooLarge {
			t.Errorf("huge: %v", r)
		}
		if r := b.do(t, http.MethodPost, "/api/v1/catch-up", `{"cursors":{"user-u1":1}}`); r.status != http.StatusUnauthorized {
			t.Errorf("anonymous: %v", r)
		}
	})
}

func TestCatchUpUnavailable(t *testing.T) {
	t.Parallel()
	b := setup(t, &setupOptions{deadDB: true})
	golden(t, "catchup_unavailable", b.get(t, http.StatusServiceUnavailable, "/api/v1/rooms/user-u1/events", as(t, "u1")...))
	// Membership lookups fail the same way.
	if r := b.do(t, http.MethodPost, "/api/v1/catch-up", `{"cursors":{"chat-c1":0}}`, as(t, "u1")...); r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Fatalf("%v", r)
	}
}

// mintExpired returns a token that expired an hour ago.
func mintExpired() (string, error) {
	return auth.MintHS256([]byte(jwtSecret), domain.Principal{UserID: "u1"}, time.Minute, time.Now().Add(-time.Hour), nil)
}

// TestCatchUpLargePages reads 10,000 events in one page, and checks that a
// page stops early, with more, once its payloads reach 4 MiB.
func TestCatchUpLargePages(t *testing.T) {
	t.Parallel()
	b := setup(t, &setupOptions{noMembership: true})
	ctx := context.Background()
	appendN := func(room domain.Room, n int, payload func(i int) string) {
		t.Helper()
		for done := 0; done < n; done += 1000 {
			var reqs []eventstore.AppendRequest
			for i := done; i < min(n, done+1000); i++ {
				reqs = append(reqs, eventstore.AppendRequest{Type: "x-bench", Rooms: []domain.Room{room}, Producer: "market", Payload: json.RawMessage(payload(i))})
			}
			if _, err := b.store.AppendBatch(ctx, reqs); err != nil {
				t.Fatal(err)
			}
		}
	}
	appendN("user-many", httpapi.MaxCatchUpLimit+500, func(i int) string { return fmt.Sprintf(`{"t":%d}`, i) })
	// 600 KiB payloads: a 4 MiB page holds 7 (the 7th starts at 3.5 MiB).
	big := strings.Repeat("x", 600<<10)
	appendN("user-big", 12, func(i int) string { return fmt.Sprintf(`{"t":%d,"pad":"%s"}`, i, big) })
	admin := as(t, "admin", domain.RoleAdmin)

	t.Run("TenThousand", func(t *testing.T) {
		t.Parallel()
		p := decode[roomPageAnswer](t, b.get(t, http.StatusOK, fmt.Sprintf("/api/v1/rooms/user-many/events?limit=%d", httpapi.MaxCatchUpLimit), admin...))
		if len(p.Events) != httpapi.MaxCatchUpLimit || !p.More || p.Reset || p.Events[len(p.Events)-1].Seq != int64(httpapi.MaxCatchUpLimit) {
			t.Fatalf("first page: %d events, more %v, reset %v", len(p.Events), p.More, p.Reset)
		}
		p = decode[roomPageAnswer](t, b.get(t, http.StatusOK, fmt.Sprintf("/api/v1/rooms/user-many/events?after=%d&limit=%d", httpapi.MaxCatchUpLimit, httpapi.MaxCatchUpLimit), admin...))
		if len(p.Events) != 500 || p.More || p.Events[0].Seq != int64(httpapi.MaxCatchUpLimit)+1 {
			t.Fatalf("second page: %d events, more %v", len(p.Events), p.More)
		}
	})

	t.Run("ByteBound", func(t *testing.T) {
		t.Parallel()
		var sizes []int
		after := int64(0)
		for {
			p := decode[roomPageAnswer](t, b.get(t, http.StatusOK, fmt.Sprintf("/api/v1/rooms/user-big/events?after=%d&limit=100", after), admin...))
			sizes = append(sizes, len(p.Events))
			for i, e := range p.Events {
				if e.Seq != after+int64(i)+1 {
					t.Fatalf("page after %d: event %d has seq %d", after, i, e.Seq)
				}
			}
			if !p.More {
				break
			}
			after = p.Events[len(p.Events)-1].Seq
		}
		if !slices.Equal(sizes, []int{7, 5}) {
			t.Fatalf("pages of %v events, want [7 5]", sizes)
		}
	})

	t.Run("ByteBoundSharedBetweenRooms", func(t *testing.T) {
		t.Parallel()
		// Two rooms share 4 MiB: 2 MiB each, so 4 big events (the 4th
		// starts at 1.76 MiB), and at least one event per room however
		// small its share.
		body := `{"cursors":{"user-big":0,"user-many":0},"limit":10000}`
		a := decode[catchUpAnswer](t, b.do(t, http.MethodPost, "/api/v1/catch-up", body, admin...))
		var got []string
		for _, raw := range a.Rooms {
			var r roomPageAnswer
			if err := json.Unmarshal(raw, &r); err != nil {
				t.Fatal(err)
			}
			got = append(got, fmt.Sprintf("%s:%d:%v", r.Room, len(r.Events), r.More))
		}
		if want := []string{"user-big:4:true", "user-many:5000:true"}; !slices.Equal(got, want) {
			t.Fatalf("got %v, want %v", got, want)
		}
	})
}
