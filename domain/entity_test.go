package domain_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
)

func TestParseEntityRef(t *testing.T) {
	t.Parallel()
	tests := []struct {
		kind, id string
		field    string // "" means valid
	}{
		{"request", "r1", ""},
		{"chat", "c-1.x:y_z", ""},
		{"template-checkout", "t1", ""},
		{"payment", "pay/with spaces?", ""}, // payment ids are the provider's strings
		{"payment", string(make([]byte, 201)), "id"},
		{"payment", "", "id"},
		{"request", "has space", "id"},
		{"request", "", "id"},
		{"chat", string(make([]byte, 65)), "id"},
		{"requests", "r1", "kind"},
		{"", "r1", "kind"},
	}
	for _, tt := range tests {
		t.Run(tt.kind+"/"+tt.id, func(t *testing.T) {
			ref, err := domain.ParseEntityRef(tt.kind, tt.id)
			if tt.field == "" {
				if err != nil || ref != (domain.EntityRef{Kind: domain.EntityKind(tt.kind), ID: tt.id}) {
					t.Fatalf("got %v, %v", ref, err)
				}
				return
			}
			var de *domain.Error
			if !errors.As(err, &de) || de.Code != domain.CodeInvalid || len(de.Fields) != 1 || de.Fields[0].Field != tt.field {
				t.Fatalf("got %v, want an invalid %s", err, tt.field)
			}
		})
	}
}

func TestEntityRefs(t *testing.T) {
	t.Parallel()
	req := func(id string) domain.EntityRef { return domain.EntityRef{Kind: domain.EntityRequest, ID: id} }
	pay := func(id string) domain.EntityRef { return domain.EntityRef{Kind: domain.EntityPayment, ID: id} }
	chk := func(id string) domain.EntityRef { return domain.EntityRef{Kind: domain.EntityTemplateCheckout, ID: id} }
	chat := func(id string) domain.EntityRef { return domain.EntityRef{Kind: domain.EntityChat, ID: id} }
	tests := []struct {
		event, room, payload string
		want                 []domain.EntityRef
	}{
		{"new-purchase-request", "sellers", `{"_id":"r1","buyerId":"b1"}`, []domain.EntityRef{req("r1")}},
		// _id names a request only in new-purchase-request.
		{"x-thing", "global", `{"_id":"r1"}`, nil},
		{"new-offer", "buyer-b1", `{"requestId":"r1","sellerId":"s1","offer":{"_id":"o1"}}`, []domain.EntityRef{req("r1")}},
		{"seller-offer-update", "seller-s1", `{"sellerId":"s1","requestId":"r1","eventType":"payment-completed","data":{"offerId":"o1","isSelected":true,"paymentId":"p1"}}`,
			[]domain.EntityRef{req("r1"), pay("p1")}},
		// data.paymentId counts only in seller-offer-update.
		{"x-thing", "global", `{"data":{"paymentId":"p1"}}`, nil},
		{"purchase-request-update", "request-r1", `{"type":"t","requestId":"r1","paymentId":"p1"}`, []domain.EntityRef{req("r1"), pay("p1")}},
		{"payment-received", "user-s1", `{"purchaseRequestId":"r1","amount":1,"currency":"USDT","buyerId":"b1"}`, []domain.EntityRef{req("r1")}},
		{"payment-update", "global", `{"paymentId":"p 1","status":"ok"}`, []domain.EntityRef{pay("p 1")}},
		// The room names the request the payment belongs to.
		{"payment-update", "request-r1", `{"paymentId":"p1","status":"ok"}`, []domain.EntityRef{pay("p1"), req("r1")}},
		{"template-checkout-payment-confirmed", "template-checkout-t1", `{"checkoutId":"t1","requestIds":["r1","r2","r1",7],"paymentId":"p1"}`,
			[]domain.EntityRef{req("r1"), req("r2"), pay("p1"), chk("t1")}},
		{"template-checkout-payment-failed", "global", `{"checkoutId":"t1","reason":"x"}`, []domain.EntityRef{chk("t1")}},
		{"new-message", "chat-c1", `{"chatId":"c1","senderId":"u1","message":{"_id":"m1"}}`, []domain.EntityRef{chat("c1")}},
		{"room-member-added", "chat-c2", `{"userId":"u1"}`, []domain.EntityRef{chat("c2")}},
		{"room-member-added", "template-checkout-t9", `{"userId":"u1"}`, []domain.EntityRef{chk("t9")}},
		{"new-notification", "user-u1", `{"notification":{"data":{"requestId":"r1"}}}`, nil},
		// Invalid ids and malformed payloads name nothing; the room still does.
		{"new-offer", "request-r1", `{"requestId":"bad id","paymentId":""}`, []domain.EntityRef{req("r1")}},
		{"new-offer", "request-r1", `not json`, []domain.EntityRef{req("r1")}},
		{"new-offer", "request-r1", `{"requestId":7}`, []domain.EntityRef{req("r1")}},
		// Exact keys only.
		{"new-offer", "global", `{"RequestId":"r1"}`, nil},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprintf("%d_%s", i, tt.event), func(t *testing.T) {
			got := domain.EntityRefs(tt.event, domain.Room(tt.room), json.RawMessage(tt.payload))
			if !slices.Equal(got, tt.want) {
				t.Fatalf("EntityRefs = %v, want %v", got, tt.want)
			}
		})
	}
}

