package domain

import (
	"fmt"
	"strings"
)

// Room is a validated room name such as "user-42", "sellers" or "global".
// Construct one with ParseRoom or the constructors; the zero Room is invalid.
//
// This file is the only code that knows how room names are spelled. A room
// name is either a bare name (sellers, buyers, global) or a kind prefix
// followed by an id (user-<id>, request-<id>, seller-<id>, buyer-<id>,
// chat-<id>, template-checkout-<id>). Ids may themselves contain '-', so
// "user-a-b" is the user room of id "a-b".
type Room string

// String returns the room's wire name.
func (r Room) String() string { return string(r) }

// RoomKind is the kind of a room: the part of its name before the id, or the
// whole name for rooms without an id.
type RoomKind string

// The room kinds of the spec. Their values are the wire prefixes (without
// the trailing '-') or, for rooms without an id, the whole room name.
const (
	// KindUser is user-<userId>: one user's private notifications.
	KindUser RoomKind = "user"
	// KindRequest is request-<requestId>: the parties of one purchase request.
	KindRequest RoomKind = "request"
	// KindSeller is seller-<sellerId>: one seller's private updates.
	KindSeller RoomKind = "seller"
	// KindSellers is the room "sellers" that every seller joins.
	KindSellers RoomKind = "sellers"
	// KindBuyer is buyer-<buyerId>: one buyer's private updates.
	KindBuyer RoomKind = "buyer"
	// KindBuyers is the room "buyers" that every buyer joins.
	KindBuyers RoomKind = "buyers"
	// KindChat is chat-<chatId>: the participants of one chat.
	KindChat RoomKind = "chat"
	// KindTemplateCheckout is template-checkout-<checkoutId>: the parties of
	// one template checkout.
	KindTemplateCheckout RoomKind = "template-checkout"
	// KindGlobal is the room "global": what the spec calls a global emit or a
	// broadcast (io.emit) goes here.
	KindGlobal RoomKind = "global"
)

// The rooms that have no id. Each is its own kind.
const (
	// RoomSellers is the room every seller joins.
	RoomSellers Room = "sellers"
	// RoomBuyers is the room every buyer joins.
	RoomBuyers Room = "buyers"
	// RoomGlobal is the room of global emits; every authenticated client
	// may join it.
	RoomGlobal Room = "global"
)

// MaxIDLen is the maximum length in bytes of a room id.
const MaxIDLen = 64

// IDCharset describes the characters a room id may contain: ASCII letters,
// digits, '.', '_', ':' and '-'. Ids are 1 to MaxIDLen of them. This admits
// MongoDB ObjectIds, UUIDs and most external ids while keeping room names
// safe to put in URLs, logs and SQL literals.
const IDCharset = "[A-Za-z0-9._:-]"

// roomKinds lists every kind in a fixed order; RoomKinds returns a copy.
var roomKinds = []RoomKind{
	KindUser, KindRequest, KindSeller, KindSellers, KindBuyer,
	KindBuyers, KindChat, KindTemplateCheckout, KindGlobal,
}

// RoomKinds returns every room kind, in a fixed order.
func RoomKinds() []RoomKind {
	out := make([]RoomKind, len(roomKinds))
	copy(out, roomKinds)
	return out
}

// HasID reports whether rooms of kind k carry an id (user-<id>) rather than
// being a single fixed room (sellers). It is false for unknown kinds.
func (k RoomKind) HasID() bool {
	switch k {
	case KindUser, KindRequest, KindSeller, KindBuyer, KindChat, KindTemplateCheckout:
		return true
	}
	return false
}

// prefixed lists the kinds whose rooms carry an id, longest prefix first so
// that no prefix can shadow a longer one.
var prefixed = []RoomKind{
	KindTemplateCheckout, KindRequest, KindSeller, KindBuyer, KindUser, KindChat,
}

// ValidID returns nil if id may be used as a room id: 1 to MaxIDLen
// characters from IDCharset. Otherwise it returns an *Error with
// CodeInvalid.
func ValidID(id string) error {
	if !validID(id) {
		return Errorf(CodeInvalid, "invalid id: must be 1 to %d characters of %s", MaxIDLen, IDCharset)
	}
	return nil
}

