package httpapi_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	httpapi "github.com/roomlog/roomlog/transport/http"
)

type auditAnswer struct {
	Events []eventAnswer `json:"events"`
	Next   *string       `json:"next"`
}

func roomSeqs(es []eventAnswer) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = fmt.Sprintf("%s/%d", e.Room, e.Seq)
	}
	return out
}

// seedAudit publishes a small purchase history, one minute apart, with two
// producers, and waits until audits see all of it. It returns the event id
// of the cancellation (two rooms).
func seedAudit(t *testing.T, b *testBundle) string {
	t.Helper()
	steps := []struct{ key, body string }{
		{marketKey, `{"event":"new-purchase-request","room":"sellers","payload":{"_id":"r1","buyerId":"b1"}}`},
		{marketKey, `{"event":"new-offer","room":"buyer-b1","payload":{"requestId":"r1","sellerId":"s1","offer":{"price":"12.50"}}}`},
		{billingKey, `{"event":"delivery-update","room":"request-r1","payload":{"requestId":"r1","status":"shipped"}}`},
		{billingKey, `{"event":"delivery-update","room":"request-r2","payload":{"requestId":"r2","status":"shipped"}}`},
		{marketKey, `{"event":"request-cancelled","rooms":["user-b1","user-s1"],"payload":{"requestId":"r1","reason":"<late> & sorry"}}`},
		{marketKey, `{"event":"x-note","room":"global","payload":{"text":"done"}}`},
	}
	var cancelID string
	for i, s := range steps {
		b.clock.Set(t0.Add(time.Duration(i) * time.Minute))
		r := b.do(t, http.MethodPost, "/api/v1/events", s.body, "X-API-Key", s.key)
		if r.status != http.StatusCreated {
			t.Fatalf("seed %d: %v", i, r)
		}
		if i == 4 {
			cancelID = decode[publishAnswer](t, r).Events[0].ID
		}
	}
	waitAudit(t, b, "", 7)
	return cancelID
}

// waitAudit polls until the audit query sees want events. Audits read only
// below the oldest running transaction, which is cluster-wide: parallel
// tests' transactions delay visibility for a moment.
func waitAudit(t testing.TB, b *testBundle, query string, want int) []eventAnswer {
	t.Helper()
	var got []eventAnswer
	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		got = auditAllHTTP(t, b, query)
		if len(got) < want {
			return fmt.Errorf("audit sees %d events, want %d", len(got), want)
		}
		return nil
	})
	return got
}

// auditAllHTTP follows next until the end.
func auditAllHTTP(t testing.TB, b *testBundle, query string) []eventAnswer {
	t.Helper()
	aud := as(t, "aud", domain.RoleAuditor)
	var out []eventAnswer
	cursor := ""
	for range 100 {
		q := query
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		page := decode[auditAnswer](t, b.get(t, http.StatusOK, "/api/v1/audit/events?"+q, aud...))
		out = append(out, page.Events...)
		if page.Next == nil {
			return out
		}
		cursor = *page.Next
	}
	t.Fatal("paging did not end")
	return nil
}

