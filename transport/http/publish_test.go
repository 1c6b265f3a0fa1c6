package httpapi_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/roomlog/roomlog/domain"
	httpapi "github.com/roomlog/roomlog/transport/http"
)

// Valid bodies used across tests.
const (
	msgPayload    = `{"chatId":"c1","senderId":"u1","message":{"_id":"m1","content":"hi <b>&</b>","senderId":"u1","createdAt":"2025-01-01T00:00:00Z"}}`
	newMessage    = `{"event":"new-message","room":"chat-c1","id":"msg-1","payload":` + msgPayload + `}`
	cancelPayload = `{"requestId":"r1","reason":"buyer left"}`
)

type publishAnswer struct {
	Events []struct {
		ID         string `json:"id"`
		Deliveries []struct {
			Room string `json:"room"`
			Seq  int64  `json:"seq"`
		} `json:"deliveries"`
	} `json:"events"`
}

type errorAnswer struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Details []struct {
			Field   string `json:"field"`
			Message string `json:"message"`
		} `json:"details"`
	} `json:"error"`
}

func (e errorAnswer) fields() []string {
	var out []string
	for _, d := range e.Error.Details {
		out = append(out, d.Field)
	}
	return out
}

func TestPublish(t *testing.T) {
	t.Parallel()

	t.Run("SingleReplayConflict", func(t *testing.T) {
		t.Parallel()
		b := setup(t, &setupOptions{noMembership: true})
		first := b.publish(t, http.StatusCreated, newMessage)
		golden(t, "publish_single", first)
		// The same key and content, spaced and ordered differently, with
		// the key presented as a bearer token: the original result.
		again := b.do(t, http.MethodPost, "/api/v1/events",
			`{ "payload": `+msgPayload+`, "id": "msg-1", "room": "chat-c1", "event": "new-message" }`,
			"Authorization", "Bearer "+marketKey)
		if again.status != http.StatusOK || !bytes.Equal(again.body, first.body) {
			t.Fatalf("replay: %v, want 200 with %s", again, first.body)
		}
		golden(t, "publish_replay", again)
		conflict := b.publish(t, http.StatusConflict, strings.Replace(newMessage, `"hi `, `"bye `, 1))
		golden(t, "publish_conflict", conflict)
		// Nothing was written twice.
		page := decode[roomPageAnswer](t, b.get(t, http.StatusOK, "/api/v1/rooms/chat-c1/events", as(t, "admin", domain.RoleAdmin)...))
		if page.Head != 1 || len(page.Events) != 1 || page.Events[0].Producer != "market" {
			t.Fatalf("room after replays: %+v", page)
		}
		if got := string(page.Events[0].Payload); got != msgPayload {
			t.Fatalf("payload = %s, want the bytes sent", got)
		}
	})

	t.Run("Batch", func(t *testing.T) {
		t.Parallel()
		b := setup(t, &setupOptions{noMembership: true})
		r := b.publish(t, http.StatusCreated, `{"events":[
			{"event":"request-cancelled","rooms":["user-b1","user-s1"],"payload":`+cancelPayload+`,"id":"cancel-r1"},
			{"event":"delivery-update","room":"request-r1","payload":{"requestId":"r1","status":"shipped"}},
			{"event":"request-cancelled","rooms":["user-s1"],"payload":{"requestId":"r2","reason":"x"}}]}`)
		golden(t, "publish_batch", r)
		got := decode[publishAnswer](t, r)
		if len(got.Events) != 3 || got.Events[2].Deliveries[0].Seq != 2 {
			t.Fatalf("batch answer %+v", got)
		}
		// A batch that repeats one published event with the same key and
		// adds a new one is 201; repeating only published ones is 200.
		b.publish(t, http.StatusCreated, `{"events":[
			{"event":"request-cancelled","rooms":["user-b1","user-s1"],"payload":`+cancelPayload+`,"id":"cancel-r1"},
			{"event":"x-note","room":"user-b1","payload":{}}]}`)
		b.publish(t, http.StatusOK, `{"events":[
			{"event":"request-cancelled","rooms":["user-b1","user-s1"],"payload":`+cancelPayload+`,"id":"cancel-r1"}]}`)
		// A full batch of MaxBatchEvents is one atomic append.
		full := b.publish(t, http.StatusCreated, `{"events":[`+strings.Repeat(`{"event":"x-a","room":"global","payload":{}},`, httpapi.MaxBatchEvents-1)+`{"event":"x-a","room":"global","payload":{}}]}`)
		if got := decode[publishAnswer](t, full).Events; len(got) != httpapi.MaxBatchEvents || got[999].Deliveries[0].Seq != 1000 {
			t.Fatalf("full batch: %d events", len(got))
		}
		// The same key from another producer is another event.
		other := b.do(t, http.MethodPost, "/api/v1/events",
			`{"event":"request-cancelled","rooms":["user-b1","user-s1"],"payload":`+cancelPayload+`,"id":"cancel-r1"}`,
			"X-API-Key", billingKey)
		if other.status != http.StatusCreated {
			t.Fatalf("other producer: %v", other)
		}
		page := decode[roomPageAnswer](t, b.get(t, http.StatusOK, "/api/v1/rooms/user-b1/events", as(t, "b1")...))
		var producers []string
		for _, e := range page.Events {
			producers = append(producers, e.Producer)
		}
		if fmt.Sprint(producers) != "[market market billing]" {
			t.Fatalf("producers = %v", producers)
		}
	})

	t.Run("ConcurrentDuplicates", func(t *testing.T) {
		t.Parallel()
		b := setup(t, &setupOptions{noMembership: true})
		const n = 10
		var wg sync.WaitGroup
		answers := make([]response, n)
		for i := range n {
			wg.Go(func() {
				answers[i] = b.do(t, http.MethodPost, "/api/v1/events", newMessage, "X-API-Key", marketKey)
			})
		}
		wg.Wait()
		created := 0
		for _, a := range answers {
			switch a.status {
			case http.StatusCreated:
				created++
			case http.StatusOK:
			default:
				t.Fatalf("duplicate publish: %v", a)
			}
			if !bytes.Equal(a.body, answers[0].body) {
				t.Fatalf("answers differ: %s vs %s", a.body, answers[0].body)
			}
		}
		if created != 1 {
			t.Fatalf("%d publishes created the event, want 1", created)
		}
	})

	t.Run("Invalid", func(t *testing.T) {
		t.Parallel()
		b := setup(t, &setupOptions{noMembership: true})
		golden(t, "publish_invalid", b.publish(t, http.StatusBadRequest,
			`{"event":"new-offer","rooms":["user-b1","nope"],"payload":{"requestId":"r1","offer":[]}}`))
		golden(t, "publish_invalid_batch", b.publish(t, http.StatusBadRequest, `{"events":[
			{"event":"new-message","room":"chat-c1","payload":`+msgPayload+`},
			{"event":"user-typing","room":"chat-c1","payload":{"userId":"u1","isTyping":true}},
			{"event":"x-ok","room":"global","payload":{},"id":"has space"},
			{"event":"delivery-update","room":"request-r1","payload":{"requestId":"r1"}, "extra": 1},
			7]}`))
		many := `{"events":[` + strings.Repeat(`{"event":"x-a","room":"global","payload":{}},`, httpapi.MaxBatchEvents) + `{"event":"x-a","room":"global","payload":{}}]}`
		tests := []struct {
			name   string
			body   string
			fields []string
		}{
			{"NotJSON", `{"event":`, nil},
			{"NotObject", `[]`, nil},
			{"Trailing", `{"event":"x-a","room":"global","payload":{}} {}`, nil},
			{"Empty", `{}`, []string{"event", "rooms"}},
			{"UnknownField", `{"event":"x-a","room":"global","payload":{},"Event":"x"}`, []string{"Event"}},
			{"CaseMatters", `{"Event":"x-a","room":"global","payload":{}}`, []string{"Event", "event"}},
			{"RepeatedKey", `{"event":"x-a","event":"x-b","room":"global","payload":{}}`, []string{"event"}},
			{"RoomAndRooms", `{"event":"x-a","room":"global","rooms":["global"],"payload":{}}`, []string{"room"}},
			{"RoomsNotArray", `{"event":"x-a","rooms":"global","payload":{}}`, []string{"rooms"}},
			{"EventNotString", `{"event":5,"room":"global","payload":{}}`, []string{"event"}},
			{"LongKey", `{"event":"x-a","room":"global","payload":{},"id":"` + strings.Repeat("k", 201) + `"}`, []string{"id"}},
			{"Volatile", `{"event":"user-typing","room":"chat-c1","payload":{"userId":"u1","isTyping":true}}`, []string{"event"}},
			{"UnknownEvent", `{"event":"no-such-event","room":"global","payload":{}}`, []string{"event"}},
			{"BadRoom", `{"event":"x-a","room":"users-1","payload":{}}`, []string{"room"}},
			{"WrongKind", `{"event":"new-offer","room":"user-b1","payload":{"requestId":"r1","offer":{},"sellerId":"s1"}}`, []string{"room"}},
			{"DuplicateRoom", `{"event":"x-a","rooms":["global","global"],"payload":{}}`, []string{"rooms"}},
			{"PayloadNotObject", `{"event":"x-a","room":"global","payload":[1]}`, []string{"payload"}},
			{"PayloadMissing", `{"event":"x-a","room":"global"}`, []string{"payload"}},
			{"PayloadField", `{"event":"unread-count-update","room":"user-1","payload":{"unreadCount":-1}}`, []string{"payload.unreadCount"}},
			{"PayloadNUL", `{"event":"x-a","room":"global","payload":{"a":"\u0000"}}`, []string{"payload"}},
			{"MemberEventNeedsSharedRoom", `{"event":"room-member-added","room":"user-u1","payload":{"userId":"u2"}}`, []string{"room"}},
			{"BatchEmpty", `{"events":[]}`, []string{"events"}},
			{"BatchNotArray", `{"events":{}}`, []string{"events"}},
			{"BatchExtraKey", `{"events":[{"event":"x-a","room":"global","payload":{}}],"event":"x"}`, []string{"event"}},
			{"BatchTooMany", many, []string{"events"}},
			{"BatchRepeated", `{"events":[],"events":[]}`, []string{"events"}},
		}
		for _, tt := range tests {
			r := b.do(t, http.MethodPost, "/api/v1/events", tt.body, "X-API-Key", marketKey)
			if r.status != http.StatusBadRequest {
				t.Errorf("%s: %v, want 400", tt.name, r)
				continue
			}
			e := decode[errorAnswer](t, r)
			if e.Error.Code != "invalid" || fmt.Sprint(e.fields()) != fmt.Sprint(tt.fields) {
				t.Errorf("%s: %s, want fields %v", tt.name, r.body, tt.fields)
			}
		}
		// A batch with one bad event appends nothing.
		b.publish(t, http.StatusBadRequest, `{"events":[
			{"event":"x-a","room":"global","payload":{}},
			{"event":"x-a","room":"global","payload":[]}]}`)
		page := decode[roomPageAnswer](t, b.get(t, http.StatusOK, "/api/v1/rooms/global/events", as(t, "u1")...))
		if page.Head != 0 {
			t.Fatalf("a rejected batch appended: %+v", page)
		}
	})

	t.Run("TooLarge", func(t *testing.T) {
		t.Parallel()
		cfg := &httpapi.Config{MaxPayloadBytes: 1 << 10, MaxBodyBytes: 16 << 10}
		b := setup(t, &setupOptions{noMembership: true, config: cfg})
		big := `{"pad":"` + strings.Repeat("x", 1<<10) + `"}`
		golden(t, "publish_payload_too_large", b.publish(t, http.StatusRequestEntityTooLarge,
			`{"event":"x-a","room":"global","payload":`+big+`}`))
		r := b.publish(t, http.StatusRequestEntityTooLarge,
			`{"events":[{"event":"x-a","room":"global","payload":{}},{"event":"x-a","room":"global","payload":`+big+`}]}`)
		if f := decode[errorAnswer](t, r).fields(); fmt.Sprint(f) != "[events[1].payload]" {
			t.Fatalf("fields = %v", f)
		}
		// Exactly at the limit is fine.
		exact := `{"pad":"` + strings.Repeat("x", 1<<10-10) + `"}`
		b.publish(t, http.StatusCreated, `{"event":"x-a","room":"global","payload":`+exact+`}`)
		// A declared length over the body limit is refused unread.
		huge := `{"events":[` + strings.Repeat(`{"event":"x-a","room":"global","payload":{"p":"`+strings.Repeat("y", 900)+`"}},`, 20) + `{}]}`
		tooBig := b.publish(t, http.StatusRequestEntityTooLarge, huge)
		golden(t, "publish_body_too_large", tooBig)
		if !tooBig.closed {
			t.Errorf("413 keeps the connection open to read the rest of the body")
		}

		// A chunked body of unknown length is read no further than the
		// limit, however much the client would send.
		body := &endlessBody{prefix: []byte(`{"events":[`), fill: []byte(`{"event":"x-a","room":"global","payload":{}},`)}
		req := httptest.NewRequest(http.MethodPost, "/api/v1/events", body)
		req.Header.Set("X-API-Key", marketKey)
		req.ContentLength = -1
		rec := httptest.NewRecorder()
		b.api.Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusRequestEntityTooLarge {
			t.Fatalf("endless body: %d %s", rec.Code, rec.Body)
		}
		if body.read > int64(cfg.MaxBodyBytes)+1 {
			t.Fatalf("read %d bytes of an endless body; the limit is %d", body.read, cfg.MaxBodyBytes)
		}
		t.Logf("endless body: read %d bytes with a %d-byte limit", body.read, cfg.MaxBodyBytes)
	})

	t.Run("Unauthorized", func(t *testing.T) {
		t.Parallel()
		b := setup(t, &setupOptions{noMembership: true})
		none := b.do(t, http.MethodPost, "/api/v1/events", newMessage)
		golden(t, "publish_unauthorized", none)
		for name, hdr := range map[string][]string{
			"WrongKey":   {"X-API-Key", "market-test-key-0000000009"},
			"WrongBear":  {"Authorization", "Bearer nope"},
			"UserJWT":    as(t, "u1", domain.RoleAdmin),
			"BasicAuth":  {"Authorization", "Basic " + marketKey},
			"EmptyKey":   {"X-API-Key", " "},
			"KeyPrefix":  {"X-API-Key", marketKey[:20]},
			"KeySuffixd": {"X-API-Key", marketKey + "x"},
		} {
			r := b.do(t, http.MethodPost, "/api/v1/events", newMessage, hdr...)
			if r.status != http.StatusUnauthorized || !bytes.Equal(r.body, none.body) {
				t.Errorf("%s: %v", name, r)
			}
		}
	})

	t.Run("Unavailable", func(t *testing.T) {
		t.Parallel()
		b := setup(t, &setupOptions{deadDB: true})
		r := b.publish(t, http.StatusServiceUnavailable, newMessage)
		golden(t, "publish_unavailable", r)
		b.publish(t, http.StatusServiceUnavailable, `{"events":[`+newMessage+`]}`)
	})
}

