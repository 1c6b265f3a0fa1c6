package domain_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

var when = time.Date(2024, 5, 1, 12, 0, 0, 123_000_000, time.UTC)

// samples holds one valid typed payload per catalogue entry. The test below
// fails if an entry has none, so a new event cannot land without one.
var samples = []domain.EventPayload{
	domain.NewPurchaseRequest{ID: "r1", BuyerID: "b1", Extra: map[string]json.RawMessage{
		"title": json.RawMessage(`"A bike"`), "budget": json.RawMessage(`120`),
	}},
	domain.NewOffer{RequestID: "r1", Offer: json.RawMessage(`{"_id":"o1","price":"100"}`), SellerID: "s1"},
	domain.SellerOfferUpdate{SellerID: "s1", RequestID: "r1", EventType: domain.OfferPaymentCompleted,
		Data: domain.SellerOfferData{OfferID: "o1", IsSelected: true, PaymentID: "p1", TransactionHash: "0xabc"}},
	domain.PurchaseRequestUpdate{Type: "status_changed", RequestID: "r1", Status: "paid", Provider: "shkeeper"},
	domain.RequestCancelled{RequestID: "r1", Reason: "buyer changed their mind"},
	domain.TransactionCompleted{RequestID: "r1", PaymentID: "p1", Amount: domain.StringScalar("100.50"), Currency: "USDT"},
	domain.DeliveryCodeGenerated{RequestID: "r1", DeliveryCode: "004211"},
	domain.DeliveryUpdate{RequestID: "r1", Status: "shipped", Carrier: "DHL", TrackingNumber: "JD0001"},
	domain.DeliveryConfirmed{RequestID: "r1"},
	domain.BuyerConfirmedDelivery{RequestID: "r1", BuyerID: "b1"},
	domain.TemplateCheckoutPaymentConfirmed{CheckoutID: "t1", RequestIDs: []string{"r1", "r2"}, PaymentID: "p1"},
	domain.TemplateCheckoutPaymentPending{CheckoutID: "t1"},
	domain.TemplateCheckoutPaymentFailed{CheckoutID: "t1", Reason: "expired"},
	domain.PaymentCreated{PaymentID: "p1", Provider: "shkeeper", RequestID: "r1", BuyerID: "b1", SellerID: "s1",
		Amount: domain.NumberScalar("100.5"), Currency: "USDT"},
	domain.PaymentReceived{PurchaseRequestID: "r1", Amount: domain.StringScalar("100.50"), Currency: "USDT", BuyerID: "b1"},
	domain.PaymentUpdate{PaymentID: "p1", Status: "confirmed", EscrowState: "held", TxHash: "0xabc"},
	domain.PayoutCreated{PayoutID: "po1", TaskID: domain.NumberScalar("77"), SellerID: "s1",
		Amount: domain.StringScalar("99"), Currency: "USDT"},
	domain.PayoutCompleted{PayoutID: "po1", TaskID: domain.StringScalar("task-77"), TxHash: "0xdef"},
	domain.PayoutUpdated{PayoutID: "po1", Status: "processing"},
	domain.NewMessage{ChatID: "c1", SenderID: "u1", Message: domain.ChatMessage{
		ID: "m1", Content: "hello", SenderID: "u1", CreatedAt: when, Attachments: json.RawMessage(`[{"url":"x"}]`)}},
	domain.MessagesRead{ChatID: "c1", UserID: "u2", UpToMessageID: "m1", ModifiedCount: 3},
	domain.MessageEdited{ChatID: "c1", MessageID: "m1", Content: "hello!", EditedAt: when},
	domain.MessageDeleted{ChatID: "c1", MessageID: "m1", DeletedAt: when},
	domain.ParticipantsAdded{ChatID: "c1", AddedUserIDs: []string{"u3", "u4"}},
	domain.ParticipantRemoved{ChatID: "c1", RemovedUserID: "u3"},
	domain.UserTyping{UserID: "u1", UserName: "Ann", IsTyping: true},
	domain.UserStatusChange{UserID: "u1", Status: domain.StatusOnline, LastSeen: when},
	domain.NewNotification{Notification: domain.Notification{ID: "n1", Type: "offer", Title: "New offer",
		Body: "You have a new offer", Data: json.RawMessage(`{"requestId":"r1"}`), CreatedAt: when}},
	domain.UnreadCountUpdate{UnreadCount: 5},
	domain.LevelUp{OldLevel: domain.NumberScalar("1"), NewLevel: domain.StringScalar("silver"), LifetimePoints: 1500,
		Perks: []json.RawMessage{json.RawMessage(`"free-shipping"`)}},
	domain.ReferralReward{ReferredUserID: "u9", Points: 50, TransactionID: "pt1"},
	domain.ReferralSignup{ReferredUserID: "u9", Name: "Bo", JoinedAt: when},
	domain.RoomMemberAdded{UserID: "u1"},
	domain.RoomMemberRemoved{UserID: "u1"},
}

