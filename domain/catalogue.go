package domain

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// EventSpec describes one event type of the catalogue: whether it is
// stored, whether sockets ever see it, which rooms it may target and what its
// payload looks like.
type EventSpec struct {
	// Name is the event's wire name, e.g. "new-offer".
	Name string
	// Durable events are appended to the log and replayed on catch-up.
	// Volatile ones (user-typing) are only broadcast live and never stored,
	// so they cannot be published through the log.
	Durable bool
	// Internal events carry roomlog's own bookkeeping (room membership):
	// producers publish them to grant or revoke membership of shared rooms.
	// They are delivered like every durable event, so that each room's seqs
	// reach clients without gaps; clients that do not know them ignore
	// them.
	Internal bool
	// Extension is true for the x- events that producers define themselves;
	// their payload may be any JSON object and they may target any room.
	Extension bool
	// RoomKinds are the kinds of room the event may target.
	RoomKinds []RoomKind
	// Fields are the payload's known top-level fields. Fields not listed
	// are allowed, for forward compatibility.
	Fields []FieldSpec
}

// Allows reports whether the event may target a room of kind k.
func (s EventSpec) Allows(k RoomKind) bool { return slices.Contains(s.RoomKinds, k) }

// Validate checks payload against the spec: it must be a single well-formed
// JSON object in valid UTF-8, nested at most MaxPayloadDepth deep, with no
// duplicate keys, no \u0000 or unpaired surrogate escapes and no number
// beyond float64 range; and every field in Fields must be present if
// required and of its type if present. It returns nil if the payload is
// valid and otherwise at most MaxFieldErrors errors, with field names such as
// "payload.requestId" or "payload.data.offerId".
func (s EventSpec) Validate(payload json.RawMessage) []FieldError {
	v := validator{}
	obj, ok := v.object(payload, len(s.Fields) > 0)
	if !ok {
		return v.errs
	}
	v.fields("payload", obj, s.Fields)
	return v.errs
}

// FieldType is the JSON type a payload field must have.
type FieldType string

// The field types of the catalogue.
const (
	// FieldString is any JSON string.
	FieldString FieldType = "string"
	// FieldID is a JSON string that satisfies ValidID. Fields that name a
	// room's id or a member (requestId, chatId, userId, ...) use it, so
	// that room constructors and ImpliedMembership can rely on them.
	FieldID FieldType = "id"
	// FieldTime is a JSON string holding an RFC 3339 timestamp, such as
	// "2024-05-01T12:00:00.000Z".
	FieldTime FieldType = "time"
	// FieldNumber is any JSON number.
	FieldNumber FieldType = "number"
	// FieldCount is a JSON number that is a non-negative integer without a
	// fraction or exponent.
	FieldCount FieldType = "count"
	// FieldAmount is a money amount: a JSON number, or a JSON string holding
	// a decimal number such as "12.50" or "-0.001". Strings are accepted
	// because money often travels as a string to keep its precision.
	FieldAmount FieldType = "amount"
	// FieldStringOrNumber is a JSON string or a JSON number, for values whose
	// type the spec leaves open (external task ids, levels).
	FieldStringOrNumber FieldType = "string|number"
	// FieldBool is true or false.
	FieldBool FieldType = "boolean"
	// FieldObject is a JSON object; FieldSpec.Fields may describe it.
	FieldObject FieldType = "object"
	// FieldArray is a JSON array; FieldSpec.Elem may type its elements.
	FieldArray FieldType = "array"
	// FieldAny is any JSON value.
	FieldAny FieldType = "any"
)

// FieldSpec describes one field of a payload.
type FieldSpec struct {
	// Name is the field's JSON key.
	Name string
	// Type is the field's JSON type.
	Type FieldType
	// Required fields must be present and not null. An optional field may
	// be absent or null (JavaScript producers often send null for "none").
	Required bool
	// Enum, if set, lists the values a FieldString may take.
	Enum []string
	// Elem, if set, is the type of every element of a FieldArray.
	Elem FieldType
	// Fields, if set, are the known fields of a FieldObject; unknown ones
	// are allowed.
	Fields []FieldSpec
}

// ExtensionPrefix starts the names of extension events: producers may
// publish "x-<name>" events, where <name> is 1 to MaxExtensionNameLen
// characters of [a-z0-9-], with any JSON object as payload, to any room.
// Extension events are durable and emitted like catalogue events.
const ExtensionPrefix = "x-"

