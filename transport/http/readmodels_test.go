package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/projector"
	"github.com/roomlog/roomlog/transport/auth"
	httpapi "github.com/roomlog/roomlog/transport/http"
)

// The store satisfies the read-model routes' consumer-side interface.
var _ httpapi.ReadModels = (*eventstore.Store)(nil)

// setupReadModels is setup with Params.ReadModels set: readModels(b)
// builds it (nil: the bundle's store, with every projection running
// through a projector.Registry; a nil result leaves the field nil). The
// bundle's srv and api are replaced by the new server; the registry is nil
// unless the projections run.
func setupReadModels(t *testing.T, o *setupOptions, readModels func(b *testBundle) httpapi.ReadModels) (*testBundle, *projector.Registry) {
	t.Helper()
	if o == nil {
		o = &setupOptions{}
	}
	// The Registry runs the membership projection with the others.
	o.noMembership = true
	b := setup(t, o)
	logger := slog.New(logHandler{t: t, mu: &b.logMu, lines: &b.logs})
	var rm httpapi.ReadModels
	var reg *projector.Registry
	if readModels != nil {
		rm = readModels(b)
	} else {
		rm = b.store
		if !o.deadDB {
			var err error
			reg, err = projector.NewRegistry(projector.RegistryConfig{Store: b.store, BatchSize: 7, PollInterval: 20 * time.Millisecond, Logger: logger})
			if err != nil {
				t.Fatal(err)
			}
			if err := reg.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(reg.Stop)
		}
	}
	verifier, err := auth.NewVerifier(auth.Config{HSSecret: []byte(jwtSecret)})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := auth.ParseAPIKeys("market:" + marketKey + ",billing:" + billingKey)
	if err != nil {
		t.Fatal(err)
	}
	b.api, err = httpapi.NewServer(httpapi.Params{
		Store:      b.store,
		Users:      auth.Authenticator{Verifier: verifier},
		Producers:  keys,
		ReadModels: rm,
		Logger:     logger,
		Config:     o.config,
	})
	if err != nil {
		t.Fatal(err)
	}
	b.srv = httptest.NewServer(b.api.Handler())
	t.Cleanup(b.srv.Close)
	return b, reg
}

// projected waits until every projection has a checkpoint and nothing is
// pending after it.
func projected(t *testing.T, reg *projector.Registry) {
	t.Helper()
	checkFor(t, 30*time.Second, 10*time.Millisecond, func() error {
		reg.Wake()
		sts, err := reg.Status(context.Background())
		if err != nil {
			return err
		}
		for _, st := range sts {
			if !st.Saved || st.Pending != 0 {
				return fmt.Errorf("projection %s: saved %v, %d pending", st.Name, st.Saved, st.Pending)
			}
		}
		return nil
	})
}

// marketScenario publishes the spec's events through the API, one minute
// apart on the log's clock, and remembers named instants.
type marketScenario struct {
	t   *testing.T
	b   *testBundle
	now time.Time
	at  map[string]time.Time
}

func newMarketScenario(t *testing.T, b *testBundle) *marketScenario {
	return &marketScenario{t: t, b: b, now: t0, at: map[string]time.Time{}}
}

// pub publishes one event a minute after the previous one; mark, if set,
// names that instant.
func (sc *marketScenario) pub(mark, typ, payload string, rooms ...string) {
	sc.t.Helper()
	rs, err := json.Marshal(rooms)
	if err != nil {
		sc.t.Fatal(err)
	}
	sc.now = sc.now.Add(time.Minute)
	sc.b.clock.Set(sc.now)
	sc.b.publish(sc.t, http.StatusCreated, fmt.Sprintf(`{"event":%q,"rooms":%s,"payload":%s}`, typ, rs, payload))
	if mark != "" {
		sc.at[mark] = sc.now
	}
}

