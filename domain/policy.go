package domain

import (
	"encoding/json"
	"slices"
)

// The spec's join events are unauthenticated: any client may join any room.
// roomlog authenticates the socket and decides every join here, so that the
// rules are one table test rather than scattered checks.

// deniedMessage is the one message of every refusal. It names neither the
// room nor the reason, so that a refusal tells a prober nothing about
// whether the room exists or who is in it.
const deniedMessage = "not allowed"

func denied() error { return &Error{Code: CodeForbidden, Message: deniedMessage} }

// NeedsMembership reports whether joining r requires membership of it: true
// for shared rooms (request, chat and template-checkout rooms).
func NeedsMembership(r Room) bool { return r.Shared() }

// CanJoin decides whether p may join room r to receive its live events.
// member says whether the log records p.UserID as a member of r; it matters
// only for shared rooms (see NeedsMembership). The rules:
//
//   - p must be authenticated (non-empty UserID) and r a valid room;
//   - admins may join any room;
//   - user-<id> only if id is p.UserID;
//   - buyer-<id> only if id is p.UserID and p has RoleBuyer; buyers only
//     with RoleBuyer;
//   - seller-<id> only if id is p.UserID and p has RoleSeller; sellers only
//     with RoleSeller;
//   - global: any authenticated principal;
//   - request, chat and template-checkout rooms only if member is true.
//
// The auditor role grants no live joins; see CanRead. CanJoin returns nil
// or an *Error with CodeForbidden whose message is the same for every
// refusal.
func CanJoin(p Principal, r Room, member bool) error {
	if p.UserID == "" {
		return denied()
	}
	k, id, ok := parseRoom(string(r))
	if !ok {
		return denied()
	}
	if p.IsAdmin() {
		return nil
	}
	allowed := false
	switch k {
	case KindUser:
		allowed = id == p.UserID
	case KindBuyer:
		allowed = id == p.UserID && p.HasRole(RoleBuyer)
	case KindSeller:
		allowed = id == p.UserID && p.HasRole(RoleSeller)
	case KindBuyers:
		allowed = p.HasRole(RoleBuyer)
	case KindSellers:
		allowed = p.HasRole(RoleSeller)
	case KindGlobal:
		allowed = true
	case KindRequest, KindChat, KindTemplateCheckout:
		allowed = member
	}
	if !allowed {
		return denied()
	}
	return nil
}

// CanRead decides whether p may read room r's stored history, for REST
// catch-up and audit queries. It allows whatever CanJoin allows and, in
// addition, lets an authenticated principal with RoleAuditor read every
// valid room: auditors may query history but never receive live events.
// It returns nil or the same *Error with CodeForbidden as CanJoin.
func CanRead(p Principal, r Room, member bool) error {
	if err := CanJoin(p, r, member); err == nil {
		return nil
	}
	if p.UserID != "" && p.HasRole(RoleAuditor) && r.Kind() != "" {
		return nil
	}
	return denied()
}

// CanType decides whether p may broadcast a typing indicator (user-typing)
// to chat. chat must be a chat room and p a member of it; unlike CanJoin,
// admins get no exception, since someone outside a chat has nothing to type
// in it. It returns nil or an *Error with CodeForbidden.
func CanType(p Principal, chat Room, member bool) error {
	if p.UserID == "" || chat.Kind() != KindChat || !member {
		return denied()
	}
	return nil
}

// MembershipChange is one change of a shared room's membership that an
// event implies.
type MembershipChange struct {
	// Room is the shared room whose membership changes.
	Room Room
	// UserID is the user who joins or leaves the membership.
	UserID string
	// Added is true if UserID becomes a member and false if it stops being
	// one.
	Added bool
}

// membershipEventTypes are the event types ImpliedMembership reads; for
// every other type it returns nothing.
var membershipEventTypes = []string{
	EventNewPurchaseRequest, EventNewOffer, EventSellerOfferUpdate, EventParticipantRemoved,
	EventNewMessage, EventParticipantsAdded, EventRoomMemberAdded, EventRoomMemberRemoved,
}