func sampleFor(t *testing.T, name string) json.RawMessage {
	t.Helper()
	for _, s := range samples {
		if s.Kind() == name {
			b, err := json.Marshal(s)
			if err != nil {
				t.Fatalf("marshal %T: %v", s, err)
			}
			return b
		}
	}
	t.Fatalf("no sample payload for %s", name)
	return nil
}

func TestCatalogueHasEveryPayload(t *testing.T) {
	t.Parallel()
	var names []string
	for _, s := range domain.Catalogue() {
		names = append(names, s.Name)
	}
	if !slices.IsSorted(names) {
		t.Errorf("Catalogue() is not sorted by name: %v", names)
	}
	kinds := map[string]bool{}
	for _, s := range samples {
		if kinds[s.Kind()] {
			t.Errorf("two samples of kind %s", s.Kind())
		}
		kinds[s.Kind()] = true
		if _, ok := domain.Lookup(s.Kind()); !ok {
			t.Errorf("%T.Kind() = %q is not in the catalogue", s, s.Kind())
		}
	}
	for _, n := range names {
		if !kinds[n] {
			t.Errorf("catalogue entry %s has no typed payload sample", n)
		}
	}
	// The spec's 32 server->client events plus the two membership events.
	if len(names) != 34 {
		t.Errorf("catalogue has %d entries, want 34", len(names))
	}
}

// TestCatalogueEntries checks every entry with its valid sample, then with
// each field missing, null and of a wrong type.
func TestCatalogueEntries(t *testing.T) {
	t.Parallel()
	for _, spec := range domain.Catalogue() {
		t.Run(spec.Name, func(t *testing.T) {
			t.Parallel()
			valid := sampleFor(t, spec.Name)
			if errs := spec.Validate(valid); errs != nil {
				t.Fatalf("valid sample rejected: %v\n%s", errs, valid)
			}
			if spec.Durable {
				if err := domain.ValidatePublish(spec.Name, []domain.Room{roomOf(t, spec.RoomKinds[0])}, valid); err != nil {
					t.Fatalf("ValidatePublish(valid sample) = %v", err)
				}
			}

			// Unknown extra fields are allowed.
			extra := mutate(t, valid, nil, func(m map[string]any, _ string) { m["futureField"] = map[string]any{"x": 1} })
			if errs := spec.Validate(extra); errs != nil {
				t.Errorf("extra field rejected: %v", errs)
			}

			forEachField(spec.Fields, nil, func(path []string, f domain.FieldSpec) {
				field := "payload." + strings.Join(path, ".")
				for _, c := range []struct {
					what    string
					set     func(m map[string]any, k string)
					wantErr bool
				}{
					{"Missing", func(m map[string]any, k string) { delete(m, k) }, f.Required},
					{"Null", func(m map[string]any, k string) { m[k] = nil }, f.Required},
				} {
					got := spec.Validate(mutate(t, valid, path, c.set))
					if has := hasField(got, field); has != c.wantErr {
						t.Errorf("%s %s: errors %v, want error on %s: %v", field, c.what, got, field, c.wantErr)
					}
				}
				for _, bad := range wrongValues(f) {
					payload := mutate(t, valid, path, func(m map[string]any, k string) { m[k] = bad })
					got := spec.Validate(payload)
					if !hasFieldPrefix(got, field) {
						t.Errorf("%s = %s accepted, want an error on %s (got %v)", field, jsonOf(bad), field, got)
					}
				}
				for _, good := range otherGoodValues(f) {
					payload := mutate(t, valid, path, func(m map[string]any, k string) { m[k] = good })
					if got := spec.Validate(payload); got != nil {
						t.Errorf("%s = %s rejected: %v", field, jsonOf(good), got)
					}
				}
			})
		})
	}
}

