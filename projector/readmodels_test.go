package projector_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/eventstoretest"
	"github.com/roomlog/roomlog/projector"
)

func TestUnreadChanges(t *testing.T) {
	t.Parallel()
	d := func(i int64, typ, room, payload string) domain.Delivery {
		return domain.Delivery{
			Event: domain.Event{ID: fmt.Sprint(i), Type: typ, Payload: json.RawMessage(payload)},
			Room:  domain.Room(room), Position: domain.Position{Txid: 1, ID: i},
		}
	}
	p := func(i int64) domain.Position { return domain.Position{Txid: 1, ID: i} }
	tests := []struct {
		name string
		in   domain.Delivery
		want []eventstore.UnreadChange
	}{
		{"NewNotificationAddsOne", d(1, "new-notification", "user-u1", `{"notification":{}}`),
			[]eventstore.UnreadChange{{UserID: "u1", Count: 1, Position: p(1)}}},
		{"UnreadCountUpdateSets", d(2, "unread-count-update", "user-u1", `{"unreadCount":4}`),
			[]eventstore.UnreadChange{{UserID: "u1", Set: true, Count: 4, Position: p(2)}}},
		{"UnreadCountUpdateToZero", d(3, "unread-count-update", "user-u1", `{"unreadCount":0}`),
			[]eventstore.UnreadChange{{UserID: "u1", Set: true, Count: 0, Position: p(3)}}},
		// Read receipts of chat messages are not notification reads.
		{"MessagesReadIgnored", d(4, "messages-read", "chat-c1", `{"chatId":"c1","userId":"u1","upToMessageId":"m1","modifiedCount":3}`), nil},
		{"OtherRoomsIgnored", d(5, "new-notification", "global", `{}`), nil},
		{"OtherEventsIgnored", d(6, "level-up", "user-u1", `{}`), nil},
		{"ExactKeyOnly", d(7, "unread-count-update", "user-u1", `{"UnreadCount":4}`), nil},
		{"NegativeIgnored", d(8, "unread-count-update", "user-u1", `{"unreadCount":-1}`), nil},
		{"Malformed", d(9, "unread-count-update", "user-u1", `{"unreadCount":"4"}`), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := projector.UnreadChanges([]domain.Delivery{tt.in}); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// fixedClock is the store's clock: each event is logged at the time the
// scenario sets, so that point-in-time answers are exact.
type fixedClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fixedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fixedClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// rmLogger logs warnings and errors on t.
func rmLogger(t testing.TB) *slog.Logger { return eventstoretest.Logger(t, slog.LevelWarn) }

// scenario publishes the spec's events through a store whose clock it
// controls, one minute apart, and remembers named instants.
type scenario struct {
	t     *testing.T
	s     *eventstore.Store
	clock *fixedClock
	now   time.Time
	at    map[string]time.Time
	ids   []string
}

func newScenario(t *testing.T) *scenario {
	clock := &fixedClock{}
	s := eventstore.New(eventstoretest.New(t), rmLogger(t), &eventstore.Config{Now: clock.Now})
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return &scenario{t: t, s: s, clock: clock, now: time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC), at: map[string]time.Time{}}
}

// pub validates and appends one event a minute after the previous one and
// returns its time; mark, if set, names that instant.
func (sc *scenario) pub(mark, typ, payload string, rooms ...string) time.Time {
	sc.t.Helper()
	rs := make([]domain.Room, len(rooms))
	for i, r := range rooms {
		rs[i] = domain.MustRoom(r)
	}
	if err := domain.ValidatePublish(typ, rs, json.RawMessage(payload)); err != nil {
		sc.t.Fatalf("%s: %v", typ, err)
	}
	sc.now = sc.now.Add(time.Minute)
	sc.clock.set(sc.now)
	res, err := sc.s.Append(context.Background(), eventstore.AppendRequest{Type: typ, Rooms: rs, Payload: json.RawMessage(payload), Producer: "test"})
	if err != nil {
		sc.t.Fatal(err)
	}
	sc.ids = append(sc.ids, res.EventID)
	if mark != "" {
		sc.at[mark] = sc.now
	}
	return sc.now
}

// marketplace publishes realistic sequences of the spec's events: a
// purchase request from creation through offers, payment and delivery to
// confirmation; a template checkout; a chat with participants added and
// removed; notifications and read updates.
func (sc *scenario) marketplace() {
	sc.pub("created", "new-purchase-request", `{"_id":"r1","buyerId":"b1","title":"Desk lamp","budget":"40"}`, "sellers")
	sc.pub("", "new-notification", `{"notification":{"_id":"n1","type":"request","title":"New request","body":"Desk lamp","createdAt":"2025-03-01T09:01:00Z"}}`, "user-s1", "user-s2")
	sc.pub("", "new-offer", `{"requestId":"r1","sellerId":"s1","offer":{"_id":"o1","price":"35.00"}}`, "buyer-b1")
	sc.pub("", "new-notification", `{"notification":{"_id":"n2","type":"offer","title":"New offer","body":"35.00","data":{"requestId":"r1"},"createdAt":"2025-03-01T09:03:00Z"}}`, "user-b1")
	sc.pub("offered", "new-offer", `{"requestId":"r1","sellerId":"s2","offer":{"_id":"o2","price":"38.00"}}`, "buyer-b1")
	sc.pub("", "new-notification", `{"notification":{"_id":"n3","type":"offer","title":"New offer","body":"38.00","createdAt":"2025-03-01T09:05:00Z"}}`, "user-b1")
	sc.pub("", "unread-count-update", `{"unreadCount":0}`, "user-b1") // b1 opened the inbox
	sc.pub("", "seller-offer-update", `{"sellerId":"s2","requestId":"r1","eventType":"offer-rejected","data":{"offerId":"o2","isSelected":false,"reason":"another offer accepted"}}`, "seller-s2")
	sc.pub("accepted", "seller-offer-update", `{"sellerId":"s1","requestId":"r1","eventType":"offer-accepted","data":{"offerId":"o1","isSelected":true}}`, "seller-s1")
	sc.pub("", "new-notification", `{"notification":{"_id":"n4","type":"offer","title":"Offer accepted","body":"","createdAt":"2025-03-01T09:09:00Z"}}`, "user-s1")
	sc.pub("", "payment-created", `{"paymentId":"pay_1","provider":"shkeeper","requestId":"r1","buyerId":"b1","sellerId":"s1","amount":"35.00","currency":"USDT"}`, "global")
	sc.pub("paymentPending", "payment-update", `{"paymentId":"pay_1","status":"pending"}`, "global")
	sc.pub("paymentConfirmed", "payment-update", `{"paymentId":"pay_1","status":"confirmed","escrowState":"held","txHash":"0xfeed"}`, "global", "request-r1")
	sc.pub("", "payment-received", `{"purchaseRequestId":"r1","amount":"35.00","currency":"USDT","buyerId":"b1"}`, "user-s1")
	sc.pub("paid", "seller-offer-update", `{"sellerId":"s1","requestId":"r1","eventType":"payment-completed","data":{"offerId":"o1","isSelected":true,"paymentId":"pay_1","transactionHash":"0xfeed"}}`, "seller-s1")
	sc.pub("", "purchase-request-update", `{"type":"status_changed","requestId":"r1","status":"paid","paymentId":"pay_1","provider":"shkeeper"}`, "request-r1")
	sc.pub("", "delivery-code-generated", `{"requestId":"r1","deliveryCode":"918273"}`, "request-r1")
	sc.pub("shipped", "delivery-update", `{"requestId":"r1","status":"shipped","carrier":"DHL","trackingNumber":"JD014600"}`, "request-r1")
	sc.pub("", "new-notification", `{"notification":{"_id":"n5","type":"delivery","title":"Shipped","body":"DHL JD014600","createdAt":"2025-03-01T09:18:00Z"}}`, "user-b1")
	sc.pub("", "delivery-confirmed", `{"requestId":"r1"}`, "request-r1")
	sc.pub("delivered", "buyer-confirmed-delivery", `{"requestId":"r1","buyerId":"b1"}`, "user-s1")
	sc.pub("completed", "transaction-completed", `{"requestId":"r1","paymentId":"pay_1","amount":"35.00","currency":"USDT"}`, "user-b1", "user-s1")

	// A second request, cancelled.
	sc.pub("", "new-purchase-request", `{"_id":"r2","buyerId":"b2"}`, "sellers")
	sc.pub("r2cancelled", "request-cancelled", `{"requestId":"r2","reason":"found elsewhere"}`, "user-b2")

	// A template checkout paying for two requests.
	sc.pub("", "template-checkout-payment-pending", `{"checkoutId":"t1"}`, "global")
	sc.pub("checkoutFailed", "template-checkout-payment-failed", `{"checkoutId":"t1","reason":"expired"}`, "global")
	sc.pub("checkoutConfirmed", "template-checkout-payment-confirmed", `{"checkoutId":"t1","requestIds":["r3","r4"],"paymentId":"pay_2"}`, "global", "template-checkout-t1")

	// A chat with participants added and removed.
	sc.pub("chatOpened", "participants-added", `{"chatId":"c1","addedUserIds":["b1","s1","support"]}`, "chat-c1")
	sc.pub("", "new-message", `{"chatId":"c1","senderId":"b1","message":{"_id":"m1","content":"Is it still available?","senderId":"b1","createdAt":"2025-03-01T09:28:00Z"}}`, "chat-c1")
	sc.pub("", "new-message", `{"chatId":"c1","senderId":"s1","message":{"_id":"m2","content":"Yes","senderId":"s1","createdAt":"2025-03-01T09:29:00Z"}}`, "chat-c1")
	sc.pub("chatRead", "messages-read", `{"chatId":"c1","userId":"b1","upToMessageId":"m2","modifiedCount":1}`, "chat-c1")
	sc.pub("", "message-edited", `{"chatId":"c1","messageId":"m2","content":"Yes, it is","editedAt":"2025-03-01T09:31:00Z"}`, "chat-c1")
	sc.pub("chatClosed", "participant-removed", `{"chatId":"c1","removedUserId":"support"}`, "chat-c1")
	sc.pub("", "new-notification", `{"notification":{"_id":"n6","type":"chat","title":"New message","body":"Yes","createdAt":"2025-03-01T09:33:00Z"}}`, "user-b1")
}

// wantUnread is what the marketplace's notifications leave: b1's inbox was
// emptied by unread-count-update after n2 and n3, then n5 and n6 arrived;
// s1 has n1 and n4; s2 has n1. messages-read changes nothing.
var wantUnread = map[string]int64{"b1": 2, "s1": 2, "s2": 1, "b2": 0}

func startRegistry(t *testing.T, s *eventstore.Store) *projector.Registry {
	t.Helper()
	reg, err := projector.NewRegistry(projector.RegistryConfig{Store: s, BatchSize: 7, PollInterval: 20 * time.Millisecond, Logger: rmLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Stop)
	return reg
}

// caughtUp waits until every projection has a checkpoint and nothing is
// pending after it.
func caughtUp(t *testing.T, reg *projector.Registry) {
	t.Helper()
	checkFor(t, 30*time.Second, 10*time.Millisecond, func() error {
		reg.Wake()
		sts, err := reg.Status(context.Background())
		if err != nil {
			return err
		}
		for _, st := range sts {
			if !st.Saved || st.Pending != 0 {
				return fmt.Errorf("%s: saved %v, %d pending", st.Name, st.Saved, st.Pending)
			}
		}
		return nil
	})
}

// models captures every read model through the store's API, for comparing
// before and after a rebuild.
func models(t *testing.T, s *eventstore.Store) string {
	t.Helper()
	ctx := context.Background()
	out := map[string]any{}
	for u := range wantUnread {
		n, err := s.UnreadCount(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		out["unread/"+u] = n
	}
	for _, ref := range []domain.EntityRef{
		{Kind: domain.EntityRequest, ID: "r1"}, {Kind: domain.EntityRequest, ID: "r2"}, {Kind: domain.EntityRequest, ID: "r3"},
		{Kind: domain.EntityPayment, ID: "pay_1"}, {Kind: domain.EntityTemplateCheckout, ID: "t1"}, {Kind: domain.EntityChat, ID: "c1"},
	} {
		var rows []string
		for d, err := range s.EntityHistory(ctx, ref, time.Time{}) {
			if err != nil {
				t.Fatal(err)
			}
			rows = append(rows, fmt.Sprintf("%s/%s/%d", d.ID, d.Room, d.Seq))
		}
		out["history/"+ref.String()] = rows
	}
	for _, room := range []domain.Room{"request-r1", "request-r2", "chat-c1", "template-checkout-t1"} {
		m, err := s.Members(ctx, room)
		if err != nil {
			t.Fatal(err)
		}
		out["members/"+string(room)] = m
	}
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func entityState[S any](t *testing.T, s *eventstore.Store, kind domain.EntityKind, id string, at time.Time) S {
	t.Helper()
	st, err := s.EntityState(context.Background(), domain.EntityRef{Kind: kind, ID: id}, at)
	if err != nil {
		t.Fatal(err)
	}
	v, ok := st.(S)
	if !ok {
		t.Fatalf("state is %T", st)
	}
	return v
}

// TestReadModels publishes the marketplace scenario, runs every
// projection through the Registry and checks the read models and the
// point-in-time answers at several instants; then rebuilds each projection
// from zero and checks that nothing changes.
func TestReadModels(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sc := newScenario(t)
	sc.marketplace()
	reg := startRegistry(t, sc.s)
	caughtUp(t, reg)
	s := sc.s

	t.Run("Unread", func(t *testing.T) {
		for u, want := range wantUnread {
			if n, err := s.UnreadCount(ctx, u); err != nil || n != want {
				t.Errorf("unread %s = %d (%v), want %d", u, n, err, want)
			}
		}
	})

	t.Run("RequestAtInstants", func(t *testing.T) {
		tests := []struct {
			at       string
			phase    domain.RequestPhase
			offers   string
			accepted string
			payment  string
			delivery string
		}{
			{"created", domain.PhaseOpen, "[]", "", "", ""},
			{"offered", domain.PhaseOffered, "[o1:pending o2:pending]", "", "", ""},
			{"accepted", domain.PhaseAccepted, "[o1:accepted o2:rejected]", "o1", "", ""},
			{"paymentPending", domain.PhaseAccepted, "[o1:accepted o2:rejected]", "o1", "pay_1:pending", ""},
			{"paymentConfirmed", domain.PhaseAccepted, "[o1:accepted o2:rejected]", "o1", "pay_1:confirmed", ""},
			{"paid", domain.PhasePaid, "[o1:accepted o2:rejected]", "o1", "pay_1:confirmed", ""},
			{"shipped", domain.PhasePaid, "[o1:accepted o2:rejected]", "o1", "pay_1:confirmed", "shipped"},
			{"delivered", domain.PhaseDelivered, "[o1:accepted o2:rejected]", "o1", "pay_1:confirmed", "shipped"},
			{"completed", domain.PhaseCompleted, "[o1:accepted o2:rejected]", "o1", "pay_1:confirmed", "shipped"},
		}
		for _, tt := range tests {
			r := entityState[*domain.RequestState](t, s, domain.EntityRequest, "r1", sc.at[tt.at])
			var offers []string
			for _, o := range r.Offers {
				offers = append(offers, o.OfferID+":"+string(o.Status))
			}
			var payment string
			if len(r.Payments) > 0 {
				payment = r.Payments[0].PaymentID + ":" + r.Payments[0].Status
			}
			got := fmt.Sprint(r.Phase, fmt.Sprint(offers), r.AcceptedOfferID, payment, r.Delivery.Status)
			want := fmt.Sprint(tt.phase, tt.offers, tt.accepted, tt.payment, tt.delivery)
			if got != want {
				t.Errorf("r1 at %s: %s, want %s", tt.at, got, want)
			}
			if r.UpdatedAt.After(sc.at[tt.at]) {
				t.Errorf("r1 at %s folded an event from %v", tt.at, r.UpdatedAt)
			}
		}
		now := entityState[*domain.RequestState](t, s, domain.EntityRequest, "r1", time.Time{})
		if now.Cancelled || now.BuyerID != "b1" || !slices.Equal(now.Members, []string{"b1", "s1", "s2"}) ||
			now.Delivery.TrackingNumber != "JD014600" || now.Delivery.BuyerConfirmedAt != sc.at["delivered"] || now.CompletedAt != sc.at["completed"] {
			t.Errorf("r1 now: %+v", now)
		}
		r2 := entityState[*domain.RequestState](t, s, domain.EntityRequest, "r2", time.Time{})
		before := entityState[*domain.RequestState](t, s, domain.EntityRequest, "r2", sc.at["r2cancelled"].Add(-time.Second))
		if r2.Phase != domain.PhaseCancelled || r2.CancelReason != "found elsewhere" || before.Phase != domain.PhaseOpen {
			t.Errorf("r2 now %s (%q), before cancellation %s", r2.Phase, r2.CancelReason, before.Phase)
		}
	})

	t.Run("Payment", func(t *testing.T) {
		for at, want := range map[string]string{"accepted": "::0", "paymentPending": "pending::2", "paymentConfirmed": "confirmed:0xfeed:3", "completed": "confirmed:0xfeed:6"} {
			p := entityState[*domain.PaymentState](t, s, domain.EntityPayment, "pay_1", sc.at[at])
			if got := fmt.Sprintf("%s:%s:%d", p.Status, p.TxHash, p.Events); got != want {
				t.Errorf("pay_1 at %s: %s, want %s", at, got, want)
			}
		}
	})

	t.Run("Checkout", func(t *testing.T) {
		for at, want := range map[string]string{"checkoutFailed": "failed:[]", "checkoutConfirmed": "confirmed:[r3 r4]"} {
			c := entityState[*domain.CheckoutState](t, s, domain.EntityTemplateCheckout, "t1", sc.at[at])
			if got := fmt.Sprintf("%s:%v", c.Status, c.RequestIDs); got != want {
				t.Errorf("t1 at %s: %s, want %s", at, got, want)
			}
		}
		// The checkout's payment links the requests it paid for.
		r3 := entityState[*domain.RequestState](t, s, domain.EntityRequest, "r3", time.Time{})
		if r3.Phase != domain.PhasePaid || r3.CheckoutID != "t1" || r3.PaymentID != "pay_2" {
			t.Errorf("r3: %+v", r3)
		}
	})

	t.Run("Chat", func(t *testing.T) {
		tests := []struct {
			at       string
			members  []string
			messages int
			read     string
		}{
			{"chatOpened", []string{"b1", "s1", "support"}, 0, ""},
			{"chatRead", []string{"b1", "s1", "support"}, 2, "m2"},
			{"chatClosed", []string{"b1", "s1"}, 2, "m2"},
		}
		for _, tt := range tests {
			c := entityState[*domain.ChatState](t, s, domain.EntityChat, "c1", sc.at[tt.at])
			if !slices.Equal(c.Members, tt.members) || c.Messages != tt.messages || c.ReadUpTo["b1"] != tt.read {
				t.Errorf("c1 at %s: %+v", tt.at, c)
			}
		}
		// The membership read model agrees with the fold.
		if m, err := s.Members(ctx, "chat-c1"); err != nil || !slices.Equal(m, []string{"b1", "s1"}) {
			t.Errorf("chat-c1 members %v %v", m, err)
		}
	})

	t.Run("RebuildFromZeroIsIdentical", func(t *testing.T) {
		before := models(t, s)
		for _, name := range reg.Names() {
			res, err := reg.Rebuild(ctx, name)
			if err != nil {
				t.Fatalf("rebuild %s: %v", name, err)
			}
			if !res.Compared || res.Changed || res.Rows == 0 {
				t.Errorf("rebuild %s: %+v, want compared and unchanged", name, res)
			}
		}
		if after := models(t, s); after != before {
			t.Fatalf("models changed by the rebuild:\nbefore %s\nafter  %s", before, after)
		}
		// The runners were restarted and keep projecting.
		sc.pub("", "new-notification", `{"notification":{"_id":"n7","type":"x","title":"t","body":"b","createdAt":"2025-03-01T10:00:00Z"}}`, "user-s2")
		checkFor(t, 30*time.Second, 10*time.Millisecond, func() error {
			reg.Wake()
			if n, err := s.UnreadCount(ctx, "s2"); err != nil || n != 2 {
				return fmt.Errorf("s2 unread %d (%v), want 2", n, err)
			}
			return nil
		})
	})

	t.Run("Status", func(t *testing.T) {
		caughtUp(t, reg)
		sts, err := reg.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, st := range sts {
			names = append(names, st.Name)
			if st.Position.IsZero() || st.Lag != 0 {
				t.Errorf("%+v", st)
			}
		}
		if !slices.Equal(names, []string{"membership", "unread", "entities"}) {
			t.Fatalf("names %v", names)
		}
	})
}

// TestRebuildWhileAppending rebuilds the unread and entity projections while
// events keep arriving and the live runners keep running: the swapped-in
// models lose and double nothing.
func TestRebuildWhileAppending(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sc := newScenario(t)
	reg := startRegistry(t, sc.s)
	const n = 60
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			if _, err := sc.s.Append(ctx, eventstore.AppendRequest{
				Type: "new-notification", Rooms: []domain.Room{"user-u1"}, Producer: "test",
				Payload: json.RawMessage(fmt.Sprintf(`{"chatId":"c9","notification":{"_id":"n%d"}}`, i)),
			}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for _, name := range []string{projector.UnreadName, projector.EntitiesName, projector.UnreadName} {
		if _, err := reg.Rebuild(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	<-done
	checkFor(t, 30*time.Second, 10*time.Millisecond, func() error {
		reg.Wake()
		u, err := sc.s.UnreadCount(ctx, "u1")
		if err != nil {
			return err
		}
		var h int
		for _, err := range sc.s.EntityHistory(ctx, domain.EntityRef{Kind: domain.EntityChat, ID: "c9"}, time.Time{}) {
			if err != nil {
				return err
			}
			h++
		}
		if u != n || h != n {
			return fmt.Errorf("unread %d, chat history %d, want %d each", u, h, n)
		}
		return nil
	})
}

func TestRegistryConfig(t *testing.T) {
	t.Parallel()
	s := eventstore.New(nil, nil, nil) // never used: construction only
	h := func(*eventstore.Store) projector.Handler { return projector.HandlerFunc(nil) }
	for _, cfg := range []projector.RegistryConfig{
		{},
		{Store: s, Projections: []projector.Projection{{Name: "", Tables: []string{"t"}, Handler: h}}},
		{Store: s, Projections: []projector.Projection{{Name: "a", Handler: h}}},
		{Store: s, Projections: []projector.Projection{{Name: "a", Tables: []string{"t"}}}},
		{Store: s, Projections: []projector.Projection{{Name: "a", Tables: []string{"t"}, Handler: h}, {Name: "a", Tables: []string{"t"}, Handler: h}}},
	} {
		if _, err := projector.NewRegistry(cfg); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
	reg, err := projector.NewRegistry(projector.RegistryConfig{Store: s})
	if err != nil {
		t.Fatal(err)
	}
	if got := reg.Names(); !slices.Equal(got, []string{"membership", "unread", "entities"}) {
		t.Fatalf("names %v", got)
	}
	if _, err := reg.Rebuild(context.Background(), "nope"); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("unknown projection: %v", err)
	}
	if _, err := reg.CatchUp(context.Background(), "nope"); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("unknown projection: %v", err)
	}
}