// history builds deliveries in log order, one minute apart from t0. An
// event with several rooms becomes one delivery per room, sharing the
// event's id and time.
type history struct {
	t0  time.Time
	out []domain.Delivery
	n   int
}

func (h *history) add(typ, payload string, rooms ...string) time.Time {
	h.n++
	at := h.t0.Add(time.Duration(h.n) * time.Minute)
	for _, r := range rooms {
		h.out = append(h.out, domain.Delivery{
			Event: domain.Event{ID: fmt.Sprintf("ev%d", h.n), Type: typ, Payload: json.RawMessage(payload), OccurredAt: at},
			Room:  domain.Room(r), Seq: int64(len(h.out) + 1),
			Position: domain.Position{Txid: uint64(100 + h.n), ID: int64(len(h.out) + 1)},
		})
	}
	return at
}

// until returns the deliveries the log accepted at or before at.
func (h *history) until(at time.Time) []domain.Delivery {
	var out []domain.Delivery
	for _, d := range h.out {
		if !d.OccurredAt.After(at) {
			out = append(out, d)
		}
	}
	return out
}

var t0 = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

// requestLifecycle is a purchase request from creation through offers,
// payment and delivery to completion, with events of other requests and
// payments in between that must not leak into it.
func requestLifecycle() (*history, map[string]time.Time) {
	h := &history{t0: t0}
	at := map[string]time.Time{}
	at["created"] = h.add("new-purchase-request", `{"_id":"r1","buyerId":"b1","title":"lamp"}`, "sellers")
	h.add("new-purchase-request", `{"_id":"r2","buyerId":"b2"}`, "sellers")
	h.add("new-offer", `{"requestId":"r1","sellerId":"s1","offer":{"_id":"o1","price":"10.00"}}`, "buyer-b1")
	at["offered"] = h.add("new-offer", `{"requestId":"r1","sellerId":"s2","offer":{"price":"12.00"}}`, "buyer-b1")
	h.add("new-offer", `{"requestId":"r2","sellerId":"s1","offer":{"_id":"o9"}}`, "buyer-b2")
	h.add("seller-offer-update", `{"sellerId":"s2","requestId":"r1","eventType":"offer-rejected","data":{"offerId":"o2","isSelected":false,"reason":"too expensive"}}`, "seller-s2")
	at["accepted"] = h.add("seller-offer-update", `{"sellerId":"s1","requestId":"r1","eventType":"offer-accepted","data":{"offerId":"o1","isSelected":true}}`, "seller-s1")
	h.add("payment-created", `{"paymentId":"p1","provider":"shkeeper","requestId":"r1","buyerId":"b1","sellerId":"s1","amount":"10.00","currency":"USDT"}`, "global")
	at["paymentPending"] = h.add("payment-update", `{"paymentId":"p1","status":"pending"}`, "global")
	h.add("payment-update", `{"paymentId":"p9","status":"confirmed"}`, "global")
	at["paymentConfirmed"] = h.add("payment-update", `{"paymentId":"p1","status":"confirmed","escrowState":"held","txHash":"0xabc"}`, "global", "request-r1")
	at["paid"] = h.add("seller-offer-update", `{"sellerId":"s1","requestId":"r1","eventType":"payment-completed","data":{"offerId":"o1","isSelected":true,"paymentId":"p1","transactionHash":"0xabc"}}`, "seller-s1")
	h.add("purchase-request-update", `{"type":"status_changed","requestId":"r1","status":"paid"}`, "request-r1")
	h.add("delivery-code-generated", `{"requestId":"r1","deliveryCode":"0042"}`, "request-r1")
	at["shipped"] = h.add("delivery-update", `{"requestId":"r1","status":"shipped","carrier":"DHL","trackingNumber":"JD1"}`, "request-r1")
	h.add("delivery-confirmed", `{"requestId":"r1"}`, "request-r1")
	at["delivered"] = h.add("buyer-confirmed-delivery", `{"requestId":"r1","buyerId":"b1"}`, "user-s1")
	at["completed"] = h.add("transaction-completed", `{"requestId":"r1","paymentId":"p1","amount":"10.00","currency":"USDT"}`, "user-b1", "user-s1")
	h.add("request-cancelled", `{"requestId":"r2","reason":"no longer needed"}`, "user-b2", "user-s1")
	return h, at
}

