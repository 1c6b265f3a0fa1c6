package httpapi

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/roomlog/roomlog/domain"
)

// fuzzServer is a Server with small limits and no dependencies: the fuzz
// targets only exercise request parsing.
func fuzzServer(t testing.TB) *Server {
	cfg := (&Config{MaxPayloadBytes: 256, MaxBodyBytes: 4 << 10}).WithDefaults()
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	return &Server{cfg: cfg}
}

// FuzzPublishBody feeds arbitrary bodies to the publish decoder: it never
// panics, and it either accepts events that passed the catalogue or fails
// with invalid or too_large (never an internal error, which would be a
// 500). Its one-pass path for single events decodes exactly what the
// token-by-token decoder does, and fails with the same error.
func FuzzPublishBody(f *testing.F) {
	for _, seed := range []string{
		`{"event":"x-a","room":"global","payload":{}}`,
		`{"events":[{"event":"x-a","rooms":["global","user-1"],"payload":{"a":[1,2]},"id":"k"}]}`,
		`{"event":"new-message","room":"chat-c1","payload":{"chatId":"c1"}}`,
		`{"events":[1,{"event":5},[]]}`,
		`{"Event":"x","event":"y"}`, `[]`, `{`, `{}{}`, `{"events":null}`,
		`{"event":"x-a","room":"global","payload":{"a":"\u0000"}}`,
		`{"event":"x-a","rooms":["global"],"payload":{"i":1,"pad":"xx"},"id":"k1"}`,
		`{"event":"x-a","room":"global","payload":{"a":1},"payload":{"a":2}}`,
		`{"event":"x-a","room":"global","payload":{"a":1},"extra":true}`,
		`{"event":1,"room":["global"],"payload":[]}`,
		`{"events":[{"event":"x-a","room":"global","payload":{"i":1}},{"event":"x-b","rooms":["user-1"],"payload":{},"id":"k2"}]}`,
		`{"events":[{"event":"x-a","room":"global","payload":{}},{"event":"x-b","payload":{},"extra":1},{"room":"global"}]}`,
		`{"events":[{"event":"x-a","room":"global","payload":{"pad":"` + strings.Repeat("x", 300) + `"}},{"event":2}]}`,
		`{"events":[]}`, `{"events":[{"event":"x-a","room":"global","payload":{}}],"room":"global"}`,
	} {
		f.Add([]byte(seed))
	}
	s := fuzzServer(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		w := httptest.NewRecorder()
		c, _ := gin.CreateTestContext(w)
		c.Request = httptest.NewRequest(http.MethodPost, "/api/v1/events", strings.NewReader(string(body)))
		events, err := s.decodePublish(limitBody(c, int64(s.cfg.MaxBodyBytes)))
		c.Request = httptest.NewRequest(http.MethodPost, "/api/v1/events", strings.NewReader(string(body)))
		streamed, streamErr := s.decodePublishStream(limitBody(c, int64(s.cfg.MaxBodyBytes)))
		if !reflect.DeepEqual(events, streamed) || !reflect.DeepEqual(err, streamErr) {
			t.Fatalf("%q: decodePublish = %+v, %v; decodePublishStream = %+v, %v", body, events, err, streamed, streamErr)
		}
		if err != nil {
			if code := domain.ErrorCode(err); code != domain.CodeInvalid && code != domain.CodeTooLarge {
				t.Fatalf("code %s for %q: %v", code, body, err)
			}
			return
		}
		if len(events) == 0 || len(events) > MaxBatchEvents {
			t.Fatalf("%d events accepted from %q", len(events), body)
		}
		for _, e := range events {
			if err := domain.ValidatePublish(e.event, e.rooms, e.payload); err != nil {
				t.Fatalf("accepted an invalid event from %q: %v", body, err)
			}
			if len(e.payload) > s.cfg.MaxPayloadBytes {
				t.Fatalf("accepted a %d-byte payload", len(e.payload))
			}
		}
	})
}

// FuzzAuditQuery feeds arbitrary query strings to the audit parameter
// parser: it never panics and fails only with invalid.
func FuzzAuditQuery(f *testing.F) {
	for _, seed := range []string{
		"room=user-1&type=a&type=b&producer=p&eventId=00000000-0000-0000-0000-000000000000",
		"from=2025-01-01T00:00:00Z&to=2025-01-02T00:00:00Z&order=desc&limit=5",
		"contains=%7B%22requestId%22%3A%22r1%22%7D", "cursor=YzEuYS4xLjE", "cursor=%00", "limit=-1",
		"sort=id", "room=%27%20OR%20%271%27%3D%271",
	} {
		f.Add(seed)
	}
	s := fuzzServer(f)
	f.Fuzz(func(t *testing.T, query string) {
		w := httptest.NewRecorder()
		c, _ := gin.CreateTestContext(w)
		c.Request = httptest.NewRequest(http.MethodGet, "/api/v1/audit/events", nil)
		c.Request.URL.RawQuery = query
		q, err := s.parseAuditQuery(c, auditParams)
		if err != nil {
			if domain.ErrorCode(err) != domain.CodeInvalid {
				t.Fatalf("code %s for %q", domain.ErrorCode(err), query)
			}
			return
		}
		if q.Limit < 1 || q.Limit > MaxReadLimit {
			t.Fatalf("limit %d accepted from %q", q.Limit, query)
		}
		if q.Filter.Room != "" {
			if _, err := domain.ParseRoom(string(q.Filter.Room)); err != nil {
				t.Fatalf("room %q accepted", q.Filter.Room)
			}
		}
	})
}

// FuzzCursor checks that decodeCursor accepts exactly what encodeCursor
// makes, and round-trips it.
func FuzzCursor(f *testing.F) {
	f.Add("YzEuYS4xLjE")
	f.Add(encodeCursor(domain.Position{Txid: 1 << 40, ID: 7}, true))
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		pos, desc, err := decodeCursor(s)
		if err != nil {
			return
		}
		p2, d2, err := decodeCursor(encodeCursor(pos, desc))
		if err != nil || p2 != pos || d2 != desc {
			t.Fatalf("%q decodes to %v/%v, which does not round-trip", s, pos, desc)
		}
	})
}