// marketplace publishes realistic sequences of the spec's events: a
// purchase request from creation through offers, acceptance, payment and
// delivery to confirmation and completion, with the notifications and
// unread-count updates around it; a cancelled request; a template checkout
// that fails and then pays for two requests; a chat whose participants
// change.
func (sc *marketScenario) marketplace() {
	sc.at["start"] = sc.now
	sc.pub("created", "new-purchase-request", `{"_id":"r1","buyerId":"b1","title":"Desk lamp","budget":"40"}`, "sellers")
	sc.pub("", "new-notification", `{"notification":{"_id":"n1","type":"request","title":"New request","body":"Desk lamp","createdAt":"2025-01-02T03:05:05Z"}}`, "user-s1", "user-s2")
	sc.pub("", "new-offer", `{"requestId":"r1","sellerId":"s1","offer":{"_id":"o1","price":"35.00"}}`, "buyer-b1")
	sc.pub("", "new-notification", `{"notification":{"_id":"n2","type":"offer","title":"New offer","body":"35.00","data":{"requestId":"r1"},"createdAt":"2025-01-02T03:07:05Z"}}`, "user-b1")
	sc.pub("offered", "new-offer", `{"requestId":"r1","sellerId":"s2","offer":{"_id":"o2","price":"38.00"}}`, "buyer-b1")
	sc.pub("", "new-notification", `{"notification":{"_id":"n3","type":"offer","title":"New offer","body":"38.00","createdAt":"2025-01-02T03:09:05Z"}}`, "user-b1")
	sc.pub("inboxRead", "unread-count-update", `{"unreadCount":0}`, "user-b1") // b1 opened the inbox
	sc.pub("", "seller-offer-update", `{"sellerId":"s2","requestId":"r1","eventType":"offer-rejected","data":{"offerId":"o2","isSelected":false,"reason":"another offer accepted"}}`, "seller-s2")
	sc.pub("accepted", "seller-offer-update", `{"sellerId":"s1","requestId":"r1","eventType":"offer-accepted","data":{"offerId":"o1","isSelected":true}}`, "seller-s1")
	sc.pub("", "new-notification", `{"notification":{"_id":"n4","type":"offer","title":"Offer accepted","body":"","createdAt":"2025-01-02T03:13:05Z"}}`, "user-s1")
	sc.pub("paymentCreated", "payment-created", `{"paymentId":"pay_1","provider":"shkeeper","requestId":"r1","buyerId":"b1","sellerId":"s1","amount":"35.00","currency":"USDT"}`, "global")
	sc.pub("paymentPending", "payment-update", `{"paymentId":"pay_1","status":"pending"}`, "global")
	sc.pub("paymentConfirmed", "payment-update", `{"paymentId":"pay_1","status":"confirmed","escrowState":"held","txHash":"0xfeed"}`, "global", "request-r1")
	sc.pub("", "payment-received", `{"purchaseRequestId":"r1","amount":"35.00","currency":"USDT","buyerId":"b1"}`, "user-s1")
	sc.pub("paid", "seller-offer-update", `{"sellerId":"s1","requestId":"r1","eventType":"payment-completed","data":{"offerId":"o1","isSelected":true,"paymentId":"pay_1","transactionHash":"0xfeed"}}`, "seller-s1")
	sc.pub("", "purchase-request-update", `{"type":"status_changed","requestId":"r1","status":"paid","paymentId":"pay_1","provider":"shkeeper"}`, "request-r1")
	sc.pub("", "delivery-code-generated", `{"requestId":"r1","deliveryCode":"918273"}`, "request-r1")
	sc.pub("shipped", "delivery-update", `{"requestId":"r1","status":"shipped","carrier":"DHL","trackingNumber":"JD014600"}`, "request-r1")
	sc.pub("", "new-notification", `{"notification":{"_id":"n5","type":"delivery","title":"Shipped","body":"DHL JD014600","createdAt":"2025-01-02T03:22:05Z"}}`, "user-b1")
	sc.pub("", "delivery-confirmed", `{"requestId":"r1"}`, "request-r1")
	sc.pub("delivered", "buyer-confirmed-delivery", `{"requestId":"r1","buyerId":"b1"}`, "user-s1")
	sc.pub("completed", "transaction-completed", `{"requestId":"r1","paymentId":"pay_1","amount":"35.00","currency":"USDT"}`, "user-b1", "user-s1")

	sc.pub("", "new-purchase-request", `{"_id":"r2","buyerId":"b2"}`, "sellers")
	sc.pub("r2cancelled", "request-cancelled", `{"requestId":"r2","reason":"found elsewhere"}`, "user-b2")

	sc.pub("checkoutPending", "template-checkout-payment-pending", `{"checkoutId":"t1"}`, "global")
	sc.pub("checkoutFailed", "template-checkout-payment-failed", `{"checkoutId":"t1","reason":"expired"}`, "global")
	sc.pub("checkoutConfirmed", "template-checkout-payment-confirmed", `{"checkoutId":"t1","requestIds":["r3","r4"],"paymentId":"pay_2"}`, "global", "template-checkout-t1")

	sc.pub("chatOpened", "participants-added", `{"chatId":"c1","addedUserIds":["b1","s1","support"]}`, "chat-c1")
	sc.pub("", "new-message", `{"chatId":"c1","senderId":"b1","message":{"_id":"m1","content":"Is it still available?","senderId":"b1","createdAt":"2025-01-02T03:33:05Z"}}`, "chat-c1")
	sc.pub("", "new-message", `{"chatId":"c1","senderId":"s1","message":{"_id":"m2","content":"Yes","senderId":"s1","createdAt":"2025-01-02T03:34:05Z"}}`, "chat-c1")
	sc.pub("chatRead", "messages-read", `{"chatId":"c1","userId":"b1","upToMessageId":"m2","modifiedCount":1}`, "chat-c1")
	sc.pub("", "message-edited", `{"chatId":"c1","messageId":"m2","content":"Yes, it is","editedAt":"2025-01-02T03:36:05Z"}`, "chat-c1")
	sc.pub("chatClosed", "participant-removed", `{"chatId":"c1","removedUserId":"support"}`, "chat-c1")
	sc.pub("", "new-notification", `{"notification":{"_id":"n6","type":"chat","title":"New message","body":"Yes","createdAt":"2025-01-02T03:38:05Z"}}`, "user-b1")
}