func TestFoldRequest(t *testing.T) {
	t.Parallel()
	h, at := requestLifecycle()

	type want struct {
		phase    domain.RequestPhase
		offers   []string // offerId:status
		accepted string
		payment  string // paymentId:status:escrow
		delivery string
		events   int
		members  []string
	}
	tests := []struct {
		at   string
		want want
	}{
		{"created", want{phase: domain.PhaseOpen, events: 1, members: []string{"b1"}}},
		{"offered", want{phase: domain.PhaseOffered, offers: []string{"o1:pending", ":pending"}, events: 3, members: []string{"b1", "s1", "s2"}}},
		// The rejection names o2, which adopts s2's offer whose document had no _id.
		{"accepted", want{phase: domain.PhaseAccepted, offers: []string{"o1:accepted", "o2:rejected"}, accepted: "o1", events: 5, members: []string{"b1", "s1", "s2"}}},
		// payment-update names only p1: it joins through payment-created.
		{"paymentPending", want{phase: domain.PhaseAccepted, offers: []string{"o1:accepted", "o2:rejected"}, accepted: "o1", payment: "p1:pending:", events: 7, members: []string{"b1", "s1", "s2"}}},
		// Sent to global and request-r1: counted once.
		{"paymentConfirmed", want{phase: domain.PhaseAccepted, offers: []string{"o1:accepted", "o2:rejected"}, accepted: "o1", payment: "p1:confirmed:held", events: 8, members: []string{"b1", "s1", "s2"}}},
		{"paid", want{phase: domain.PhasePaid, offers: []string{"o1:accepted", "o2:rejected"}, accepted: "o1", payment: "p1:confirmed:held", events: 9, members: []string{"b1", "s1", "s2"}}},
		{"shipped", want{phase: domain.PhasePaid, offers: []string{"o1:accepted", "o2:rejected"}, accepted: "o1", payment: "p1:confirmed:held", delivery: "shipped", events: 12, members: []string{"b1", "s1", "s2"}}},
		{"delivered", want{phase: domain.PhaseDelivered, offers: []string{"o1:accepted", "o2:rejected"}, accepted: "o1", payment: "p1:confirmed:held", delivery: "shipped", events: 14, members: []string{"b1", "s1", "s2"}}},
		{"completed", want{phase: domain.PhaseCompleted, offers: []string{"o1:accepted", "o2:rejected"}, accepted: "o1", payment: "p1:confirmed:held", delivery: "shipped", events: 15, members: []string{"b1", "s1", "s2"}}},
	}
	for _, tt := range tests {
		t.Run(tt.at, func(t *testing.T) {
			t.Parallel()
			s := domain.FoldRequest("r1", h.until(at[tt.at]))
			var offers []string
			for _, o := range s.Offers {
				offers = append(offers, o.OfferID+":"+string(o.Status))
			}
			var payment string
			if len(s.Payments) > 0 {
				p := s.Payments[0]
				payment = p.PaymentID + ":" + p.Status + ":" + p.EscrowState
			}
			got := want{s.Phase, offers, s.AcceptedOfferID, payment, s.Delivery.Status, s.Events, s.Members}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("at %s:\n got %+v\nwant %+v", tt.at, got, tt.want)
			}
			if s.BuyerID != "b1" || s.UpdatedAt != at[tt.at] || s.Cancelled {
				t.Fatalf("buyer %q, updated %v, cancelled %v", s.BuyerID, s.UpdatedAt, s.Cancelled)
			}
		})
	}

	t.Run("Details", func(t *testing.T) {
		t.Parallel()
		s := domain.FoldRequest("r1", h.out)
		if len(s.Payments) != 1 {
			t.Fatalf("payments %+v: p9 must not be linked", s.Payments)
		}
		p := s.Payments[0]
		if p.TxHash != "0xabc" || p.Amount.String() != "10.00" || p.Currency != "USDT" || p.Provider != "shkeeper" ||
			p.CompletedAt.IsZero() || p.Events != 5 || !slices.Equal(p.RequestIDs, []string{"r1"}) {
			t.Fatalf("payment %+v", p)
		}
		if s.PaymentID != "p1" || s.Status != "paid" || s.PaidAt != at["paid"] || s.CompletedAt != at["completed"] {
			t.Fatalf("paymentId %q status %q paid %v completed %v", s.PaymentID, s.Status, s.PaidAt, s.CompletedAt)
		}
		d := s.Delivery
		if d.Carrier != "DHL" || d.TrackingNumber != "JD1" || d.CodeGenerated.IsZero() || d.ConfirmedAt.IsZero() || d.BuyerConfirmedAt != at["delivered"] {
			t.Fatalf("delivery %+v", d)
		}
		if string(s.Document) != `{"_id":"r1","buyerId":"b1","title":"lamp"}` || s.CreatedAt != at["created"] {
			t.Fatalf("document %s at %v", s.Document, s.CreatedAt)
		}
		// The delivery code never reaches a state.
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("0042")) {
			t.Fatalf("state leaks the delivery code: %s", b)
		}
	})

	t.Run("Cancelled", func(t *testing.T) {
		t.Parallel()
		s := domain.FoldRequest("r2", h.out)
		if s.Phase != domain.PhaseCancelled || !s.Cancelled || s.CancelReason != "no longer needed" || s.Events != 3 {
			t.Fatalf("r2: %+v", s)
		}
		before := domain.FoldRequest("r2", h.out[:len(h.out)-2])
		if before.Phase != domain.PhaseOffered || before.Cancelled {
			t.Fatalf("r2 before cancellation: %+v", before)
		}
	})

	t.Run("EmptyAndReplayedDeliveries", func(t *testing.T) {
		t.Parallel()
		if s := domain.FoldRequest("r1", nil); s.Events != 0 || s.Phase != "" || s.Offers == nil || s.Members == nil {
			t.Fatalf("empty: %+v", s)
		}
		twice := append(append([]domain.Delivery(nil), h.out...), h.out...)
		if a, b := domain.FoldRequest("r1", h.out), domain.FoldRequest("r1", twice); !reflect.DeepEqual(stripSeen(a), stripSeen(b)) {
			t.Fatalf("folding every delivery twice changed the state:\n%+v\n%+v", a, b)
		}
	})
}

