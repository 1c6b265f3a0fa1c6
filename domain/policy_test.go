package domain_test

import (
	"encoding/json"
	"errors"
	"slices"
	"sort"
	"testing"

	"github.com/roomlog/roomlog/domain"
)

var principals = map[string]domain.Principal{
	"anon":      {},
	"anonAdmin": {Roles: []domain.Role{domain.RoleAdmin}},
	"user":      {UserID: "u1"},
	"buyer":     {UserID: "u1", Roles: []domain.Role{domain.RoleBuyer}},
	"seller":    {UserID: "u1", Roles: []domain.Role{domain.RoleSeller}},
	"both":      {UserID: "u1", Roles: []domain.Role{domain.RoleBuyer, domain.RoleSeller}},
	"other":     {UserID: "u2", Roles: []domain.Role{domain.RoleBuyer, domain.RoleSeller}},
	"admin":     {UserID: "a1", Roles: []domain.Role{domain.RoleAdmin}},
	"auditor":   {UserID: "au1", Roles: []domain.Role{domain.RoleAuditor}},
}

// everyone is every authenticated principal.
var everyone = []string{"user", "buyer", "seller", "both", "other", "admin", "auditor"}

func TestCanJoinAndCanRead(t *testing.T) {
	t.Parallel()

	tests := []struct {
		room   domain.Room
		member bool
		join   []string // principals that may join; CanRead adds the auditor
	}{
		{"user-u1", false, []string{"user", "buyer", "seller", "both", "admin"}},
		{"user-u2", false, []string{"other", "admin"}},
		{"buyer-u1", false, []string{"buyer", "both", "admin"}},
		{"buyer-u2", false, []string{"other", "admin"}},
		{"seller-u1", false, []string{"seller", "both", "admin"}},
		{"seller-u2", false, []string{"other", "admin"}},
		{"buyers", false, []string{"buyer", "both", "other", "admin"}},
		{"sellers", false, []string{"seller", "both", "other", "admin"}},
		{"global", false, everyone},
		{"request-r1", false, []string{"admin"}},
		{"request-r1", true, everyone},
		{"chat-c1", false, []string{"admin"}},
		{"chat-c1", true, everyone},
		{"template-checkout-t1", false, []string{"admin"}},
		{"template-checkout-t1", true, everyone},
		// Ids compare exactly: no case folding, no prefix matching.
		{"user-U1", false, []string{"admin"}},
		{"user-u1x", false, []string{"admin"}},
		// Invalid rooms are refused to everyone, admins included.
		{"bogus", true, nil},
		{"user-", true, nil},
		{"", true, nil},
	}

	var refusal string
	for _, tt := range tests {
		for _, member := range []bool{tt.member, true} {
			if tt.room.Shared() && member != tt.member {
				continue // membership matters here; only the listed value applies
			}
			for name, p := range principals {
				wantJoin := slices.Contains(tt.join, name)
				wantRead := wantJoin || (name == "auditor" && tt.room.Kind() != "")

				joinErr := domain.CanJoin(p, tt.room, member)
				if (joinErr == nil) != wantJoin {
					t.Errorf("CanJoin(%s, %q, member=%v) = %v, want allowed=%v", name, tt.room, member, joinErr, wantJoin)
				}
				readErr := domain.CanRead(p, tt.room, member)
				if (readErr == nil) != wantRead {
					t.Errorf("CanRead(%s, %q, member=%v) = %v, want allowed=%v", name, tt.room, member, readErr, wantRead)
				}
				for _, err := range []error{joinErr, readErr} {
					if err == nil {
						continue
					}
					if !errors.Is(err, domain.ErrForbidden) {
						t.Errorf("%s/%q: refusal %v is not ErrForbidden", name, tt.room, err)
					}
					// Every refusal reads the same, so it reveals nothing
					// about the room.
					if refusal == "" {
						refusal = err.Error()
					}
					if err.Error() != refusal {
						t.Errorf("%s/%q: refusal %q differs from %q", name, tt.room, err.Error(), refusal)
					}
				}
			}
		}
	}
}