// marketUnread is what the marketplace's notifications leave: b1's inbox
// was emptied by unread-count-update after n2 and n3, then n5 and n6
// arrived; s1 has n1 and n4; s2 has n1; b2 and nobody were never notified;
// messages-read is a chat receipt and changes nothing.
var marketUnread = map[string]int64{"b1": 2, "s1": 2, "s2": 1, "b2": 0, "nobody": 0}

// entityAnswer is GET /api/v1/audit/entities/{kind}/{id} as a client
// decodes it; state stays raw for exact comparison.
type entityAnswer struct {
	Entity struct {
		Kind string `json:"kind"`
		ID   string `json:"id"`
	} `json:"entity"`
	At     time.Time       `json:"at"`
	Events []eventAnswer   `json:"events"`
	More   bool            `json:"more"`
	State  json.RawMessage `json:"state"`
}

func entityPath(kind, id string, at time.Time) string {
	p := "/api/v1/audit/entities/" + kind + "/" + url.PathEscape(id)
	if !at.IsZero() {
		p += "?at=" + url.QueryEscape(at.Format(time.RFC3339Nano))
	}
	return p
}

// storeEntity is what the store says about an entity as of at: its
// deliveries as the API shows them and its folded state as JSON.
func storeEntity(t *testing.T, s *eventstore.Store, kind domain.EntityKind, id string, at time.Time) ([]string, string) {
	t.Helper()
	ctx := context.Background()
	ref := domain.EntityRef{Kind: kind, ID: id}
	var rows []string
	for d, err := range s.EntityHistory(ctx, ref, at) {
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, fmt.Sprintf("%s %s/%d %s", d.ID, d.Room, d.Seq, d.Type))
	}
	st, err := s.EntityState(ctx, ref, at)
	if err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	return rows, string(j)
}

func answerRows(es []eventAnswer) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = fmt.Sprintf("%s %s/%d %s", e.ID, e.Room, e.Seq, e.Event)
	}
	return out
}

// compactJSON re-encodes raw compactly, for comparing documents.
func compactJSON(t *testing.T, raw []byte) string {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	return buf.String()
}