// stripSeen returns s as JSON, which drops the unexported bookkeeping.
func stripSeen(s any) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestFoldPayment(t *testing.T) {
	t.Parallel()
	h, at := requestLifecycle()
	tests := []struct {
		at                    string
		status, escrow, hash  string
		events                int
		completed, hasRequest bool
	}{
		{"accepted", "", "", "", 0, false, false},
		{"paymentPending", "pending", "", "", 2, false, true},
		{"paymentConfirmed", "confirmed", "held", "0xabc", 3, false, true},
		{"paid", "confirmed", "held", "0xabc", 4, true, true},
		{"completed", "confirmed", "held", "0xabc", 5, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.at, func(t *testing.T) {
			t.Parallel()
			p := domain.FoldPayment("p1", h.until(at[tt.at]))
			if p.Status != tt.status || p.EscrowState != tt.escrow || p.TxHash != tt.hash || p.Events != tt.events ||
				!p.CompletedAt.IsZero() != tt.completed || slices.Contains(p.RequestIDs, "r1") != tt.hasRequest {
				t.Fatalf("at %s: %+v", tt.at, p)
			}
		})
	}
	if p := domain.FoldPayment("p1", h.out); p.BuyerID != "b1" || p.SellerID != "s1" || p.Amount.String() != "10.00" || p.CreatedAt.IsZero() {
		t.Fatalf("payment-created fields: %+v", p)
	}
}

