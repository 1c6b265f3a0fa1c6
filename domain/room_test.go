package domain_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/roomlog/roomlog/domain"
)

func TestParseRoom(t *testing.T) {
	t.Parallel()

	long := strings.Repeat("a", domain.MaxIDLen)
	valid := []struct {
		in   string
		kind domain.RoomKind
		id   string
	}{
		{"user-42", domain.KindUser, "42"},
		{"user-a-b", domain.KindUser, "a-b"},
		{"user-user-1", domain.KindUser, "user-1"},
		{"request-65f1c2aa9b1e8a0012345678", domain.KindRequest, "65f1c2aa9b1e8a0012345678"},
		{"seller-s.1", domain.KindSeller, "s.1"},
		{"sellers", domain.KindSellers, ""},
		{"buyer-B_2", domain.KindBuyer, "B_2"},
		{"buyers", domain.KindBuyers, ""},
		{"chat-c:3", domain.KindChat, "c:3"},
		{"chat-sellers", domain.KindChat, "sellers"},
		{"template-checkout-x", domain.KindTemplateCheckout, "x"},
		{"template-checkout-checkout-9", domain.KindTemplateCheckout, "checkout-9"},
		{"global", domain.KindGlobal, ""},
		{"user-" + long, domain.KindUser, long},
		{"user-6f1e2c4a-8d2b-4b8e-9a51-0c9a7d2e1f00", domain.KindUser, "6f1e2c4a-8d2b-4b8e-9a51-0c9a7d2e1f00"},
		{"user--", domain.KindUser, "-"},
	}
	for _, tt := range valid {
		t.Run("Valid/"+tt.in, func(t *testing.T) {
			t.Parallel()
			r, err := domain.ParseRoom(tt.in)
			if err != nil {
				t.Fatalf("ParseRoom(%q) error: %v", tt.in, err)
			}
			if r.String() != tt.in {
				t.Errorf("String() = %q, want %q", r.String(), tt.in)
			}
			if r.Kind() != tt.kind {
				t.Errorf("Kind() = %q, want %q", r.Kind(), tt.kind)
			}
			if r.ID() != tt.id {
				t.Errorf("ID() = %q, want %q", r.ID(), tt.id)
			}
			if got := domain.MustRoom(tt.in); got != r {
				t.Errorf("MustRoom(%q) = %q, want %q", tt.in, got, r)
			}
		})
	}

	invalid := []string{
		"",
		"user-",
		"user",
		"users",
		"sellers-1",
		"buyers-1",
		"global-1",
		"Global",
		"USER-1",
		"admin-1",
		"room-1",
		"template-1",
		"template-checkout",
		"template-checkout-",
		"checkout-1",
		"user-a b",
		"user-a/b",
		"user-é",
		"user-a\x00",
		"user-a\n",
		"user-" + long + "a",
		" user-1",
		"user-1 ",
		"request-%2e",
		"chat-*",
		"chat-a@b",
	}
	for _, in := range invalid {
		t.Run("Invalid/"+in, func(t *testing.T) {
			t.Parallel()
			r, err := domain.ParseRoom(in)
			if err == nil {
				t.Fatalf("ParseRoom(%q) = %q, want error", in, r)
			}
			if domain.ErrorCode(err) != domain.CodeInvalid {
				t.Errorf("code = %q, want %q", domain.ErrorCode(err), domain.CodeInvalid)
			}
			if !errors.Is(err, domain.ErrInvalid) {
				t.Errorf("errors.Is(err, ErrInvalid) = false")
			}
			if r != "" {
				t.Errorf("room = %q, want zero", r)
			}
			// A Room made by conversion is just as invalid.
			if k := domain.Room(in).Kind(); k != "" {
				t.Errorf("Room(%q).Kind() = %q, want empty", in, k)
			}
			if id := domain.Room(in).ID(); id != "" {
				t.Errorf("Room(%q).ID() = %q, want empty", in, id)
			}
		})
	}
}

func TestParseRoomErrorIsShort(t *testing.T) {
	t.Parallel()
	_, err := domain.ParseRoom(strings.Repeat("x", 100_000))
	if err == nil {
		t.Fatal("want error")
	}
	if n := len(err.Error()); n > 400 {
		t.Errorf("error message is %d bytes, want a short one", n)
	}
}

func TestMustRoomPanics(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Error("MustRoom(\"bogus\") did not panic")
		}
	}()
	domain.MustRoom("bogus")
}