// TestReadModelsAPI publishes the marketplace scenario through the API,
// runs every projection and reads the unread counts and the entities'
// histories and states at several instants.
func TestReadModelsAPI(t *testing.T) {
	t.Parallel()
	b, reg := setupReadModels(t, nil, nil)
	sc := newMarketScenario(t, b)
	sc.marketplace()
	projected(t, reg)
	aud := as(t, "aud", domain.RoleAuditor)

	t.Run("UnreadCount", func(t *testing.T) {
		t.Parallel()
		for user, want := range marketUnread {
			v1 := b.get(t, http.StatusOK, "/api/v1/notifications/unread-count", as(t, user, domain.RoleBuyer)...)
			spec := b.get(t, http.StatusOK, "/api/notifications/unread-count", as(t, user)...)
			if got := decode[map[string]int64](t, v1)["unreadCount"]; got != want {
				t.Errorf("%s: unreadCount %d, want %d", user, got, want)
			}
			if !bytes.Equal(v1.body, spec.body) {
				t.Errorf("%s: the spec's path answers %s, /api/v1 %s", user, spec.body, v1.body)
			}
			if user == "b1" {
				golden(t, "unread_count", v1)
			}
		}
		// The count is the caller's own: there is no parameter to name
		// another user.
		r := b.get(t, http.StatusOK, "/api/v1/notifications/unread-count?user=b1", as(t, "s2")...)
		if got := decode[map[string]int64](t, r)["unreadCount"]; got != 1 {
			t.Errorf("s2 asking for b1 got %d, want s2's own 1", got)
		}
	})

	t.Run("UnreadUnauthorized", func(t *testing.T) {
		t.Parallel()
		for _, path := range []string{"/api/v1/notifications/unread-count", "/api/notifications/unread-count"} {
			r := b.get(t, http.StatusUnauthorized, path)
			if r.header.Get("WWW-Authenticate") != "Bearer" || decode[errorAnswer](t, r).Error.Code != "unauthorized" {
				t.Errorf("%s: %v %v", path, r, r.header)
			}
			b.get(t, http.StatusUnauthorized, path, "Authorization", "Bearer not-a-jwt")
			b.get(t, http.StatusUnauthorized, path, "X-API-Key", marketKey)
		}
	})

	t.Run("StateMatchesTheFold", func(t *testing.T) {
		t.Parallel()
		// Every entity at every instant: the API lists exactly the store's
		// history and folds exactly the store's state.
		entities := []struct {
			kind domain.EntityKind
			id   string
		}{
			{domain.EntityRequest, "r1"}, {domain.EntityRequest, "r2"}, {domain.EntityRequest, "r3"},
			{domain.EntityPayment, "pay_1"}, {domain.EntityPayment, "pay_2"},
			{domain.EntityTemplateCheckout, "t1"}, {domain.EntityChat, "c1"},
		}
		instants := []string{"start", "created", "offered", "accepted", "paymentConfirmed", "paid", "completed", "r2cancelled", "checkoutFailed", "checkoutConfirmed", "chatRead", "chatClosed"}
		for _, e := range entities {
			for _, mark := range instants {
				at := sc.at[mark]
				r := decode[entityAnswer](t, b.get(t, http.StatusOK, entityPath(string(e.kind), e.id, at), aud...))
				rows, state := storeEntity(t, b.store, e.kind, e.id, at)
				if got := answerRows(r.Events); !slices.Equal(got, rows) {
					t.Errorf("%s/%s at %s: events\n%v\nwant\n%v", e.kind, e.id, mark, got, rows)
				}
				if got := compactJSON(t, r.State); got != state {
					t.Errorf("%s/%s at %s: state\n%s\nwant\n%s", e.kind, e.id, mark, got, state)
				}
				if r.Entity.Kind != string(e.kind) || r.Entity.ID != e.id || !r.At.Equal(at) || r.More {
					t.Errorf("%s/%s at %s: entity %+v at %v more %v", e.kind, e.id, mark, r.Entity, r.At, r.More)
				}
				for _, ev := range r.Events {
					if ev.At.After(at) {
						t.Errorf("%s/%s at %s lists %s from %v", e.kind, e.id, mark, ev.Event, ev.At)
					}
				}
			}
		}
	})

	t.Run("RequestAtInstants", func(t *testing.T) {
		t.Parallel()
		type offer struct {
			OfferID string `json:"offerId"`
			Status  string `json:"status"`
		}
		type request struct {
			Phase           string  `json:"phase"`
			Offers          []offer `json:"offers"`
			AcceptedOfferID string  `json:"acceptedOfferId"`
			Payments        []struct {
				PaymentID string `json:"paymentId"`
				Status    string `json:"status"`
			} `json:"payments"`
			Delivery struct {
				Status string `json:"status"`
			} `json:"delivery"`
			Events int `json:"events"`
		}
		tests := []struct {
			at, phase, offers, accepted, payment, delivery string
			deliveries                                     int
		}{
			{"start", "", "[]", "", "", "", 0},
			{"created", "open", "[]", "", "", "", 1},
			{"offered", "offered", "[o1:pending o2:pending]", "", "", "", 3},
			{"accepted", "accepted", "[o1:accepted o2:rejected]", "o1", "", "", 5},
			{"paymentCreated", "accepted", "[o1:accepted o2:rejected]", "o1", "pay_1:created", "", 6},
			{"paymentPending", "accepted", "[o1:accepted o2:rejected]", "o1", "pay_1:pending", "", 7},
			// Sent to global and request-r1: two deliveries, one event.
			{"paymentConfirmed", "accepted", "[o1:accepted o2:rejected]", "o1", "pay_1:confirmed", "", 9},
			{"paid", "paid", "[o1:accepted o2:rejected]", "o1", "pay_1:confirmed", "", 11},
			{"shipped", "paid", "[o1:accepted o2:rejected]", "o1", "pay_1:confirmed", "shipped", 14},
			{"delivered", "delivered", "[o1:accepted o2:rejected]", "o1", "pay_1:confirmed", "shipped", 16},
			{"completed", "completed", "[o1:accepted o2:rejected]", "o1", "pay_1:confirmed", "shipped", 18},
		}
		for _, tt := range tests {
			r := decode[entityAnswer](t, b.get(t, http.StatusOK, entityPath("request", "r1", sc.at[tt.at]), aud...))
			var st request
			if err := json.Unmarshal(r.State, &st); err != nil {
				t.Fatal(err)
			}
			offers := []string{}
			for _, o := range st.Offers {
				offers = append(offers, o.OfferID+":"+o.Status)
			}
			var payment string
			if len(st.Payments) > 0 {
				payment = st.Payments[0].PaymentID + ":" + st.Payments[0].Status
			}
			got := fmt.Sprint(st.Phase, " ", offers, " ", st.AcceptedOfferID, " ", payment, " ", st.Delivery.Status, " ", len(r.Events))
			want := fmt.Sprint(tt.phase, " ", tt.offers, " ", tt.accepted, " ", tt.payment, " ", tt.delivery, " ", tt.deliveries)
			if got != want {
				t.Errorf("r1 at %s: %s, want %s", tt.at, got, want)
			}
		}
		r2 := decode[entityAnswer](t, b.get(t, http.StatusOK, entityPath("request", "r2", time.Time{}), aud...))
		before := decode[entityAnswer](t, b.get(t, http.StatusOK, entityPath("request", "r2", sc.at["r2cancelled"].Add(-time.Microsecond)), aud...))
		if !strings.Contains(string(r2.State), `"phase":"cancelled"`) || !strings.Contains(string(r2.State), `"cancelReason":"found elsewhere"`) ||
			!strings.Contains(string(before.State), `"phase":"open"`) {
			t.Errorf("r2 now %s\nbefore its cancellation %s", r2.State, before.State)
		}
	})

	t.Run("Golden", func(t *testing.T) {
		t.Parallel()
		golden(t, "entity_request", b.get(t, http.StatusOK, entityPath("request", "r1", sc.at["completed"]), aud...))
		golden(t, "entity_payment", b.get(t, http.StatusOK, entityPath("payment", "pay_1", sc.at["paymentConfirmed"]), aud...))
		golden(t, "entity_checkout", b.get(t, http.StatusOK, entityPath("template-checkout", "t1", sc.at["checkoutConfirmed"]), aud...))
		golden(t, "entity_chat", b.get(t, http.StatusOK, entityPath("chat", "c1", sc.at["chatClosed"]), aud...))
		// An entity the log never mentioned: no events, an empty state.
		golden(t, "entity_unknown", b.get(t, http.StatusOK, entityPath("request", "never", sc.at["completed"]), aud...))
	})

	t.Run("DefaultAtIsNow", func(t *testing.T) {
		t.Parallel()
		before := time.Now().Add(-time.Millisecond)
		r := decode[entityAnswer](t, b.get(t, http.StatusOK, "/api/v1/audit/entities/chat/c1", as(t, "root", domain.RoleAdmin)...))
		if r.At.Before(before) || r.At.After(time.Now()) || r.At.Location() != time.UTC {
			t.Errorf("at %v, want the time of the request", r.At)
		}
		explicit := decode[entityAnswer](t, b.get(t, http.StatusOK, entityPath("chat", "c1", r.At), aud...))
		if !slices.Equal(answerRows(r.Events), answerRows(explicit.Events)) || !bytes.Equal(r.State, explicit.State) {
			t.Errorf("default at %s\nexplicit %s", r.State, explicit.State)
		}
		if len(r.Events) != 6 || !strings.Contains(string(r.State), `"members":["b1","s1"]`) {
			t.Errorf("c1 now: %d events, %s", len(r.Events), r.State)
		}
		// Offsets are converted; the instant is the same.
		local := sc.at["chatRead"].In(time.FixedZone("", -5*3600)).Format(time.RFC3339)
		r = decode[entityAnswer](t, b.get(t, http.StatusOK, "/api/v1/audit/entities/chat/c1?at="+url.QueryEscape(local), aud...))
		if !r.At.Equal(sc.at["chatRead"].Truncate(time.Second)) || len(r.Events) != 3 {
			t.Errorf("at %s: %v, %d events", local, r.At, len(r.Events))
		}
	})

	t.Run("EventShape", func(t *testing.T) {
		t.Parallel()
		// The same event objects as audit and catch-up, byte for byte.
		r := b.get(t, http.StatusOK, entityPath("payment", "pay_1", time.Time{}), aud...)
		var raw struct {
			Events []json.RawMessage `json:"events"`
		}
		if err := json.Unmarshal(r.body, &raw); err != nil {
			t.Fatal(err)
		}
		evs := decode[entityAnswer](t, r).Events
		// payment-created, two payment-updates (one to two rooms), the
		// payment-completed offer update, purchase-request-update and
		// transaction-completed (two rooms).
		if len(evs) != 8 {
			t.Fatalf("pay_1: %d events", len(evs))
		}
		for i, e := range evs {
			a := b.get(t, http.StatusOK, "/api/v1/audit/events?eventId="+e.ID+"&room="+e.Room, aud...)
			var page struct {
				Events []json.RawMessage `json:"events"`
			}
			if err := json.Unmarshal(a.body, &page); err != nil || len(page.Events) != 1 {
				t.Fatalf("audit %s: %s", e.ID, a.body)
			}
			if !bytes.Equal(page.Events[0], raw.Events[i]) {
				t.Errorf("entity event %s\naudit event  %s", raw.Events[i], page.Events[0])
			}
		}
	})

	t.Run("BadParameters", func(t *testing.T) {
		t.Parallel()
		golden(t, "entity_bad_params", b.get(t, http.StatusBadRequest,
			"/api/v1/audit/entities/order/r1?at=yesterday&requestId=r1", aud...))
		tests := []struct{ path, field string }{
			{"/api/v1/audit/entities/requests/r1", "kind"},
			{"/api/v1/audit/entities/REQUEST/r1", "kind"},
			{"/api/v1/audit/entities/request/", "id"},
			{"/api/v1/audit/entities/request/r%201", "id"},
			{"/api/v1/audit/entities/request/r1/offers", "id"},
			{"/api/v1/audit/entities/chat/" + strings.Repeat("c", 65), "id"},
			{"/api/v1/audit/entities/chat/" + url.PathEscape("c1' OR '1'='1"), "id"},
			{"/api/v1/audit/entities/payment/" + strings.Repeat("p", 201), "id"},
			{"/api/v1/audit/entities/request/r1?at=2025-01-02", "at"},
			{"/api/v1/audit/entities/request/r1?at=", "at"},
			{"/api/v1/audit/entities/request/r1?at=0001-01-01T00:00:00Z", "at"},
			{"/api/v1/audit/entities/request/r1?at=2025-01-02T00:00:00Z&at=2025-01-03T00:00:00Z", "at"},
			{"/api/v1/audit/entities/request/r1?limit=5", "limit"},
		}
		for _, tt := range tests {
			r := b.get(t, http.StatusBadRequest, tt.path, aud...)
			if f := decode[errorAnswer](t, r).fields(); !slices.Contains(f, tt.field) {
				t.Errorf("%s: fields %v, want %s", tt.path, f, tt.field)
			}
		}
		// A 200-byte payment id of any bytes is fine.
		b.get(t, http.StatusOK, "/api/v1/audit/entities/payment/"+url.PathEscape(strings.Repeat("ü", 100)), aud...)
	})

	t.Run("Forbidden", func(t *testing.T) {
		t.Parallel()
		path := entityPath("request", "r1", time.Time{})
		r := b.get(t, http.StatusForbidden, path, as(t, "b1", domain.RoleBuyer, domain.RoleSeller)...)
		if decode[errorAnswer](t, r).Error.Code != "forbidden" {
			t.Errorf("%v", r)
		}
		b.get(t, http.StatusUnauthorized, path)
		b.get(t, http.StatusUnauthorized, path, "X-API-Key", marketKey)
		// Authorization comes before parameters: a buyer learns nothing
		// about what a valid query looks like.
		b.get(t, http.StatusForbidden, "/api/v1/audit/entities/nope/r1?at=x", as(t, "b1")...)
		b.get(t, http.StatusOK, path, as(t, "root", domain.RoleAdmin)...)
	})
}