// forEachField calls fn for every field of fs and, recursively, of nested
// objects, with the path of keys that leads to it.
func forEachField(fs []domain.FieldSpec, prefix []string, fn func(path []string, f domain.FieldSpec)) {
	for _, f := range fs {
		path := append(slices.Clone(prefix), f.Name)
		fn(path, f)
		forEachField(f.Fields, path, fn)
	}
}

// mutate decodes payload, calls set on the object that holds the last key
// of path (the top-level object if path is empty) and re-encodes it.
func mutate(t *testing.T, payload json.RawMessage, path []string, set func(m map[string]any, key string)) json.RawMessage {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var root map[string]any
	if err := dec.Decode(&root); err != nil {
		t.Fatal(err)
	}
	m := root
	key := ""
	if len(path) > 0 {
		for _, k := range path[:len(path)-1] {
			next, ok := m[k].(map[string]any)
			if !ok {
				t.Fatalf("sample has no object at %s", k)
			}
			m = next
		}
		key = path[len(path)-1]
	}
	set(m, key)
	b, err := json.Marshal(root)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func wrongValues(f domain.FieldSpec) []any {
	var vs []any
	switch f.Type {
	case domain.FieldString:
		vs = []any{42, true, map[string]any{}}
		if len(f.Enum) > 0 {
			vs = append(vs, "not-in-enum", strings.ToUpper(f.Enum[0]))
		}
	case domain.FieldID:
		vs = []any{42, "", "has space", strings.Repeat("x", domain.MaxIDLen+1), []any{"a"}}
	case domain.FieldTime:
		vs = []any{"yesterday", "2024-05-01", "2024-05-01 12:00:00", 1714564800}
	case domain.FieldNumber:
		vs = []any{"1", true, []any{}}
	case domain.FieldCount:
		vs = []any{-1, 1.5, json.Number("1e3"), "1", json.Number("99999999999999999999")}
	case domain.FieldAmount:
		vs = []any{"12,50", "", "1e5", "abc", true, map[string]any{}}
	case domain.FieldStringOrNumber:
		vs = []any{true, map[string]any{}, []any{}}
	case domain.FieldBool:
		vs = []any{"true", 1}
	case domain.FieldObject:
		vs = []any{[]any{}, "x", 1}
	case domain.FieldArray:
		vs = []any{map[string]any{}, "x"}
		if f.Elem == domain.FieldID {
			vs = append(vs, []any{"ok", "not ok"}, []any{nil}, []any{1})
		}
	case domain.FieldAny:
	default:
		panic("wrongValues: no case for " + string(f.Type))
	}
	return vs
}

func otherGoodValues(f domain.FieldSpec) []any {
	switch f.Type {
	case domain.FieldAmount:
		return []any{json.Number("12.5"), "12.50", "-0.001", json.Number("0")}
	case domain.FieldStringOrNumber:
		return []any{"gold", json.Number("3")}
	case domain.FieldTime:
		return []any{"2024-05-01T12:00:00Z", "2024-05-01T14:00:00.5+02:00"}
	case domain.FieldCount:
		return []any{json.Number("0")}
	case domain.FieldArray:
		if f.Elem == "" {
			return []any{[]any{}, []any{1, "x", nil}}
		}
		return []any{[]any{}}
	case domain.FieldAny:
		return []any{"x", json.Number("1"), []any{}, true}
	case domain.FieldString:
		if len(f.Enum) > 0 {
			return []any{f.Enum[len(f.Enum)-1]}
		}
		return []any{""}
	}
	return nil
}

func hasField(errs []domain.FieldError, field string) bool {
	return slices.ContainsFunc(errs, func(e domain.FieldError) bool { return e.Field == field })
}

// hasFieldPrefix also matches errors on an array's elements, like field[1].
func hasFieldPrefix(errs []domain.FieldError, field string) bool {
	return slices.ContainsFunc(errs, func(e domain.FieldError) bool {
		return e.Field == field || strings.HasPrefix(e.Field, field+"[")
	})
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestCatalogueRoomKinds(t *testing.T) {
	t.Parallel()
	for _, spec := range domain.Catalogue() {
		if !spec.Durable {
			continue
		}
		payload := sampleFor(t, spec.Name)
		for _, k := range domain.RoomKinds() {
			err := domain.ValidatePublish(spec.Name, []domain.Room{roomOf(t, k)}, payload)
			if allowed := spec.Allows(k); allowed != (err == nil) {
				t.Errorf("%s to a %s room: err = %v, want allowed=%v", spec.Name, k, err, allowed)
			}
			if err != nil && !hasField(fieldsOf(t, err), "rooms") {
				t.Errorf("%s to a %s room: error %v does not name rooms", spec.Name, k, err)
			}
		}
	}

	// Spot checks of choices the spec leaves vague; the golden file pins
	// the rest.
	tests := []struct {
		event string
		kinds []domain.RoomKind
	}{
		{domain.EventNewPurchaseRequest, []domain.RoomKind{domain.KindSellers, domain.KindGlobal}},
		{domain.EventNewOffer, []domain.RoomKind{domain.KindBuyer}},
		{domain.EventSellerOfferUpdate, []domain.RoomKind{domain.KindSeller, domain.KindGlobal}},
		{domain.EventPaymentUpdate, []domain.RoomKind{domain.KindGlobal, domain.KindRequest, domain.KindUser,
			domain.KindSeller, domain.KindBuyer, domain.KindTemplateCheckout}},
		{domain.EventTemplateCheckoutPaymentConfirmed, []domain.RoomKind{domain.KindGlobal, domain.KindTemplateCheckout}},
		{domain.EventPayoutCompleted, []domain.RoomKind{domain.KindGlobal, domain.KindUser}},
		{domain.EventUserStatusChange, []domain.RoomKind{domain.KindGlobal}},
		{domain.EventNewMessage, []domain.RoomKind{domain.KindChat}},
		{domain.EventRoomMemberAdded, []domain.RoomKind{domain.KindRequest, domain.KindChat, domain.KindTemplateCheckout}},
		{domain.EventRoomMemberRemoved, []domain.RoomKind{domain.KindRequest, domain.KindChat, domain.KindTemplateCheckout}},
	}
	for _, tt := range tests {
		spec, ok := domain.Lookup(tt.event)
		if !ok {
			t.Fatalf("Lookup(%s) failed", tt.event)
		}
		got := slices.Clone(spec.RoomKinds)
		want := slices.Clone(tt.kinds)
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s room kinds = %v, want %v", tt.event, got, want)
		}
	}
}

func TestCatalogueFlags(t *testing.T) {
	t.Parallel()
	for _, spec := range domain.Catalogue() {
		wantDurable := spec.Name != domain.EventUserTyping
		wantInternal := spec.Name == domain.EventRoomMemberAdded || spec.Name == domain.EventRoomMemberRemoved
		if spec.Durable != wantDurable {
			t.Errorf("%s.Durable = %v, want %v", spec.Name, spec.Durable, wantDurable)
		}
		if spec.Internal != wantInternal {
			t.Errorf("%s.Internal = %v, want %v", spec.Name, spec.Internal, wantInternal)
		}
		if spec.Extension {
			t.Errorf("%s.Extension = true", spec.Name)
		}
		if len(spec.RoomKinds) == 0 {
			t.Errorf("%s allows no room kinds", spec.Name)
		}
		if !domain.ValidEventName(spec.Name) {
			t.Errorf("ValidEventName(%s) = false", spec.Name)
		}
	}
}

func TestLookupReturnsCopies(t *testing.T) {
	t.Parallel()
	spec, _ := domain.Lookup(domain.EventSellerOfferUpdate)
	spec.RoomKinds[0] = "mutated"
	spec.Fields[0].Name = "mutated"
	spec.Fields[2].Enum[0] = "mutated"
	spec.Fields[3].Fields[0].Name = "mutated"
	again, _ := domain.Lookup(domain.EventSellerOfferUpdate)
	if again.RoomKinds[0] == "mutated" || again.Fields[0].Name == "mutated" ||
		again.Fields[2].Enum[0] == "mutated" || again.Fields[3].Fields[0].Name == "mutated" {
		t.Error("Lookup returns the catalogue's own slices")
	}
	all := domain.Catalogue()
	all[0].RoomKinds[0] = "mutated"
	if domain.Catalogue()[0].RoomKinds[0] == "mutated" {
		t.Error("Catalogue returns the catalogue's own slices")
	}
}

func TestExtensionEvents(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ok   bool
	}{
		{"x-a", true},
		{"x-order-shipped-v2", true},
		{"x-" + strings.Repeat("a", domain.MaxExtensionNameLen), true},
		{"x-" + strings.Repeat("a", domain.MaxExtensionNameLen+1), false},
		{"x-", false},
		{"x", false},
		{"X-a", false},
		{"x-A", false},
		{"x-a_b", false},
		{"x-a.b", false},
		{"x-é", false},
		{"y-a", false},
		{"new-offer-x", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := domain.ValidEventName(tt.name); got != tt.ok {
			t.Errorf("ValidEventName(%q) = %v, want %v", tt.name, got, tt.ok)
		}
		spec, ok := domain.Lookup(tt.name)
		if ok != tt.ok {
			t.Errorf("Lookup(%q) ok = %v, want %v", tt.name, ok, tt.ok)
			continue
		}
		if !ok {
			continue
		}
		if spec.Name != tt.name || !spec.Durable || spec.Internal || !spec.Extension {
			t.Errorf("Lookup(%q) = %+v, want a durable, emitted extension", tt.name, spec)
		}
		for _, k := range domain.RoomKinds() {
			if !spec.Allows(k) {
				t.Errorf("extension %q does not allow %s rooms", tt.name, k)
			}
		}
	}

	rooms := []domain.Room{"user-1", "chat-2", "global", "sellers"}
	if err := domain.ValidatePublish("x-thing", rooms, json.RawMessage(`{"anything":[1,{"goes":null}]}`)); err != nil {
		t.Errorf("extension publish: %v", err)
	}
	for _, p := range []string{`[]`, `"x"`, `null`, `1`, ``} {
		err := domain.ValidatePublish("x-thing", rooms, json.RawMessage(p))
		if !hasField(fieldsOf(t, err), "payload") {
			t.Errorf("extension with payload %q: err = %v, want a payload error", p, err)
		}
	}
}

func TestValidatePublish(t *testing.T) {
	t.Parallel()

	offer := string(sampleFor(t, domain.EventNewOffer))
	buyer := []domain.Room{"buyer-b1"}
	deep := strings.Repeat(`{"a":`, domain.MaxPayloadDepth) + `1` + strings.Repeat(`}`, domain.MaxPayloadDepth)
	tooDeep := strings.Repeat(`{"a":`, domain.MaxPayloadDepth+1) + `1` + strings.Repeat(`}`, domain.MaxPayloadDepth+1)
	deepArr := `{"a":` + strings.Repeat(`[`, domain.MaxPayloadDepth-1) + strings.Repeat(`]`, domain.MaxPayloadDepth-1) + `}`
	tooDeepArr := `{"a":` + strings.Repeat(`[`, domain.MaxPayloadDepth) + strings.Repeat(`]`, domain.MaxPayloadDepth) + `}`
	manyRooms := make([]domain.Room, domain.MaxPublishRooms+1)
	for i := range manyRooms {
		manyRooms[i] = domain.Room(fmt.Sprintf("chat-%d", i))
	}

	tests := []struct {
		name       string
		event      string
		rooms      []domain.Room
		payload    string
		wantFields []string // nil: valid
	}{
		{"Valid", domain.EventNewOffer, buyer, offer, nil},
		{"ValidMultiRoom", domain.EventPaymentUpdate,
			[]domain.Room{"global", "request-r1", "user-b1", "user-s1"}, `{"paymentId":"p","status":"ok"}`, nil},
		{"ValidMembership", domain.EventRoomMemberAdded,
			[]domain.Room{"request-r1", "chat-c1"}, `{"userId":"u1"}`, nil},
		{"UnknownEvent", "no-such-event", buyer, offer, []string{"event"}},
		{"EmptyEvent", "", buyer, offer, []string{"event"}},
		{"Volatile", domain.EventUserTyping, []domain.Room{"chat-c1"},
			`{"userId":"u1","isTyping":true}`, []string{"event"}},
		{"NoRooms", domain.EventNewOffer, nil, offer, []string{"rooms"}},
		{"TooManyRooms", "x-a", manyRooms, `{}`, []string{"rooms"}},
		{"DuplicateRoom", domain.EventNewOffer, []domain.Room{"buyer-b1", "buyer-b1"}, offer, []string{"rooms"}},
		{"InvalidRoom", domain.EventNewOffer, []domain.Room{"buyer-b 1"}, offer, []string{"rooms"}},
		{"ZeroRoom", domain.EventNewOffer, []domain.Room{""}, offer, []string{"rooms"}},
		{"KindNotAllowed", domain.EventNewOffer, []domain.Room{"buyer-b1", "global"}, offer, []string{"rooms"}},
		{"MembershipToPersonalRoom", domain.EventRoomMemberAdded, []domain.Room{"user-u1"},
			`{"userId":"u1"}`, []string{"rooms"}},
		{"PayloadArray", domain.EventNewOffer, buyer, `[]`, []string{"payload"}},
		{"PayloadNull", domain.EventNewOffer, buyer, `null`, []string{"payload"}},
		{"PayloadEmpty", domain.EventNewOffer, buyer, ``, []string{"payload"}},
		{"PayloadMalformed", domain.EventNewOffer, buyer, `{"requestId":`, []string{"payload"}},
		{"PayloadTrailing", domain.EventNewOffer, buyer, offer + ` {}`, []string{"payload"}},
		{"PayloadTrailingGarbage", domain.EventNewOffer, buyer, offer + `x`, []string{"payload"}},
		{"PayloadMissingAll", domain.EventNewOffer, buyer, `{}`,
			[]string{"payload.requestId", "payload.offer", "payload.sellerId"}},
		{"DepthAtLimit", "x-a", buyer, deep, nil},
		{"ArrayDepthAtLimit", "x-a", buyer, deepArr, nil},
		{"TooDeep", "x-a", buyer, tooDeep, []string{"payload"}},
		{"ArrayTooDeep", "x-a", buyer, tooDeepArr, []string{"payload"}},
		{"DuplicateKey", "x-a", buyer, `{"a":1,"a":2}`, []string{"payload"}},
		{"DuplicateKeyNested", "x-a", buyer, `{"a":{"b":1,"b":1}}`, []string{"payload"}},
		{"DuplicateKeyFolded", domain.EventNewOffer, buyer,
			`{"requestId":"r1","offer":{},"sellerId":"s1","SellerID":"evil"}`, []string{"payload"}},
		{"SameKeyInSiblings", "x-a", buyer, `{"a":{"b":1},"c":{"b":1},"d":[{"b":1},{"b":2}]}`, nil},
		{"InvalidUTF8", "x-a", buyer, "{\"a\":\"\xff\"}", []string{"payload"}},
		{"NulEscape", "x-a", buyer, `{"a":"x\u0000y"}`, []string{"payload"}},
		{"NulEscapeInKey", "x-a", buyer, `{"\u0000":1}`, []string{"payload"}},
		{"LoneHighSurrogate", "x-a", buyer, `{"a":"\ud800"}`, []string{"payload"}},
		{"LoneLowSurrogate", "x-a", buyer, `{"a":"\udc00x"}`, []string{"payload"}},
		{"HighSurrogateThenText", "x-a", buyer, `{"a":"\ud800\u0041"}`, []string{"payload"}},
		{"SurrogatePair", "x-a", buyer, `{"a":"\ud83d\ude00"}`, nil},
		{"EscapedBackslashThenU", "x-a", buyer, `{"a":"\\u0000"}`, nil},
		{"HugeNumber", "x-a", buyer, `{"a":1e400}`, []string{"payload"}},
		{"HugeExponent", "x-a", buyer, `{"a":1e-5000}`, []string{"payload"}},
		{"BigButFineNumber", "x-a", buyer, `{"a":1.5e300}`, nil},
		{"EverythingWrong", "nope", []domain.Room{"bogus", "bogus"}, `[]`, []string{"event", "rooms", "payload"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := domain.ValidatePublish(tt.event, tt.rooms, json.RawMessage(tt.payload))
			if tt.wantFields == nil {
				if err != nil {
					t.Fatalf("ValidatePublish = %v, want nil", err)
				}
				return
			}
			fields := fieldsOf(t, err)
			for _, f := range tt.wantFields {
				if !hasField(fields, f) {
					t.Errorf("errors %v lack field %s", fields, f)
				}
			}
			for _, fe := range fields {
				if !slices.Contains(tt.wantFields, fe.Field) {
					t.Errorf("unexpected error on %s: %s", fe.Field, fe.Message)
				}
				if fe.Message == "" {
					t.Errorf("empty message on %s", fe.Field)
				}
			}
		})
	}
}

func TestValidatePublishCapsErrors(t *testing.T) {
	t.Parallel()
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = "bad id"
	}
	b, _ := json.Marshal(map[string]any{"chatId": "c1", "addedUserIds": ids})
	rooms := make([]domain.Room, domain.MaxPublishRooms)
	for i := range rooms {
		rooms[i] = "global"
	}
	err := domain.ValidatePublish(domain.EventParticipantsAdded, rooms, b)
	if n := len(fieldsOf(t, err)); n == 0 || n > domain.MaxFieldErrors {
		t.Errorf("got %d field errors, want 1..%d", n, domain.MaxFieldErrors)
	}
}