// MembershipEventTypes returns the event types that can imply membership
// changes: ImpliedMembership returns nothing for any other type. Readers
// that look for membership changes in the log filter on them.
func MembershipEventTypes() []string { return slices.Clone(membershipEventTypes) }

// ImpliedMembership returns the membership changes an event implies, in a
// fixed order. These are the rules:
//
//   - new-purchase-request: the buyer (buyerId) becomes a member of
//     request-<_id>;
//   - new-offer and seller-offer-update: the seller (sellerId) becomes a
//     member of request-<requestId>;
//   - participants-added: each of addedUserIds becomes a member of
//     chat-<chatId>;
//   - participant-removed: removedUserId stops being a member of
//     chat-<chatId>;
//   - new-message: the sender (senderId) becomes a member of chat-<chatId>;
//   - room-member-added and room-member-removed: userId becomes or stops
//     being a member of each shared room in rooms (other rooms are
//     ignored);
//   - every other event implies nothing.
//
// ImpliedMembership does not validate: a malformed payload, or an id that
// fails ValidID, implies nothing (ValidatePublish rejects such events
// before they reach the log).
func ImpliedMembership(eventType string, rooms []Room, payload json.RawMessage) []MembershipChange {
	// Fields are read by exact key from a map, never by decoding into a
	// struct: encoding/json matches struct fields ignoring case, which could
	// read a different key than the one ValidatePublish checked.
	if !slices.Contains(membershipEventTypes, eventType) {
		return nil
	}
	m, err := objectMembers(payload)
	if err != nil {
		return nil
	}
	switch eventType {
	case EventNewPurchaseRequest:
		return one(RequestRoom, stringField(m, "_id"), stringField(m, "buyerId"), true)
	case EventNewOffer, EventSellerOfferUpdate:
		return one(RequestRoom, stringField(m, "requestId"), stringField(m, "sellerId"), true)
	case EventParticipantRemoved:
		return one(ChatRoom, stringField(m, "chatId"), stringField(m, "removedUserId"), false)
	case EventNewMessage:
		return one(ChatRoom, stringField(m, "chatId"), stringField(m, "senderId"), true)
	case EventParticipantsAdded:
		room, err := ChatRoom(stringField(m, "chatId"))
		if err != nil {
			return nil
		}
		var users []string
		if json.Unmarshal(m["addedUserIds"], &users) != nil {
			return nil
		}
		var out []MembershipChange
		seen := make(map[string]bool, len(users)) // a map: users may be many
		for _, u := range users {
			if validID(u) && !seen[u] {
				seen[u] = true
				out = append(out, MembershipChange{Room: room, UserID: u, Added: true})
			}
		}
		return out
	case EventRoomMemberAdded, EventRoomMemberRemoved:
		user := stringField(m, "userId")
		if !validID(user) {
			return nil
		}
		var out []MembershipChange
		seen := make(map[Room]bool, len(rooms))
		for _, r := range rooms {
			if r.Shared() && !seen[r] {
				seen[r] = true
				out = append(out, MembershipChange{Room: r, UserID: user, Added: eventType == EventRoomMemberAdded})
			}
		}
		return out
	}
	return nil
}

// stringField returns the string at m[key], or "" if it is absent or not a
// string.
func stringField(m map[string]json.RawMessage, key string) string {
	s, _ := str(m[key])
	return s
}

// one returns the single change that makes user a member (or not) of the
// room that mk builds from id, or nothing if either id is invalid.
func one(mk func(string) (Room, error), id, user string, added bool) []MembershipChange {
	room, err := mk(id)
	if err != nil || !validID(user) {
		return nil
	}
	return []MembershipChange{{Room: room, UserID: user, Added: added}}
}