// TestUnreadCountFollowsTheLog checks the count after each step of a
// user's notifications: increments, the notification service's reset,
// a chat read receipt and other events to the user's room that change
// nothing, and one event to two users.
func TestUnreadCountFollowsTheLog(t *testing.T) {
	t.Parallel()
	b, reg := setupReadModels(t, nil, nil)
	notification := func(id string) string {
		return `{"notification":{"_id":"` + id + `","type":"offer","title":"New offer","body":"","createdAt":"2025-01-02T03:04:05Z"}}`
	}
	steps := []struct {
		name, body string
		want       map[string]int64
	}{
		{"Nothing", "", map[string]int64{"u1": 0, "u2": 0}},
		{"First", `{"event":"new-notification","room":"user-u1","payload":` + notification("n1") + `}`, map[string]int64{"u1": 1, "u2": 0}},
		{"TwoMore", `{"events":[{"event":"new-notification","room":"user-u1","payload":` + notification("n2") + `},{"event":"new-notification","room":"user-u1","payload":` + notification("n3") + `}]}`, map[string]int64{"u1": 3}},
		{"ServiceSetsCount", `{"event":"unread-count-update","room":"user-u1","payload":{"unreadCount":1}}`, map[string]int64{"u1": 1}},
		{"ChatReceiptIgnored", `{"event":"messages-read","room":"chat-c1","payload":{"chatId":"c1","userId":"u1","upToMessageId":"m9","modifiedCount":4}}`, map[string]int64{"u1": 1}},
		{"OtherEventsIgnored", `{"event":"level-up","room":"user-u1","payload":{"oldLevel":1,"newLevel":2,"lifetimePoints":120,"perks":[]}}`, map[string]int64{"u1": 1, "u2": 0}},
		{"TwoUsers", `{"event":"new-notification","rooms":["user-u1","user-u2"],"payload":` + notification("n5") + `}`, map[string]int64{"u1": 2, "u2": 1}},
		{"AllRead", `{"event":"unread-count-update","room":"user-u1","payload":{"unreadCount":0}}`, map[string]int64{"u1": 0, "u2": 1}},
	}
	for _, st := range steps {
		if st.body != "" {
			b.publish(t, http.StatusCreated, st.body)
			projected(t, reg)
		}
		for user, want := range st.want {
			r := b.get(t, http.StatusOK, "/api/notifications/unread-count", as(t, user)...)
			if got := decode[map[string]int64](t, r)["unreadCount"]; got != want {
				t.Errorf("%s: %s has %d unread, want %d", st.name, user, got, want)
			}
		}
	}
}