func TestFoldCheckout(t *testing.T) {
	t.Parallel()
	h := &history{t0: t0}
	pending := h.add("template-checkout-payment-pending", `{"checkoutId":"t1"}`, "global")
	failed := h.add("template-checkout-payment-failed", `{"checkoutId":"t1","reason":"expired"}`, "global")
	h.add("room-member-added", `{"userId":"b1"}`, "template-checkout-t1")
	h.add("template-checkout-payment-pending", `{"checkoutId":"t1"}`, "global")
	confirmed := h.add("template-checkout-payment-confirmed", `{"checkoutId":"t1","requestIds":["r1","r2"],"paymentId":"p5"}`, "global", "template-checkout-t1")
	settled := h.add("payment-update", `{"paymentId":"p5","status":"settled"}`, "global")
	h.add("template-checkout-payment-failed", `{"checkoutId":"t2","reason":"other checkout"}`, "global")

	tests := []struct {
		at      time.Time
		status  domain.CheckoutStatus
		reason  string
		reqs    []string
		payment string // paymentId:status
		events  int
		members []string
	}{
		{pending, domain.CheckoutPending, "", []string{}, "", 1, []string{}},
		{failed, domain.CheckoutFailed, "expired", []string{}, "", 2, []string{}},
		{confirmed, domain.CheckoutConfirmed, "expired", []string{"r1", "r2"}, "p5:", 5, []string{"b1"}},
		{settled, domain.CheckoutConfirmed, "expired", []string{"r1", "r2"}, "p5:settled", 6, []string{"b1"}},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			s := domain.FoldCheckout("t1", h.until(tt.at))
			var payment string
			if len(s.Payments) > 0 {
				payment = s.Payments[0].PaymentID + ":" + s.Payments[0].Status
			}
			if s.Status != tt.status || s.Reason != tt.reason || !slices.Equal(s.RequestIDs, tt.reqs) || payment != tt.payment ||
				s.Events != tt.events || !slices.Equal(s.Members, tt.members) {
				t.Fatalf("%+v", s)
			}
		})
	}
}