func TestCanType(t *testing.T) {
	t.Parallel()
	tests := []struct {
		principal string
		room      domain.Room
		member    bool
		ok        bool
	}{
		{"user", "chat-c1", true, true},
		{"user", "chat-c1", false, false},
		{"admin", "chat-c1", true, true},
		{"admin", "chat-c1", false, false},
		{"auditor", "chat-c1", false, false},
		{"anon", "chat-c1", true, false},
		{"user", "request-r1", true, false},
		{"user", "user-u1", true, false},
		{"user", "global", true, false},
		{"user", "chat-", true, false},
	}
	for _, tt := range tests {
		err := domain.CanType(principals[tt.principal], tt.room, tt.member)
		if (err == nil) != tt.ok {
			t.Errorf("CanType(%s, %q, %v) = %v, want ok=%v", tt.principal, tt.room, tt.member, err, tt.ok)
		}
		if err != nil && domain.ErrorCode(err) != domain.CodeForbidden {
			t.Errorf("CanType code = %q, want forbidden", domain.ErrorCode(err))
		}
	}
}

func TestImpliedMembership(t *testing.T) {
	t.Parallel()

	type mc = domain.MembershipChange
	tests := []struct {
		name    string
		event   string
		rooms   []domain.Room
		payload string
		want    []mc
	}{
		{"NewPurchaseRequest", domain.EventNewPurchaseRequest, []domain.Room{"sellers"},
			`{"_id":"r1","buyerId":"b1","title":"x"}`,
			[]mc{{Room: "request-r1", UserID: "b1", Added: true}}},
		{"NewOffer", domain.EventNewOffer, []domain.Room{"buyer-b1"},
			`{"requestId":"r1","offer":{},"sellerId":"s1"}`,
			[]mc{{Room: "request-r1", UserID: "s1", Added: true}}},
		{"SellerOfferUpdate", domain.EventSellerOfferUpdate, []domain.Room{"seller-s1"},
			`{"sellerId":"s1","requestId":"r1","eventType":"offer-accepted","data":{"offerId":"o","isSelected":true}}`,
			[]mc{{Room: "request-r1", UserID: "s1", Added: true}}},
		{"ParticipantsAdded", domain.EventParticipantsAdded, []domain.Room{"chat-c1"},
			`{"chatId":"c1","addedUserIds":["u1","u2","u1"]}`,
			[]mc{{Room: "chat-c1", UserID: "u1", Added: true}, {Room: "chat-c1", UserID: "u2", Added: true}}},
		{"ParticipantsAddedSkipsBadIDs", domain.EventParticipantsAdded, []domain.Room{"chat-c1"},
			`{"chatId":"c1","addedUserIds":["u1","bad id",""]}`,
			[]mc{{Room: "chat-c1", UserID: "u1", Added: true}}},
		{"ParticipantsAddedNone", domain.EventParticipantsAdded, []domain.Room{"chat-c1"},
			`{"chatId":"c1","addedUserIds":[]}`, nil},
		{"ParticipantRemoved", domain.EventParticipantRemoved, []domain.Room{"chat-c1"},
			`{"chatId":"c1","removedUserId":"u2"}`,
			[]mc{{Room: "chat-c1", UserID: "u2", Added: false}}},
		{"NewMessage", domain.EventNewMessage, []domain.Room{"chat-c1"},
			`{"chatId":"c1","senderId":"u1","message":{"_id":"m","content":"hi","senderId":"u1","createdAt":"2024-05-01T12:00:00Z"}}`,
			[]mc{{Room: "chat-c1", UserID: "u1", Added: true}}},
		{"RoomMemberAdded", domain.EventRoomMemberAdded,
			[]domain.Room{"request-r1", "chat-c1", "template-checkout-t1"}, `{"userId":"u1"}`,
			[]mc{
				{Room: "request-r1", UserID: "u1", Added: true},
				{Room: "chat-c1", UserID: "u1", Added: true},
				{Room: "template-checkout-t1", UserID: "u1", Added: true},
			}},
		{"RoomMemberAddedIgnoresUnsharedRooms", domain.EventRoomMemberAdded,
			[]domain.Room{"user-u1", "global", "request-r1", "bogus"}, `{"userId":"u1"}`,
			[]mc{{Room: "request-r1", UserID: "u1", Added: true}}},
		{"RoomMemberRemoved", domain.EventRoomMemberRemoved, []domain.Room{"chat-c1"}, `{"userId":"u1"}`,
			[]mc{{Room: "chat-c1", UserID: "u1", Added: false}}},
		{"TransactionCompleted", domain.EventTransactionCompleted, []domain.Room{"user-b1"},
			`{"requestId":"r1","paymentId":"p","amount":1,"currency":"USD"}`, nil},
		{"RequestCancelled", domain.EventRequestCancelled, []domain.Room{"user-b1"},
			`{"requestId":"r1","reason":"x"}`, nil},
		{"TemplateCheckoutPaymentConfirmed", domain.EventTemplateCheckoutPaymentConfirmed,
			[]domain.Room{"global"}, `{"checkoutId":"t1","requestIds":["r1"],"paymentId":"p"}`, nil},
		{"Extension", "x-a", []domain.Room{"chat-c1"}, `{"userId":"u1","chatId":"c1"}`, nil},
		{"Unknown", "nope", []domain.Room{"chat-c1"}, `{"userId":"u1"}`, nil},

		// Malformed payloads imply nothing.
		{"MalformedJSON", domain.EventNewOffer, nil, `{"requestId":`, nil},
		{"NotAnObject", domain.EventNewOffer, nil, `["r1","s1"]`, nil},
		{"Null", domain.EventRoomMemberAdded, []domain.Room{"chat-c1"}, `null`, nil},
		{"MissingSeller", domain.EventNewOffer, nil, `{"requestId":"r1"}`, nil},
		{"NumberID", domain.EventNewOffer, nil, `{"requestId":1,"sellerId":"s1"}`, nil},
		{"BadRequestID", domain.EventNewOffer, nil, `{"requestId":"r 1","sellerId":"s1"}`, nil},
		{"BadUserID", domain.EventRoomMemberAdded, []domain.Room{"chat-c1"}, `{"userId":""}`, nil},
		{"AddedNotArray", domain.EventParticipantsAdded, nil, `{"chatId":"c1","addedUserIds":"u1"}`, nil},
		// Keys are matched exactly, as ValidatePublish checks them.
		{"CaseVariantKey", domain.EventNewOffer, nil, `{"requestId":"r1","SellerId":"s1"}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := domain.ImpliedMembership(tt.event, tt.rooms, json.RawMessage(tt.payload))
			if !slices.Equal(got, tt.want) {
				t.Errorf("ImpliedMembership = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestImpliedMembershipOfSamples checks that the catalogue samples imply
// exactly the membership events that should, so that a new event type with
// membership effects is a deliberate change here.
func TestImpliedMembershipOfSamples(t *testing.T) {
	t.Parallel()
	want := []string{
		domain.EventNewMessage, domain.EventNewOffer, domain.EventNewPurchaseRequest,
		domain.EventParticipantRemoved, domain.EventParticipantsAdded,
		domain.EventRoomMemberAdded, domain.EventRoomMemberRemoved, domain.EventSellerOfferUpdate,
	}
	var got []string
	for _, s := range domain.Catalogue() {
		rooms := []domain.Room{roomOf(t, s.RoomKinds[0])}
		if len(domain.ImpliedMembership(s.Name, rooms, sampleFor(t, s.Name))) > 0 {
			got = append(got, s.Name)
		}
	}
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Errorf("events implying membership = %v, want %v", got, want)
	}
	// Readers of the log filter on MembershipEventTypes: it must name them all.
	listed := domain.MembershipEventTypes()
	sort.Strings(listed)
	if !slices.Equal(listed, want) {
		t.Errorf("MembershipEventTypes() = %v, want %v", listed, want)
	}
}