func TestRoomConstructors(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		mk   func(string) (domain.Room, error)
		kind domain.RoomKind
	}{
		{"UserRoom", domain.UserRoom, domain.KindUser},
		{"RequestRoom", domain.RequestRoom, domain.KindRequest},
		{"SellerRoom", domain.SellerRoom, domain.KindSeller},
		{"BuyerRoom", domain.BuyerRoom, domain.KindBuyer},
		{"ChatRoom", domain.ChatRoom, domain.KindChat},
		{"TemplateCheckoutRoom", domain.TemplateCheckoutRoom, domain.KindTemplateCheckout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, id := range []string{"1", "a-b", "x.y_z:w", "sellers", strings.Repeat("Z", domain.MaxIDLen)} {
				r, err := tt.mk(id)
				if err != nil {
					t.Fatalf("%s(%q) error: %v", tt.name, id, err)
				}
				if want := string(tt.kind) + "-" + id; r.String() != want {
					t.Errorf("%s(%q) = %q, want %q", tt.name, id, r, want)
				}
				back, err := domain.ParseRoom(r.String())
				if err != nil || back != r {
					t.Errorf("ParseRoom(%q) = %q, %v; want round trip", r, back, err)
				}
				if r.Kind() != tt.kind || r.ID() != id {
					t.Errorf("%q: Kind, ID = %q, %q; want %q, %q", r, r.Kind(), r.ID(), tt.kind, id)
				}
			}
			for _, id := range []string{"", "a b", "a/b", strings.Repeat("Z", domain.MaxIDLen+1)} {
				if r, err := tt.mk(id); err == nil || domain.ErrorCode(err) != domain.CodeInvalid {
					t.Errorf("%s(%q) = %q, %v; want CodeInvalid error", tt.name, id, r, err)
				}
			}
		})
	}

	for _, r := range []domain.Room{domain.RoomSellers, domain.RoomBuyers, domain.RoomGlobal} {
		if back, err := domain.ParseRoom(r.String()); err != nil || back != r {
			t.Errorf("ParseRoom(%q) = %q, %v; want round trip", r, back, err)
		}
		if r.ID() != "" {
			t.Errorf("%q.ID() = %q, want empty", r, r.ID())
		}
	}
}

func TestValidID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		id string
		ok bool
	}{
		{"a", true},
		{"A-z_0.9:x", true},
		{strings.Repeat("1", domain.MaxIDLen), true},
		{"", false},
		{strings.Repeat("1", domain.MaxIDLen+1), false},
		{"a b", false},
		{"a@b", false},
		{"ü", false},
		{"a\tb", false},
	}
	for _, tt := range tests {
		err := domain.ValidID(tt.id)
		if (err == nil) != tt.ok {
			t.Errorf("ValidID(%q) = %v, want ok=%v", tt.id, err, tt.ok)
		}
		if err != nil && domain.ErrorCode(err) != domain.CodeInvalid {
			t.Errorf("ValidID(%q) code = %q, want invalid", tt.id, domain.ErrorCode(err))
		}
	}
}

func TestRoomClasses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		room                          domain.Room
		personal, shared, needsMember bool
		hasID                         bool
	}{
		{"user-1", true, false, false, true},
		{"seller-1", true, false, false, true},
		{"buyer-1", true, false, false, true},
		{"request-1", false, true, true, true},
		{"chat-1", false, true, true, true},
		{"template-checkout-1", false, true, true, true},
		{"sellers", false, false, false, false},
		{"buyers", false, false, false, false},
		{"global", false, false, false, false},
		{"bogus", false, false, false, false},
		{"", false, false, false, false},
	}
	for _, tt := range tests {
		if got := tt.room.Personal(); got != tt.personal {
			t.Errorf("%q.Personal() = %v, want %v", tt.room, got, tt.personal)
		}
		if got := tt.room.Shared(); got != tt.shared {
			t.Errorf("%q.Shared() = %v, want %v", tt.room, got, tt.shared)
		}
		if got := domain.NeedsMembership(tt.room); got != tt.needsMember {
			t.Errorf("NeedsMembership(%q) = %v, want %v", tt.room, got, tt.needsMember)
		}
		if got := tt.room.Kind().HasID(); got != tt.hasID {
			t.Errorf("%q.Kind().HasID() = %v, want %v", tt.room, got, tt.hasID)
		}
	}
}

func TestRoomKinds(t *testing.T) {
	t.Parallel()
	kinds := domain.RoomKinds()
	if len(kinds) != 9 {
		t.Fatalf("RoomKinds() has %d kinds, want 9", len(kinds))
	}
	for _, k := range kinds {
		r := roomOf(t, k)
		if r.Kind() != k {
			t.Errorf("roomOf(%q).Kind() = %q", k, r.Kind())
		}
	}
	kinds[0] = "mutated"
	if domain.RoomKinds()[0] == "mutated" {
		t.Error("RoomKinds returns the package's own slice")
	}
}

// roomOf returns a valid room of kind k.
func roomOf(t testing.TB, k domain.RoomKind) domain.Room {
	t.Helper()
	if !k.HasID() {
		return domain.MustRoom(string(k))
	}
	return domain.MustRoom(string(k) + "-k1")
}

func TestSelectRooms(t *testing.T) {
	t.Parallel()
	set := map[domain.Room]bool{"chat-a": true, "chat-b": true, "chat-c": false}
	for _, tt := range []struct {
		name  string
		rooms []domain.Room
		want  []domain.Room
	}{
		{"none", nil, nil},
		{"order kept", []domain.Room{"chat-b", "chat-x", "chat-a"}, []domain.Room{"chat-b", "chat-a"}},
		{"each once", []domain.Room{"chat-a", "chat-a", "chat-b", "chat-a"}, []domain.Room{"chat-a", "chat-b"}},
		{"false is not held", []domain.Room{"chat-c"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := domain.SelectRooms(tt.rooms, set); !slices.Equal(got, tt.want) {
				t.Errorf("SelectRooms(%v) = %v, want %v", tt.rooms, got, tt.want)
			}
		})
	}
}