// TestReadModelsUnavailable points the read models at a database that is
// down: 503 with Retry-After.
func TestReadModelsUnavailable(t *testing.T) {
	t.Parallel()
	b, _ := setupReadModels(t, &setupOptions{deadDB: true}, nil)
	r := b.get(t, http.StatusServiceUnavailable, "/api/v1/notifications/unread-count", as(t, "u1")...)
	if r.header.Get("Retry-After") == "" {
		t.Errorf("no Retry-After: %v", r.header)
	}
	b.get(t, http.StatusServiceUnavailable, "/api/notifications/unread-count", as(t, "u1")...)
	golden(t, "entity_unavailable", b.get(t, http.StatusServiceUnavailable, "/api/v1/audit/entities/request/r1", as(t, "aud", domain.RoleAuditor)...))
}

// TestReadModelsDisabled builds the server without read models: both
// routes answer 404 in the error shape, after authentication.
func TestReadModelsDisabled(t *testing.T) {
	t.Parallel()
	b, _ := setupReadModels(t, &setupOptions{deadDB: true}, func(*testBundle) httpapi.ReadModels { return nil })
	golden(t, "readmodels_disabled", b.get(t, http.StatusNotFound, "/api/v1/notifications/unread-count", as(t, "u1")...))
	b.get(t, http.StatusNotFound, "/api/notifications/unread-count", as(t, "u1")...)
	b.get(t, http.StatusNotFound, "/api/v1/audit/entities/request/r1", as(t, "aud", domain.RoleAuditor)...)
	b.get(t, http.StatusUnauthorized, "/api/v1/notifications/unread-count")
	b.get(t, http.StatusForbidden, "/api/v1/audit/entities/request/r1", as(t, "u1")...)
}