// MaxExtensionNameLen is the maximum length of the part of an extension
// event's name after ExtensionPrefix.
const MaxExtensionNameLen = 64

// MaxPublishRooms is the most rooms one published event may target.
const MaxPublishRooms = 64

// field helpers keep the table below readable.
func req(name string, t FieldType) FieldSpec { return FieldSpec{Name: name, Type: t, Required: true} }
func opt(name string, t FieldType) FieldSpec { return FieldSpec{Name: name, Type: t} }

// kinds shared by several entries.
var (
	sharedKinds = []RoomKind{KindRequest, KindChat, KindTemplateCheckout}
	userKinds   = []RoomKind{KindUser}
	chatKinds   = []RoomKind{KindChat}
	reqKinds    = []RoomKind{KindRequest}
	globalKinds = []RoomKind{KindGlobal}
)

// catalogue is every event of the spec plus roomlog's membership events. The
// spec is the source of the room kinds and payloads; where it is vague, the
// comment on the entry says what was chosen. Fields that the spec's table
// writes without "?" are required.
var catalogue = []EventSpec{
	// Marketplace.
	{
		// The spec's table targets "sellers", but its own helper example
		// emits it globally (emitGlobalEvent), so both are allowed. The
		// payload is a whole PurchaseRequest document: only its _id and
		// buyerId are required (ImpliedMembership needs them); the rest
		// passes through untouched.
		Name: EventNewPurchaseRequest, Durable: true,
		RoomKinds: []RoomKind{KindSellers, KindGlobal},
		Fields:    []FieldSpec{req("_id", FieldID), req("buyerId", FieldID)},
	},
	{
		Name: EventNewOffer, Durable: true,
		RoomKinds: []RoomKind{KindBuyer},
		Fields: []FieldSpec{
			req("requestId", FieldID), req("offer", FieldObject), req("sellerId", FieldID),
		},
	},
	{
		// "seller-<sellerId> (and global on payment confirm)": the seller
		// room or global; which eventType goes global is the producer's
		// business.
		Name: EventSellerOfferUpdate, Durable: true,
		RoomKinds: []RoomKind{KindSeller, KindGlobal},
		Fields: []FieldSpec{
			req("sellerId", FieldID),
			req("requestId", FieldID),
			{Name: "eventType", Type: FieldString, Required: true, Enum: []string{
				string(OfferPaymentCompleted), string(OfferRejected), string(OfferAccepted),
			}},
			{Name: "data", Type: FieldObject, Required: true, Fields: []FieldSpec{
				req("offerId", FieldString),
				req("isSelected", FieldBool),
				opt("paymentId", FieldString),
				opt("transactionHash", FieldString),
				opt("reason", FieldString),
			}},
		},
	},
	{
		// The spec's helper example omits requestId, but its table lists
		// it without "?"; the table wins.
		Name: EventPurchaseRequestUpdate, Durable: true,
		RoomKinds: reqKinds,
		Fields: []FieldSpec{
			req("type", FieldString), req("requestId", FieldID),
			opt("status", FieldString), opt("paymentId", FieldString),
			opt("txHash", FieldString), opt("provider", FieldString),
		},
	},
	{
		Name: EventRequestCancelled, Durable: true,
		RoomKinds: userKinds,
		Fields:    []FieldSpec{req("requestId", FieldID), req("reason", FieldString)},
	},
	{
		Name: EventTransactionCompleted, Durable: true,
		RoomKinds: userKinds,
		Fields: []FieldSpec{
			req("requestId", FieldID), req("paymentId", FieldString),
			req("amount", FieldAmount), req("currency", FieldString),
		},
	},
	{
		// The spec sends it to the request room although "only the seller
		// UI uses this"; the seller room is allowed too so that producers
		// can keep the code away from the buyer. The code is a string so
		// that leading zeros survive.
		Name: EventDeliveryCodeGenerated, Durable: true,
		RoomKinds: []RoomKind{KindRequest, KindSeller},
		Fields:    []FieldSpec{req("requestId", FieldID), req("deliveryCode", FieldString)},
	},
	{
		Name: EventDeliveryUpdate, Durable: true,
		RoomKinds: reqKinds,
		Fields: []FieldSpec{
			req("requestId", FieldID), req("status", FieldString),
			opt("carrier", FieldString), opt("trackingNumber", FieldString),
		},
	},
	{
		Name: EventDeliveryConfirmed, Durable: true,
		RoomKinds: reqKinds,
		Fields:    []FieldSpec{req("requestId", FieldID)},
	},
	{
		Name: EventBuyerConfirmedDelivery, Durable: true,
		RoomKinds: userKinds,
		Fields:    []FieldSpec{req("requestId", FieldID), req("buyerId", FieldID)},
	},
	{
		Name: EventTemplateCheckoutPaymentConfirmed, Durable: true,
		RoomKinds: []RoomKind{KindGlobal, KindTemplateCheckout},
		Fields: []FieldSpec{
			req("checkoutId", FieldID),
			{Name: "requestIds", Type: FieldArray, Required: true, Elem: FieldID},
			req("paymentId", FieldString),
		},
	},
	{
		// The spec emits it globally; the checkout room is allowed too so
		// that producers can narrow the broadcast, as the spec recommends
		// ("use emitToRoom whenever you can").
		Name: EventTemplateCheckoutPaymentPending, Durable: true,
		RoomKinds: []RoomKind{KindGlobal, KindTemplateCheckout},
		Fields:    []FieldSpec{req("checkoutId", FieldID)},
	},
	{
		// As for template-checkout-payment-pending.
		Name: EventTemplateCheckoutPaymentFailed, Durable: true,
		RoomKinds: []RoomKind{KindGlobal, KindTemplateCheckout},
		Fields:    []FieldSpec{req("checkoutId", FieldID), req("reason", FieldString)},
	},

	// Payment.
	{
		Name: EventPaymentCreated, Durable: true,
		RoomKinds: globalKinds,
		Fields: []FieldSpec{
			req("paymentId", FieldString), req("provider", FieldString),
			req("requestId", FieldID), req("buyerId", FieldID), req("sellerId", FieldID),
			req("amount", FieldAmount), req("currency", FieldString),
		},
	},
	{
		Name: EventPaymentReceived, Durable: true,
		RoomKinds: userKinds,
		Fields: []FieldSpec{
			req("purchaseRequestId", FieldID), req("amount", FieldAmount),
			req("currency", FieldString), req("buyerId", FieldID),
		},
	},
	{
		// "global + room-specific": the spec does not say which rooms, so
		// every room a payment concerns is allowed: the request, its
		// parties' user, seller and buyer rooms, and a template checkout.
		Name: EventPaymentUpdate, Durable: true,
		RoomKinds: []RoomKind{
			KindGlobal, KindRequest, KindUser, KindSeller, KindBuyer, KindTemplateCheckout,
		},
		Fields: []FieldSpec{
			req("paymentId", FieldString), req("status", FieldString),
			opt("escrowState", FieldString), opt("txHash", FieldString),
		},
	},
	{
		// taskId is the payout provider's id, a string or a number.
		Name: EventPayoutCreated, Durable: true,
		RoomKinds: globalKinds,
		Fields: []FieldSpec{
			req("payoutId", FieldString), req("taskId", FieldStringOrNumber),
			req("sellerId", FieldID), req("amount", FieldAmount), req("currency", FieldString),
		},
	},
	{
		Name: EventPayoutCompleted, Durable: true,
		RoomKinds: []RoomKind{KindGlobal, KindUser},
		Fields: []FieldSpec{
			req("payoutId", FieldString), req("taskId", FieldStringOrNumber),
			req("txHash", FieldString),
		},
	},
	{
		Name: EventPayoutUpdated, Durable: true,
		RoomKinds: globalKinds,
		Fields:    []FieldSpec{req("payoutId", FieldString), req("status", FieldString)},
	},

	// Chat.
	{
		Name: EventNewMessage, Durable: true,
		RoomKinds: chatKinds,
		Fields: []FieldSpec{
			req("chatId", FieldID),
			{Name: "message", Type: FieldObject, Required: true, Fields: []FieldSpec{
				req("_id", FieldString),
				req("content", FieldString),
				req("senderId", FieldID),
				req("createdAt", FieldTime),
				opt("attachments", FieldArray),
			}},
			req("senderId", FieldID),
		},
	},
	{
		Name: EventMessagesRead, Durable: true,
		RoomKinds: chatKinds,
		Fields: []FieldSpec{
			req("chatId", FieldID), req("userId", FieldID),
			req("upToMessageId", FieldString), req("modifiedCount", FieldCount),
		},
	},
	{
		Name: EventMessageEdited, Durable: true,
		RoomKinds: chatKinds,
		Fields: []FieldSpec{
			req("chatId", FieldID), req("messageId", FieldString),
			req("content", FieldString), req("editedAt", FieldTime),
		},
	},
	{
		Name: EventMessageDeleted, Durable: true,
		RoomKinds: chatKinds,
		Fields: []FieldSpec{
			req("chatId", FieldID), req("messageId", FieldString), req("deletedAt", FieldTime),
		},
	},
	{
		Name: EventParticipantsAdded, Durable: true,
		RoomKinds: chatKinds,
		Fields: []FieldSpec{
			req("chatId", FieldID),
			{Name: "addedUserIds", Type: FieldArray, Required: true, Elem: FieldID},
		},
	},
	{
		Name: EventParticipantRemoved, Durable: true,
		RoomKinds: chatKinds,
		Fields:    []FieldSpec{req("chatId", FieldID), req("removedUserId", FieldID)},
	},
	{
		// Typing indicators are volatile: never logged, never replayed.
		Name: EventUserTyping, Durable: false,
		RoomKinds: chatKinds,
		Fields: []FieldSpec{
			req("userId", FieldID), opt("userName", FieldString), req("isTyping", FieldBool),
		},
	},
	{
		// "broadcast" means io.emit, i.e. the global room. Presence is
		// durable, like every event but typing. offline is allowed for the
		// presence tracking the spec proposes.
		Name: EventUserStatusChange, Durable: true,
		RoomKinds: globalKinds,
		Fields: []FieldSpec{
			req("userId", FieldID),
			{Name: "status", Type: FieldString, Required: true, Enum: []string{
				string(StatusOnline), string(StatusOffline),
			}},
			req("lastSeen", FieldTime),
		},
	},

	// Notification.
	{
		// data is free-form and may be absent.
		Name: EventNewNotification, Durable: true,
		RoomKinds: userKinds,
		Fields: []FieldSpec{
			{Name: "notification", Type: FieldObject, Required: true, Fields: []FieldSpec{
				req("_id", FieldString),
				req("type", FieldString),
				req("title", FieldString),
				req("body", FieldString),
				opt("data", FieldAny),
				req("createdAt", FieldTime),
			}},
		},
	},
	{
		Name: EventUnreadCountUpdate, Durable: true,
		RoomKinds: userKinds,
		Fields:    []FieldSpec{req("unreadCount", FieldCount)},
	},

	// Points.
	{
		// Levels may be numbers or names; points are numbers; perks is a
		// list of anything.
		Name: EventLevelUp, Durable: true,
		RoomKinds: userKinds,
		Fields: []FieldSpec{
			req("oldLevel", FieldStringOrNumber), req("newLevel", FieldStringOrNumber),
			req("lifetimePoints", FieldNumber), req("perks", FieldArray),
		},
	},
	{
		Name: EventReferralReward, Durable: true,
		RoomKinds: userKinds,
		Fields: []FieldSpec{
			req("referredUserId", FieldID), req("points", FieldNumber),
			req("transactionId", FieldString),
		},
	},
	{
		Name: EventReferralSignup, Durable: true,
		RoomKinds: userKinds,
		Fields: []FieldSpec{
			req("referredUserId", FieldID), req("name", FieldString), req("joinedAt", FieldTime),
		},
	},

	// Membership: roomlog's own events. A producer appends one to a shared
	// room to grant or revoke a user's membership of that room.
	{
		Name: EventRoomMemberAdded, Durable: true, Internal: true,
		RoomKinds: sharedKinds,
		Fields:    []FieldSpec{req("userId", FieldID)},
	},
	{
		Name: EventRoomMemberRemoved, Durable: true, Internal: true,
		RoomKinds: sharedKinds,
		Fields:    []FieldSpec{req("userId", FieldID)},
	},
}