// fieldsOf asserts that err is the *domain.Error ValidatePublish returns
// and returns its fields.
func fieldsOf(t *testing.T, err error) []domain.FieldError {
	t.Helper()
	var de *domain.Error
	if !errors.As(err, &de) {
		t.Fatalf("error %v (%T) is not a *domain.Error", err, err)
	}
	if de.Code != domain.CodeInvalid || de.Message != "invalid event" {
		t.Errorf("error = %q %q, want invalid / invalid event", de.Code, de.Message)
	}
	if len(de.Fields) == 0 {
		t.Errorf("error has no field errors")
	}
	return de.Fields
}

func TestScalar(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in       string
		isNumber bool
		text     string
	}{
		{`"12.50"`, false, "12.50"},
		{`12.5`, true, "12.5"},
		{`-1e3`, true, "-1e3"},
		{`"a\"b"`, false, `a"b`},
	}
	for _, tt := range tests {
		var s domain.Scalar
		if err := json.Unmarshal([]byte(tt.in), &s); err != nil {
			t.Fatalf("unmarshal %s: %v", tt.in, err)
		}
		if s.IsNumber() != tt.isNumber || s.String() != tt.text || s.IsZero() {
			t.Errorf("%s: IsNumber, String = %v, %q; want %v, %q", tt.in, s.IsNumber(), s.String(), tt.isNumber, tt.text)
		}
		out, err := json.Marshal(s)
		if err != nil || string(out) != tt.in {
			t.Errorf("%s: marshal = %s, %v; want it unchanged", tt.in, out, err)
		}
	}
	for _, bad := range []string{`true`, `{}`, `[]`} {
		var s domain.Scalar
		if err := json.Unmarshal([]byte(bad), &s); err == nil {
			t.Errorf("unmarshal %s: want error", bad)
		}
	}
	var z domain.Scalar
	if err := json.Unmarshal([]byte(`null`), &z); err != nil || !z.IsZero() {
		t.Errorf("unmarshal null = %v, %v; want zero", z, err)
	}
	if out, _ := json.Marshal(z); string(out) != "null" {
		t.Errorf("zero Scalar marshals as %s, want null", out)
	}
	if _, err := json.Marshal(domain.NumberScalar("12,5")); err == nil {
		t.Error("NumberScalar(\"12,5\") marshalled without error")
	}
}