func TestAuditAPI(t *testing.T) {
	t.Parallel()
	b := setup(t, &setupOptions{noMembership: true})
	cancelID := seedAudit(t, b)
	aud := as(t, "aud", domain.RoleAuditor)
	all := []string{"sellers/1", "buyer-b1/1", "request-r1/1", "request-r2/1", "user-b1/1", "user-s1/1", "global/1"}

	t.Run("Page", func(t *testing.T) {
		t.Parallel()
		q := "contains=" + url.QueryEscape(`{"requestId":"r1"}`) + "&limit=2"
		r := b.get(t, http.StatusOK, "/api/v1/audit/events?"+q, aud...)
		golden(t, "audit_page", r)
		got := roomSeqs(auditAllHTTP(t, b, q))
		if want := []string{"buyer-b1/1", "request-r1/1", "user-b1/1", "user-s1/1"}; !slices.Equal(got, want) {
			t.Fatalf("one request's history: %v, want %v", got, want)
		}
	})

	t.Run("Filters", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name, query string
			want        []string
		}{
			{"All", "limit=3", all},
			{"Room", "room=request-r1", []string{"request-r1/1"}},
			{"Type", "type=delivery-update", []string{"request-r1/1", "request-r2/1"}},
			{"Types", "type=new-offer&type=x-note", []string{"buyer-b1/1", "global/1"}},
			{"Producer", "producer=billing", []string{"request-r1/1", "request-r2/1"}},
			{"EventID", "eventId=" + cancelID, []string{"user-b1/1", "user-s1/1"}},
			{"From", "from=" + url.QueryEscape(t0.Add(4*time.Minute).Format(time.RFC3339Nano)), []string{"user-b1/1", "user-s1/1", "global/1"}},
			{"To", "to=2025-01-02T03:05:05Z", []string{"sellers/1"}},
			{"Window", "from=2025-01-02T03:05:00Z&to=2025-01-02T03:07:00%2B00:00", []string{"buyer-b1/1", "request-r1/1"}},
			{"Contains", "contains=" + url.QueryEscape(`{"requestId":"r2"}`), []string{"request-r2/1"}},
			{"ContainsNested", "contains=" + url.QueryEscape(`{"offer":{"price":"12.50"}}`), []string{"buyer-b1/1"}},
			{"Combined", "producer=market&contains=" + url.QueryEscape(`{"requestId":"r1"}`) + "&room=user-s1", []string{"user-s1/1"}},
			{"Desc", "order=desc&limit=4", []string{"global/1", "user-s1/1", "user-b1/1", "request-r2/1", "request-r1/1", "buyer-b1/1", "sellers/1"}},
			{"InjectionIsData", "contains=" + url.QueryEscape(`{"requestId":"' OR '1'='1"}`), []string{}},
			{"NoMatch", "room=user-nobody", []string{}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				if got := roomSeqs(auditAllHTTP(t, b, tt.query)); !slices.Equal(got, tt.want) {
					t.Errorf("%s: %v, want %v", tt.query, got, tt.want)
				}
			})
		}
	})

	t.Run("EventShape", func(t *testing.T) {
		t.Parallel()
		// The same event shape as catch-up, payload bytes unchanged.
		a := auditAllHTTP(t, b, "room=user-b1")
		c := decode[roomPageAnswer](t, b.get(t, http.StatusOK, "/api/v1/rooms/user-b1/events", aud...))
		ja, _ := json.Marshal(a)
		jc, _ := json.Marshal(c.Events)
		if !bytes.Equal(ja, jc) {
			t.Fatalf("audit %s\ncatch-up %s", ja, jc)
		}
		if string(a[0].Payload) != `{"requestId":"r1","reason":"<late> & sorry"}` || a[0].Producer != "market" || !a[0].At.Equal(t0.Add(4*time.Minute)) {
			t.Fatalf("event %+v", a[0])
		}
	})

	t.Run("Forbidden", func(t *testing.T) {
		t.Parallel()
		golden(t, "audit_forbidden", b.get(t, http.StatusForbidden, "/api/v1/audit/events", as(t, "b1", domain.RoleBuyer, domain.RoleSeller)...))
		b.get(t, http.StatusForbidden, "/api/v1/audit/export", as(t, "b1")...)
		b.get(t, http.StatusForbidden, "/api/v1/audit/rooms/user-b1/verify", as(t, "b1")...)
		b.get(t, http.StatusUnauthorized, "/api/v1/audit/events")
		b.get(t, http.StatusUnauthorized, "/api/v1/audit/export", "X-API-Key", marketKey)
		b.get(t, http.StatusUnauthorized, "/api/v1/audit/rooms/user-b1/verify")
		b.get(t, http.StatusOK, "/api/v1/audit/events", as(t, "root", domain.RoleAdmin)...)
	})

	t.Run("BadParameters", func(t *testing.T) {
		t.Parallel()
		golden(t, "audit_bad_params", b.get(t, http.StatusBadRequest,
			"/api/v1/audit/events?room=nope&limit=0&order=random&requestId=r1", aud...))
		descCursor := *decode[auditAnswer](t, b.get(t, http.StatusOK, "/api/v1/audit/events?order=desc&limit=1", aud...)).Next
		tests := []struct{ query, field string }{
			{"room=" + url.QueryEscape("' OR '1'='1"), "room"},
			{"room=a&room=b", "room"},
			{"room=", "room"},
			{"type=" + url.QueryEscape("x'); DROP TABLE events; --"), "type"},
			{"type=" + strings.Repeat("&type=a", 33)[1:], "type"},
			{"producer=" + url.QueryEscape("' OR 1=1 --"), "producer"},
			{"producer=", "producer"},
			{"eventId=1", "eventId"},
			{"eventId=" + url.QueryEscape("00000000-0000-0000-0000-000000000000' OR '1'='1"), "eventId"},
			{"from=yesterday", "from"},
			{"to=2025-01-02", "to"},
			{"from=2025-01-02T00:00:00Z&to=2025-01-01T00:00:00Z", "to"},
			{"contains=" + url.QueryEscape(`[1]`), "contains"},
			{"contains=" + url.QueryEscape(`{"a":`), "contains"},
			{"contains=" + url.QueryEscape(`{"a":"\u0000"}`), "contains"},
			{"contains=" + url.QueryEscape(`{"a":1e99999}`), "contains"},
			{"contains=" + url.QueryEscape(`{"a":"`+strings.Repeat("x", 5000)+`"}`), "contains"},
			{"contains=pg_sleep(3)", "contains"},
			{"order=" + url.QueryEscape("txid; DROP TABLE events"), "order"},
			{"limit=abc", "limit"},
			{"limit=1001", "limit"},
			{"limit=" + url.QueryEscape("1; SELECT pg_sleep(3)"), "limit"},
			{"cursor=garbage", "cursor"},
			{"cursor=" + descCursor, "cursor"},
			{"sort=id", "sort"},
			{"requestId=r1", "requestId"},
		}
		for _, tt := range tests {
			start := time.Now()
			r := b.get(t, http.StatusBadRequest, "/api/v1/audit/events?"+tt.query, aud...)
			if f := decode[errorAnswer](t, r).fields(); !slices.Contains(f, tt.field) {
				t.Errorf("%s: fields %v, want %s", tt.query, f, tt.field)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("%s took %v", tt.query, d)
			}
		}
		b.get(t, http.StatusBadRequest, "/api/v1/audit/export?format=xml", aud...)
		b.get(t, http.StatusBadRequest, "/api/v1/audit/export?limit=5", aud...)
	})

	t.Run("Export", func(t *testing.T) {
		t.Parallel()
		q := "contains=" + url.QueryEscape(`{"requestId":"r1"}`)
		nd := b.get(t, http.StatusOK, "/api/v1/audit/export?format=ndjson&"+q, aud...)
		golden(t, "audit_export_ndjson", nd)
		var lines []eventAnswer
		for _, l := range bytes.Split(bytes.TrimSuffix(nd.body, []byte("\n")), []byte("\n")) {
			var e eventAnswer
			if err := json.Unmarshal(l, &e); err != nil {
				t.Fatalf("line %s: %v", l, err)
			}
			lines = append(lines, e)
		}
		if got, want := roomSeqs(lines), roomSeqs(auditAllHTTP(t, b, q)); !slices.Equal(got, want) {
			t.Fatalf("ndjson %v, audit %v", got, want)
		}
		cv := b.get(t, http.StatusOK, "/api/v1/audit/export?format=csv&order=desc&"+q, aud...)
		golden(t, "audit_export_csv", cv)
		recs, err := csv.NewReader(bytes.NewReader(cv.body)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 5 || recs[0][0] != "id" || recs[1][1] != "user-s1" || recs[1][6] != `{"requestId":"r1","reason":"<late> & sorry"}` {
			t.Fatalf("csv %q", recs)
		}
		// Default format, whole log.
		if got := bytes.Count(b.get(t, http.StatusOK, "/api/v1/audit/export", aud...).body, []byte("\n")); got != 7 {
			t.Fatalf("export of everything has %d lines", got)
		}
	})

	t.Run("Verify", func(t *testing.T) {
		t.Parallel()
		golden(t, "audit_verify_ok", b.get(t, http.StatusOK, "/api/v1/audit/rooms/request-r1/verify", aud...))
		b.get(t, http.StatusOK, "/api/v1/audit/rooms/user-nobody/verify", as(t, "root", domain.RoleAdmin)...)
		golden(t, "audit_verify_invalid", b.get(t, http.StatusBadRequest, "/api/v1/audit/rooms/nope/verify", aud...))
	})
}