// fakeReadModels is an in-memory ReadModels whose behaviour tests set
// through function fields.
type fakeReadModels struct {
	unread func(ctx context.Context, userID string) (int64, error)
	events func(ctx context.Context, q eventstore.EntityQuery) ([]domain.Delivery, error)
}

func (f fakeReadModels) UnreadCount(ctx context.Context, userID string) (int64, error) {
	return f.unread(ctx, userID)
}

func (f fakeReadModels) EntityEvents(ctx context.Context, q eventstore.EntityQuery) ([]domain.Delivery, error) {
	return f.events(ctx, q)
}

// chatHistory returns the EntityEvents of a chat with n messages, one
// millisecond apart from t0, honouring After, At and Limit as the store
// does, and counts the pages read.
func chatHistory(n int, pages *int, mu *sync.Mutex) func(context.Context, eventstore.EntityQuery) ([]domain.Delivery, error) {
	return func(_ context.Context, q eventstore.EntityQuery) ([]domain.Delivery, error) {
		mu.Lock()
		*pages++
		mu.Unlock()
		limit := q.Limit
		if limit <= 0 || limit > eventstore.MaxReadLimit {
			limit = eventstore.MaxReadLimit
		}
		var out []domain.Delivery
		for i := q.After.ID + 1; i <= int64(n) && len(out) < limit; i++ {
			at := t0.Add(time.Duration(i) * time.Millisecond)
			if !q.At.IsZero() && at.After(q.At) {
				break
			}
			out = append(out, domain.Delivery{
				Event: domain.Event{
					ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), Type: domain.EventNewMessage, Producer: "chat", OccurredAt: at,
					Payload: json.RawMessage(fmt.Sprintf(`{"chatId":"%s","senderId":"u1","message":{"_id":"m%d","content":"hi","senderId":"u1","createdAt":"2025-01-02T03:04:05Z"}}`, q.Entity.ID, i)),
				},
				Room: domain.Room("chat-" + q.Entity.ID), Seq: i, Position: domain.Position{Txid: 1, ID: i},
			})
		}
		return out, nil
	}
}