// catalogueIndex maps a name to its entry in catalogue, which is sorted by
// name at init.
var catalogueIndex = func() map[string]int {
	slices.SortFunc(catalogue, func(a, b EventSpec) int { return strings.Compare(a.Name, b.Name) })
	m := make(map[string]int, len(catalogue))
	for i, s := range catalogue {
		if _, dup := m[s.Name]; dup {
			panic("domain: duplicate catalogue entry " + s.Name)
		}
		m[s.Name] = i
	}
	return m
}()

// lookup is Lookup without the defensive copy.
func lookup(name string) (EventSpec, bool) {
	if i, ok := catalogueIndex[name]; ok {
		return catalogue[i], true
	}
	if validExtensionName(name) {
		return EventSpec{Name: name, Durable: true, Extension: true, RoomKinds: roomKinds}, true
	}
	return EventSpec{}, false
}

// Lookup returns the spec of the event called name: a catalogue entry, or,
// for a well-formed extension name (see ExtensionPrefix), a durable spec
// that allows every room kind and any object payload. It reports false for
// any other name. The returned spec is a copy the caller may modify.
func Lookup(name string) (EventSpec, bool) {
	s, ok := lookup(name)
	if !ok {
		return EventSpec{}, false
	}
	return s.clone(), true
}

// Catalogue returns every catalogue entry, spec events and membership
// events, sorted by name. Extension events are not listed. The result is a
// copy the caller may modify.
func Catalogue() []EventSpec {
	out := make([]EventSpec, len(catalogue))
	for i, s := range catalogue {
		out[i] = s.clone()
	}
	return out
}

