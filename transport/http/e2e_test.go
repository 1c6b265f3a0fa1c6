package httpapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"testing"

	"github.com/roomlog/roomlog/domain"
)

// TestEndToEnd publishes one purchase's life through the producer API and
// reads the same events back through single-room catch-up, multi-room
// catch-up, the audit API and its export, then verifies the chains.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)

	// Producers publish. Each published (room, seq) is remembered with its
	// event id.
	published := map[string]string{} // "room/seq" -> event id
	pub := func(key, body string) {
		t.Helper()
		r := b.do(t, http.MethodPost, "/api/v1/events", body, "X-API-Key", key)
		if r.status != http.StatusCreated {
			t.Fatalf("publish %s: %v", body, r)
		}
		for _, e := range decode[publishAnswer](t, r).Events {
			for _, d := range e.Deliveries {
				published[fmt.Sprintf("%s/%d", d.Room, d.Seq)] = e.ID
			}
		}
	}
	pub(marketKey, `{"event":"new-purchase-request","rooms":["sellers","global"],"id":"pr-r1","payload":{"_id":"r1","buyerId":"b1","title":"bike"}}`)
	pub(marketKey, `{"event":"new-offer","room":"buyer-b1","payload":{"requestId":"r1","sellerId":"s1","offer":{"price":"90"}}}`)
	pub(billingKey, `{"events":[
		{"event":"purchase-request-update","room":"request-r1","payload":{"type":"status_changed","requestId":"r1","status":"paid"}},
		{"event":"transaction-completed","rooms":["user-b1","user-s1"],"payload":{"requestId":"r1","paymentId":"p1","amount":"90.00","currency":"EUR"}},
		{"event":"room-member-added","room":"chat-c1","payload":{"userId":"b1"}}]}`)
	pub(marketKey, `{"event":"new-message","room":"chat-c1","payload":{"chatId":"c1","senderId":"s1","message":{"_id":"m1","content":"shipped!","senderId":"s1","createdAt":"2025-01-01T00:00:00Z"}}}`)
	pub(marketKey, `{"event":"delivery-confirmed","room":"request-r1","payload":{"requestId":"r1"}}`)

	// The buyer catches up. Membership of request-r1 comes from the
	// purchase request itself, of chat-c1 from the grant.
	b.waitMember(t, "request-r1", "b1", true)
	b.waitMember(t, "chat-c1", "b1", true)
	buyer := as(t, "b1", domain.RoleBuyer)
	read := map[string]string{}
	check := func(source string, es []eventAnswer) {
		t.Helper()
		for _, e := range es {
			k := fmt.Sprintf("%s/%d", e.Room, e.Seq)
			if published[k] != e.ID {
				t.Errorf("%s: %s is %s, published as %s", source, k, e.ID, published[k])
			}
			read[k] = e.ID
		}
	}
	single := decode[roomPageAnswer](t, b.get(t, http.StatusOK, "/api/v1/rooms/request-r1/events", buyer...))
	check("room", single.Events)
	if single.Head != 2 || len(single.Events) != 2 {
		t.Fatalf("request-r1: %+v", single)
	}

	multi := decode[catchUpAnswer](t, b.do(t, http.MethodPost, "/api/v1/catch-up",
		`{"cursors":{"request-r1":0,"buyer-b1":0,"user-b1":0,"chat-c1":0,"global":0,"sellers":0,"user-s1":0}}`, buyer...))
	readable := 0
	for _, raw := range multi.Rooms {
		var p roomPageAnswer
		if err := json.Unmarshal(raw, &p); err != nil {
			t.Fatal(err)
		}
		if p.Events == nil && !bytes.Contains(raw, []byte(`"events"`)) {
			continue // sellers and user-s1: not the buyer's
		}
		readable++
		if p.Reset || p.More {
			t.Errorf("%s: %+v", p.Room, p)
		}
		check("catch-up", p.Events)
	}
	if readable != 5 {
		t.Fatalf("buyer read %d rooms, want 5: %s", readable, multi.Rooms)
	}
	want := []string{"buyer-b1/1", "chat-c1/1", "chat-c1/2", "global/1", "request-r1/1", "request-r1/2", "user-b1/1"}
	if got := sortedKeys(read); !slices.Equal(got, want) {
		t.Fatalf("the buyer read %v, want %v", got, want)
	}

	// The auditor finds the purchase's whole history by its request id,
	// across every room, in the order it was logged.
	hist := waitAudit(t, b, "contains="+url.QueryEscape(`{"requestId":"r1"}`)+"&limit=2", 5)
	check("audit", hist)
	if got := roomSeqs(hist); !slices.Equal(got, []string{"buyer-b1/1", "request-r1/1", "user-b1/1", "user-s1/1", "request-r1/2"}) {
		t.Fatalf("history %v", got)
	}
	aud := as(t, "aud", domain.RoleAuditor)
	all := waitAudit(t, b, "limit=3", len(published))
	check("audit all", all)
	if len(all) != len(published) {
		t.Fatalf("audit saw %d rows, %d published", len(all), len(published))
	}
	nd := b.get(t, http.StatusOK, "/api/v1/audit/export?format=ndjson", aud...)
	var exported []eventAnswer
	for _, l := range bytes.Split(bytes.TrimSpace(nd.body), []byte("\n")) {
		var e eventAnswer
		if err := json.Unmarshal(l, &e); err != nil {
			t.Fatal(err)
		}
		exported = append(exported, e)
	}
	check("export", exported)
	if !slices.Equal(roomSeqs(exported), roomSeqs(all)) {
		t.Fatalf("export %v, audit %v", roomSeqs(exported), roomSeqs(all))
	}
	for _, room := range []string{"request-r1", "chat-c1", "user-b1", "global"} {
		v := decode[struct {
			OK      bool  `json:"ok"`
			Checked int64 `json:"checked"`
		}](t, b.get(t, http.StatusOK, "/api/v1/audit/rooms/"+room+"/verify", aud...))
		if !v.OK || v.Checked == 0 {
			t.Errorf("verify %s: %+v", room, v)
		}
	}
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