// TestAuditVerifyTampered changes a stored payload behind the log's back
// and checks that verify names the row.
func TestAuditVerifyTampered(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	seedRooms(t, b)
	ctx := context.Background()
	tx, err := b.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SET LOCAL session_replication_role = replica"); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `UPDATE events SET payload = '{"unreadCount":0}' WHERE room = 'user-u1' AND seq = 3`); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	r := b.get(t, http.StatusOK, "/api/v1/audit/rooms/user-u1/verify", as(t, "aud", domain.RoleAuditor)...)
	golden(t, "audit_verify_tampered", r)
	v := decode[struct {
		OK          bool  `json:"ok"`
		FirstBadSeq int64 `json:"firstBadSeq"`
	}](t, r)
	if v.OK || v.FirstBadSeq != 3 {
		t.Fatalf("verify = %+v", v)
	}
}

// TestAuditLateCommitAPI holds one append's transaction open while a later
// event commits, and checks that paging through the API neither shows the
// later event early nor skips the held one.
func TestAuditLateCommitAPI(t *testing.T) {
	t.Parallel()
	b := setup(t, &setupOptions{noMembership: true})
	ctx := context.Background()
	b.publish(t, http.StatusCreated, `{"event":"x-first","room":"global","payload":{}}`)
	waitAudit(t, b, "", 1)
	aud := as(t, "aud", domain.RoleAuditor)
	first := decode[auditAnswer](t, b.get(t, http.StatusOK, "/api/v1/audit/events?limit=1", aud...))
	if first.Next != nil {
		t.Fatalf("first page has next: %+v", first)
	}
	// Page with limit 1 over two events to get a cursor after the first.
	tx, err := b.pool.BeginTx(ctx, pgx.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	if _, err := b.store.AppendTx(ctx, tx, []eventstore.AppendRequest{{
		Type: "x-held", Rooms: []domain.Room{"user-h"}, Payload: json.RawMessage(`{}`), Producer: "outbox",
	}}); err != nil {
		t.Fatal(err)
	}
	b.publish(t, http.StatusCreated, `{"event":"x-later","room":"global","payload":{}}`)
	// While the held transaction runs, nothing after the first event is
	// visible: not even the later event, which has committed.
	page := decode[auditAnswer](t, b.get(t, http.StatusOK, "/api/v1/audit/events", aud...))
	if got := roomSeqs(page.Events); !slices.Equal(got, []string{"global/1"}) {
		t.Fatalf("while held: %v", got)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var events []string
	for _, e := range waitAudit(t, b, "limit=1", 3) {
		events = append(events, e.Event)
	}
	if !slices.Equal(events, []string{"x-first", "x-held", "x-later"}) {
		t.Fatalf("after commit: %v", events)
	}
}

// TestAuditTimeout blocks audit queries behind a table lock: the statement
// timeout answers 503.
func TestAuditTimeout(t *testing.T) {
	t.Parallel()
	b := setup(t, &setupOptions{noMembership: true, config: &httpapi.Config{AuditStatementTimeout: 200 * time.Millisecond}})
	ctx := context.Background()
	lock, err := b.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback(ctx) //nolint:errcheck
	if _, err := lock.Exec(ctx, "LOCK TABLE events IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	aud := as(t, "aud", domain.RoleAuditor)
	start := time.Now()
	golden(t, "audit_timeout", b.get(t, http.StatusServiceUnavailable, "/api/v1/audit/events?type=x-a", aud...))
	b.get(t, http.StatusServiceUnavailable, "/api/v1/audit/export?format=csv", aud...)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("timeouts took %v", d)
	}
}

func TestAuditUnavailable(t *testing.T) {
	t.Parallel()
	b := setup(t, &setupOptions{deadDB: true})
	aud := as(t, "aud", domain.RoleAuditor)
	for _, path := range []string{"/api/v1/audit/events", "/api/v1/audit/export", "/api/v1/audit/rooms/user-u1/verify"} {
		r := b.get(t, http.StatusServiceUnavailable, path, aud...)
		if r.header.Get("Retry-After") != "2" {
			t.Errorf("%s: Retry-After %q", path, r.header.Get("Retry-After"))
		}
	}
}

// failingAudit is the real store with Audit failing from call failFrom on.
type failingAudit struct {
	httpapi.Store
	armed    atomic.Bool // count and fail only while armed
	calls    atomic.Int32
	failFrom int32
}

func (f *failingAudit) Audit(ctx context.Context, q eventstore.AuditQuery) (eventstore.AuditPage, error) {
	if f.armed.Load() && f.calls.Add(1) >= f.failFrom {
		return eventstore.AuditPage{}, &domain.Error{Code: domain.CodeUnavailable, Message: "database unavailable", Err: errBoom}
	}
	return f.Store.Audit(ctx, q)
}

// TestExportAbortsMidStream fails the export's second page: the answer has
// started, so the server ends NDJSON with an error line and aborts the
// connection, and the client sees a broken transfer, not a complete one.
func TestExportAbortsMidStream(t *testing.T) {
	t.Parallel()
	fail := &failingAudit{failFrom: 2}
	b := setup(t, &setupOptions{
		noMembership: true,
		config:       &httpapi.Config{ExportPageRows: 2},
		wrap:         func(s httpapi.Store) httpapi.Store { fail.Store = s; return fail },
	})
	b.publish(t, http.StatusCreated, `{"events":[`+strings.Repeat(`{"event":"x-a","room":"global","payload":{}},`, 4)+`{"event":"x-a","room":"global","payload":{}}]}`)
	for _, format := range []string{"ndjson", "csv"} {
		fail.armed.Store(false) // let the wait below through, however long it polls
		waitAudit(t, b, "", 5)
		fail.calls.Store(0)
		fail.armed.Store(true)
		req, err := http.NewRequest(http.MethodGet, b.srv.URL+"/api/v1/audit/export?format="+format, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token(t, "aud", domain.RoleAuditor))
		res, err := b.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("%s: status %d, read error %v, want 200 and a broken transfer", format, res.StatusCode, err)
		}
		lines := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
		switch format {
		case "ndjson":
			if len(lines) != 3 || lines[2] != `{"error":{"code":"unavailable","message":"database unavailable"}}` {
				t.Fatalf("ndjson body:\n%s", body)
			}
		case "csv":
			if len(lines) != 3 { // header and the first page
				t.Fatalf("csv body:\n%s", body)
			}
		}
	}
	if !strings.Contains(b.logged(), "export failed after it started") {
		t.Fatalf("abort not logged:\n%s", b.logged())
	}
}