func TestFoldChat(t *testing.T) {
	t.Parallel()
	h := &history{t0: t0}
	added := h.add("participants-added", `{"chatId":"c1","addedUserIds":["u1","u2","u3"]}`, "chat-c1")
	h.add("new-message", `{"chatId":"c1","senderId":"u1","message":{"_id":"m1","content":"hi","senderId":"u1","createdAt":"2025-03-01T09:02:30Z"}}`, "chat-c1")
	h.add("new-message", `{"chatId":"c2","senderId":"u9","message":{"_id":"x","content":"elsewhere","senderId":"u9","createdAt":"2025-03-01T09:03:00Z"}}`, "chat-c2")
	read := h.add("messages-read", `{"chatId":"c1","userId":"u2","upToMessageId":"m1","modifiedCount":1}`, "chat-c1")
	removed := h.add("participant-removed", `{"chatId":"c1","removedUserId":"u2"}`, "chat-c1")
	h.add("new-message", `{"chatId":"c1","senderId":"u4","message":{"_id":"m2","content":"yo","senderId":"u4","createdAt":"2025-03-01T09:06:00Z"}}`, "chat-c1")
	h.add("message-edited", `{"chatId":"c1","messageId":"m2","content":"yo!","editedAt":"2025-03-01T09:07:00Z"}`, "chat-c1")
	last := h.add("message-deleted", `{"chatId":"c1","messageId":"m1","deletedAt":"2025-03-01T09:08:00Z"}`, "chat-c1")

	tests := []struct {
		at                        time.Time
		members                   []string
		messages, edited, deleted int
		lastMessage               string
		readUpTo                  map[string]string
	}{
		{added, []string{"u1", "u2", "u3"}, 0, 0, 0, "", map[string]string{}},
		{read, []string{"u1", "u2", "u3"}, 1, 0, 0, "m1", map[string]string{"u2": "m1"}},
		{removed, []string{"u1", "u3"}, 1, 0, 0, "m1", map[string]string{"u2": "m1"}},
		// A sender becomes a member, as the membership projection says.
		{last, []string{"u1", "u3", "u4"}, 2, 1, 1, "m2", map[string]string{"u2": "m1"}},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			s := domain.FoldChat("c1", h.until(tt.at))
			if !slices.Equal(s.Members, tt.members) || s.Messages != tt.messages || s.Edited != tt.edited ||
				s.Deleted != tt.deleted || s.LastMessageID != tt.lastMessage || !reflect.DeepEqual(s.ReadUpTo, tt.readUpTo) {
				t.Fatalf("%+v", s)
			}
		})
	}
	if s := domain.FoldChat("c1", h.out); s.LastMessageAt != time.Date(2025, 3, 1, 9, 6, 0, 0, time.UTC) || s.Events != 7 {
		t.Fatalf("last message at %v, events %d", s.LastMessageAt, s.Events)
	}
}

func TestNewEntityState(t *testing.T) {
	t.Parallel()
	h, _ := requestLifecycle()
	for _, k := range domain.EntityKinds() {
		ref := domain.EntityRef{Kind: k, ID: "r1"}
		st := domain.NewEntityState(ref)
		if st == nil {
			t.Fatalf("%s: no state", k)
		}
		for _, d := range h.out {
			st.Apply(d)
		}
	}
	st := domain.NewEntityState(domain.EntityRef{Kind: domain.EntityRequest, ID: "r1"})
	for _, d := range h.out {
		st.Apply(d)
	}
	if s, ok := st.(*domain.RequestState); !ok || s.Phase != domain.PhaseCompleted {
		t.Fatalf("%T %+v", st, st)
	}
	if domain.NewEntityState(domain.EntityRef{Kind: "nope"}) != nil {
		t.Fatal("unknown kind has a state")
	}
}