// endlessBody yields prefix and then fill forever, counting what is read.
type endlessBody struct {
	prefix, fill []byte
	read         int64
	off          int
}

func (e *endlessBody) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		src := e.fill
		if e.off < len(e.prefix) {
			src = e.prefix[e.off:]
		} else {
			src = src[(e.off-len(e.prefix))%len(e.fill):]
		}
		c := copy(p[n:], src)
		n += c
		e.off += c
	}
	e.read += int64(n)
	return n, nil
}

var _ io.Reader = (*endlessBody)(nil)

// TestMembershipThroughAPI grants and revokes membership of a shared room
// with room-member-added and room-member-removed, and checks that
// catch-up follows.
func TestMembershipThroughAPI(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.publish(t, http.StatusCreated, newMessage)
	u2 := as(t, "u2")
	notFound := b.get(t, http.StatusNotFound, "/api/v1/rooms/chat-c1/events", u2...)

	b.publish(t, http.StatusCreated, `{"event":"room-member-added","room":"chat-c1","payload":{"userId":"u2"}}`)
	b.waitMember(t, "chat-c1", "u2", true)
	page := decode[roomPageAnswer](t, b.get(t, http.StatusOK, "/api/v1/rooms/chat-c1/events", u2...))
	if page.Head != 2 || len(page.Events) != 2 || page.Events[1].Event != "room-member-added" {
		t.Fatalf("member's catch-up: %+v", page)
	}

	b.publish(t, http.StatusCreated, `{"event":"room-member-removed","room":"chat-c1","payload":{"userId":"u2"}}`)
	b.waitMember(t, "chat-c1", "u2", false)
	again := b.get(t, http.StatusNotFound, "/api/v1/rooms/chat-c1/events", u2...)
	if !bytes.Equal(again.body, notFound.body) {
		t.Fatalf("after revocation: %s, want %s", again.body, notFound.body)
	}
	// The sender of a message is a member by the catalogue's rules.
	b.waitMember(t, "chat-c1", "u1", true)
	b.get(t, http.StatusOK, "/api/v1/rooms/chat-c1/events", as(t, "u1")...)
}