// TestEntityEventsCap reads histories around MaxEntityEvents from an
// in-memory fake: the answer lists at most MaxEntityEvents events, says
// more, and still folds every event into the state.
func TestEntityEventsCap(t *testing.T) {
	t.Parallel()
	aud := as(t, "aud", domain.RoleAuditor)
	tests := []struct {
		name     string
		n        int
		at       time.Time
		listed   int
		more     bool
		messages int
	}{
		{"Under", 2500, time.Time{}, 2500, false, 2500},
		{"Exactly", httpapi.MaxEntityEvents, time.Time{}, httpapi.MaxEntityEvents, false, httpapi.MaxEntityEvents},
		{"Over", httpapi.MaxEntityEvents + 1500, time.Time{}, httpapi.MaxEntityEvents, true, httpapi.MaxEntityEvents + 1500},
		{"OverButAtBefore", httpapi.MaxEntityEvents + 1500, t0.Add(3000 * time.Millisecond), 3000, false, 3000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			pages := 0
			b, _ := setupReadModels(t, &setupOptions{deadDB: true}, func(*testBundle) httpapi.ReadModels {
				return fakeReadModels{events: chatHistory(tt.n, &pages, &mu)}
			})
			r := decode[entityAnswer](t, b.get(t, http.StatusOK, entityPath("chat", "big", tt.at), aud...))
			var st struct {
				Messages int `json:"messages"`
				Events   int `json:"events"`
			}
			if err := json.Unmarshal(r.State, &st); err != nil {
				t.Fatal(err)
			}
			if len(r.Events) != tt.listed || r.More != tt.more || st.Messages != tt.messages || st.Events != tt.messages {
				t.Fatalf("%d listed, more %v, state %+v; want %d listed, more %v, %d messages", len(r.Events), r.More, st, tt.listed, tt.more, tt.messages)
			}
			if len(r.Events) > 0 && (r.Events[0].Seq != 1 || r.Events[len(r.Events)-1].Seq != int64(tt.listed)) {
				t.Fatalf("events run from seq %d to %d", r.Events[0].Seq, r.Events[len(r.Events)-1].Seq)
			}
			mu.Lock()
			defer mu.Unlock()
			if want := tt.messages/eventstore.MaxReadLimit + 1; pages != want {
				t.Fatalf("read %d pages, want %d", pages, want)
			}
		})
	}
}

// TestReadModelsFailures injects failures through the fake: internal
// errors answer 500 without their text, a page that outlives the audit
// statement timeout answers 503, and ids reach the store unmangled.
func TestReadModelsFailures(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var asked []domain.EntityRef
	var unreadOf []string
	fake := fakeReadModels{
		unread: func(_ context.Context, user string) (int64, error) {
			mu.Lock()
			defer mu.Unlock()
			unreadOf = append(unreadOf, user)
			if user == "boom" {
				return 0, errBoom
			}
			return 7, nil
		},
		events: func(ctx context.Context, q eventstore.EntityQuery) ([]domain.Delivery, error) {
			mu.Lock()
			asked = append(asked, q.Entity)
			mu.Unlock()
			switch q.Entity.ID {
			case "boom":
				return nil, errBoom
			case "slow":
				<-ctx.Done()
				return nil, fmt.Errorf("entity events: %w", ctx.Err())
			}
			return nil, nil
		},
	}
	b, _ := setupReadModels(t, &setupOptions{deadDB: true, config: &httpapi.Config{AuditStatementTimeout: 50 * time.Millisecond}},
		func(*testBundle) httpapi.ReadModels { return fake })
	aud := as(t, "aud", domain.RoleAuditor)

	r := b.get(t, http.StatusInternalServerError, "/api/v1/notifications/unread-count", as(t, "boom")...)
	if strings.Contains(string(r.body), "secret") {
		t.Errorf("internal detail leaked: %s", r.body)
	}
	r = b.get(t, http.StatusInternalServerError, "/api/v1/audit/entities/request/boom", aud...)
	if strings.Contains(string(r.body), "secret") || !strings.Contains(b.logged(), "secret internal detail") {
		t.Errorf("body %s; logs:\n%s", r.body, b.logged())
	}
	r = b.get(t, http.StatusServiceUnavailable, "/api/v1/audit/entities/chat/slow", aud...)
	if decode[errorAnswer](t, r).Error.Code != "unavailable" {
		t.Errorf("%v", r)
	}

	// The user id comes from the token only.
	if got := decode[map[string]int64](t, b.get(t, http.StatusOK, "/api/notifications/unread-count?userId=u2", as(t, "u1")...))["unreadCount"]; got != 7 {
		t.Errorf("unreadCount %d", got)
	}
	// A payment id may hold an escaped slash and any bytes.
	b.get(t, http.StatusOK, "/api/v1/audit/entities/payment/"+url.PathEscape("pay/1 ü"), aud...)
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"boom", "u1"}; !slices.Equal(unreadOf, want) {
		t.Errorf("unread asked for %v, want %v", unreadOf, want)
	}
	if last := asked[len(asked)-1]; last != (domain.EntityRef{Kind: domain.EntityPayment, ID: "pay/1 ü"}) {
		t.Errorf("asked for %+v", last)
	}
}