func TestNewPurchaseRequestJSON(t *testing.T) {
	t.Parallel()
	in := `{"_id":"r1","budget":120,"buyerId":"b1","title":"A bike"}`
	var p domain.NewPurchaseRequest
	if err := json.Unmarshal([]byte(in), &p); err != nil {
		t.Fatal(err)
	}
	if p.ID != "r1" || p.BuyerID != "b1" || len(p.Extra) != 2 {
		t.Errorf("decoded %+v", p)
	}
	out, err := json.Marshal(p)
	if err != nil || string(out) != in {
		t.Errorf("round trip = %s, %v; want %s", out, err, in)
	}
	// Typed fields win over Extra.
	p.Extra["_id"] = json.RawMessage(`"evil"`)
	out, _ = json.Marshal(p)
	if !strings.Contains(string(out), `"_id":"r1"`) || strings.Contains(string(out), "evil") {
		t.Errorf("Extra overrode _id: %s", out)
	}
}

// TestCatalogueGolden pins the whole catalogue, so that any change to names,
// durability, room kinds or payload fields shows up in review. Run
// `go test ./domain -run TestCatalogueGolden -update` after a deliberate
// change.
func TestCatalogueGolden(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	for _, s := range domain.Catalogue() {
		fmt.Fprintf(&b, "%s durable=%v internal=%v rooms=%v\n", s.Name, s.Durable, s.Internal, s.RoomKinds)
		forEachField(s.Fields, nil, func(path []string, f domain.FieldSpec) {
			req := "optional"
			if f.Required {
				req = "required"
			}
			fmt.Fprintf(&b, "  %s: %s %s", strings.Join(path, "."), f.Type, req)
			if f.Elem != "" {
				fmt.Fprintf(&b, " elem=%s", f.Elem)
			}
			if len(f.Enum) > 0 {
				fmt.Fprintf(&b, " enum=%v", f.Enum)
			}
			b.WriteString("\n")
		})
		fmt.Fprintf(&b, "  sample: %s\n", sampleFor(t, s.Name))
	}
	golden(t, "catalogue.golden", b.String())
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the catalogue (run with -update if the change is deliberate)\ngot:\n%s", path, got)
	}
}