// ValidEventName reports whether name is an event roomlog knows: a
// catalogue name or a well-formed extension name. It is Lookup without the
// spec.
func ValidEventName(name string) bool {
	_, ok := lookup(name)
	return ok
}

func validExtensionName(name string) bool {
	rest, ok := strings.CutPrefix(name, ExtensionPrefix)
	if !ok || len(rest) == 0 || len(rest) > MaxExtensionNameLen {
		return false
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func (s EventSpec) clone() EventSpec {
	s.RoomKinds = slices.Clone(s.RoomKinds)
	s.Fields = cloneFields(s.Fields)
	return s
}

func cloneFields(fs []FieldSpec) []FieldSpec {
	if fs == nil {
		return nil
	}
	out := make([]FieldSpec, len(fs))
	for i, f := range fs {
		f.Enum = slices.Clone(f.Enum)
		f.Fields = cloneFields(f.Fields)
		out[i] = f
	}
	return out
}

// ValidatePublish checks that an event may be appended to the log: name is
// a durable event that Lookup knows, rooms are 1 to MaxPublishRooms distinct
// valid rooms whose kinds the event allows, and payload satisfies the
// event's spec (see EventSpec.Validate). It returns nil, or one *Error with
// CodeInvalid and message "invalid event" whose Fields list every problem
// found (up to a limit), under the field names "event", "rooms" and
// "payload…". Internal (membership) events may be published; volatile ones
// may not.
func ValidatePublish(name string, rooms []Room, payload json.RawMessage) error {
	var errs []FieldError
	add := func(field, format string, args ...any) {
		errs = append(errs, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}

	spec, known := lookup(name)
	switch {
	case !known:
		add("event", "unknown event %s: not in the catalogue and not an extension (%s followed by 1 to %d of [a-z0-9-])",
			quoteShort(name), ExtensionPrefix, MaxExtensionNameLen)
	case !spec.Durable:
		add("event", "%s is volatile: it is never stored, so it cannot be published to the log", name)
	}

	switch {
	case len(rooms) == 0:
		add("rooms", "at least one room is required")
	case len(rooms) > MaxPublishRooms:
		add("rooms", "at most %d rooms are allowed, got %d", MaxPublishRooms, len(rooms))
	default:
		seen := make(map[Room]bool, len(rooms))
		for i, r := range rooms {
			k, _, ok := parseRoom(string(r))
			switch {
			case !ok:
				add("rooms", "room %d (%s) is not a valid room name", i, quoteShort(string(r)))
			case seen[r]:
				add("rooms", "room %d (%s) is listed twice", i, r)
			case known && !spec.Allows(k):
				add("rooms", "%s cannot target %s rooms such as %s", name, k, r)
			}
			seen[r] = true
		}
	}

	// An unknown event's payload is still checked for being an object, so
	// that one round trip reports as much as possible.
	errs = append(errs, spec.Validate(payload)...)
	if len(errs) == 0 {
		return nil
	}
	if len(errs) > MaxFieldErrors {
		errs = errs[:MaxFieldErrors]
	}
	return &Error{Code: CodeInvalid, Message: "invalid event", Fields: errs}
}