func validID(id string) bool {
	if len(id) == 0 || len(id) > MaxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// parseRoom splits s into its kind and id. It reports false if s is not a
// valid room name.
func parseRoom(s string) (RoomKind, string, bool) {
	switch Room(s) {
	case RoomSellers:
		return KindSellers, "", true
	case RoomBuyers:
		return KindBuyers, "", true
	case RoomGlobal:
		return KindGlobal, "", true
	}
	for _, k := range prefixed {
		if id, ok := strings.CutPrefix(s, string(k)+"-"); ok {
			if !validID(id) {
				return k, id, false
			}
			return k, id, true
		}
	}
	return "", "", false
}

// ParseRoom parses a room's wire name. It accepts user-<id>, request-<id>,
// seller-<id>, sellers, buyer-<id>, buyers, chat-<id>,
// template-checkout-<id> and global, where <id> satisfies ValidID. Anything
// else yields an *Error with CodeInvalid. For every Room r it returns,
// ParseRoom(r.String()) returns r again.
func ParseRoom(s string) (Room, error) {
	k, _, ok := parseRoom(s)
	if ok {
		return Room(s), nil
	}
	if k != "" {
		return "", Errorf(CodeInvalid, "invalid room %s: the id after %q must be 1 to %d characters of %s",
			quoteShort(s), string(k)+"-", MaxIDLen, IDCharset)
	}
	return "", Errorf(CodeInvalid, "invalid room %s: want user-<id>, request-<id>, seller-<id>, sellers, buyer-<id>, buyers, chat-<id>, template-checkout-<id> or global",
		quoteShort(s))
}

// MustRoom is like ParseRoom but panics if s is not a valid room. It is
// meant for tests and package-level values.
func MustRoom(s string) Room {
	r, err := ParseRoom(s)
	if err != nil {
		panic(err)
	}
	return r
}

func roomWithID(k RoomKind, id string) (Room, error) {
	if !validID(id) {
		return "", Errorf(CodeInvalid, "invalid %s id: must be 1 to %d characters of %s", k, MaxIDLen, IDCharset)
	}
	return Room(string(k) + "-" + id), nil
}

// UserRoom returns the room user-<id>, or an *Error with CodeInvalid if id
// fails ValidID.
func UserRoom(id string) (Room, error) { return roomWithID(KindUser, id) }

// RequestRoom returns the room request-<id>, or an *Error with CodeInvalid
// if id fails ValidID.
func RequestRoom(id string) (Room, error) { return roomWithID(KindRequest, id) }

// SellerRoom returns the room seller-<id>, or an *Error with CodeInvalid if
// id fails ValidID.
func SellerRoom(id string) (Room, error) { return roomWithID(KindSeller, id) }

// BuyerRoom returns the room buyer-<id>, or an *Error with CodeInvalid if id
// fails ValidID.
func BuyerRoom(id string) (Room, error) { return roomWithID(KindBuyer, id) }

// ChatRoom returns the room chat-<id>, or an *Error with CodeInvalid if id
// fails ValidID.
func ChatRoom(id string) (Room, error) { return roomWithID(KindChat, id) }

// TemplateCheckoutRoom returns the room template-checkout-<id>, or an *Error
// with CodeInvalid if id fails ValidID.
func TemplateCheckoutRoom(id string) (Room, error) { return roomWithID(KindTemplateCheckout, id) }

// Kind returns the room's kind, or "" if r is not a valid room.
func (r Room) Kind() RoomKind {
	k, _, ok := parseRoom(string(r))
	if !ok {
		return ""
	}
	return k
}

// ID returns the room's id: "42" for "user-42". It is "" for sellers, buyers
// and global, and for an invalid room.
func (r Room) ID() string {
	_, id, ok := parseRoom(string(r))
	if !ok {
		return ""
	}
	return id
}

// Personal reports whether r belongs to one user: a user, seller or buyer
// room. Only that user (with the matching role) may join it.
func (r Room) Personal() bool {
	switch r.Kind() {
	case KindUser, KindSeller, KindBuyer:
		return true
	}
	return false
}

// Shared reports whether r is shared by the members of one thing: a
// request, chat or template-checkout room. Joining it needs membership,
// which the log records (see ImpliedMembership).
func (r Room) Shared() bool {
	switch r.Kind() {
	case KindRequest, KindChat, KindTemplateCheckout:
		return true
	}
	return false
}

// quoteShort quotes s for an error message, cutting it short so that hostile
// input cannot blow up error bodies and logs.
func quoteShort(s string) string {
	const limit = 80
	if len(s) > limit {
		return fmt.Sprintf("%q…", s[:limit])
	}
	return fmt.Sprintf("%q", s)
}

// SelectRooms returns those of rooms that set holds, in the order of
// rooms, each once.
func SelectRooms(rooms []Room, set map[Room]bool) []Room {
	var out []Room
	seen := make(map[Room]bool, len(set))
	for _, r := range rooms {
		if set[r] && !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	return out
}
