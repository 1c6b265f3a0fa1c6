package domain

import (
	"encoding/json"
)

// EntityKind is a kind of business entity whose history the log records
// across rooms: a purchase request, a payment, a template checkout or a
// chat. Its values appear in audit URLs (/audit/entities/{kind}/{id}) and
// in the entity index; never rename one.
type EntityKind string

// The entity kinds.
const (
	// EntityRequest is a purchase request, identified by its requestId
	// (the _id of its new-purchase-request document).
	EntityRequest EntityKind = "request"
	// EntityPayment is a payment, identified by its paymentId.
	EntityPayment EntityKind = "payment"
	// EntityTemplateCheckout is a template checkout, identified by its
	// checkoutId.
	EntityTemplateCheckout EntityKind = "template-checkout"
	// EntityChat is a chat, identified by its chatId.
	EntityChat EntityKind = "chat"
)

// MaxEntityIDLen bounds an entity id. Request, chat and template-checkout
// ids are room ids (ValidID); payment ids are the payment provider's
// strings and only need to be 1 to MaxEntityIDLen bytes.
const MaxEntityIDLen = 200

// EntityKinds returns every entity kind, in a fixed order.
func EntityKinds() []EntityKind {
	return []EntityKind{EntityRequest, EntityPayment, EntityTemplateCheckout, EntityChat}
}

// EntityRef names one entity.
type EntityRef struct {
	Kind EntityKind
	ID   string
}

// String returns "kind/id".
func (r EntityRef) String() string { return string(r.Kind) + "/" + r.ID }

// ParseEntityRef checks kind and id and returns the entity they name, or an
// *Error with CodeInvalid that names the bad field ("kind" or "id").
func ParseEntityRef(kind, id string) (EntityRef, error) {
	k := EntityKind(kind)
	switch k {
	case EntityRequest, EntityPayment, EntityTemplateCheckout, EntityChat:
	default:
		return EntityRef{}, &Error{Code: CodeInvalid, Message: "invalid entity", Fields: []FieldError{{
			Field: "kind", Message: "must be one of request, payment, template-checkout, chat",
		}}}
	}
	if !validEntityID(k, id) {
		msg := "must be an id: 1 to 64 characters of " + IDCharset
		if k == EntityPayment {
			msg = "must be 1 to 200 bytes"
		}
		return EntityRef{}, &Error{Code: CodeInvalid, Message: "invalid entity", Fields: []FieldError{{Field: "id", Message: msg}}}
	}
	return EntityRef{Kind: k, ID: id}, nil
}

func validEntityID(k EntityKind, id string) bool {
	if k == EntityPayment {
		return id != "" && len(id) <= MaxEntityIDLen
	}
	return validID(id)
}

// EntityRefs returns the entities one delivery of an event touches, without
// duplicates, in a fixed order. An event touches an entity when
//
//   - its payload names it by a top-level field: requestId,
//     purchaseRequestId (payment-received) and each of requestIds
//     (template-checkout-payment-confirmed) name requests, and so does _id
//     in a new-purchase-request; paymentId, and data.paymentId in a
//     seller-offer-update, name payments; checkoutId names a template
//     checkout; chatId names a chat. These fields are read for every event
//     type, extension events included, so a producer's own "x-…" event
//     about a request joins the request's history;
//   - or the delivery's room is the entity's room: request-<id>, chat-<id>
//     or template-checkout-<id> (a payment-update sent to a request room,
//     a room-member-added to a chat room).
//
// Payload refs are the same for every delivery of an event, room refs only
// for the delivery in that room. Fields are read by exact key (encoding/json
// would match struct fields ignoring case). Ids that could not name the
// entity (ValidID for requests, chats and checkouts; 1 to MaxEntityIDLen
// bytes for payments) are ignored. EntityRefs does not validate otherwise
// and never fails: a malformed payload touches only its room's entity.
func EntityRefs(eventType string, room Room, payload json.RawMessage) []EntityRef {
	var out []EntityRef
	add := func(k EntityKind, id string) {
		if !validEntityID(k, id) {
			return
		}
		for _, r := range out {
			if r.Kind == k && r.ID == id {
				return
			}
		}
		out = append(out, EntityRef{Kind: k, ID: id})
	}

	if m, err := objectMembers(payload); err == nil {
		if eventType == EventNewPurchaseRequest {
			add(EntityRequest, stringField(m, "_id"))
		}
		add(EntityRequest, stringField(m, "requestId"))
		add(EntityRequest, stringField(m, "purchaseRequestId"))
		if raw, ok := m["requestIds"]; ok {
			var ids []json.RawMessage
			if json.Unmarshal(raw, &ids) == nil {
				for _, id := range ids {
					s, _ := str(id)
					add(EntityRequest, s)
				}
			}
		}
		add(EntityPayment, stringField(m, "paymentId"))
		if eventType == EventSellerOfferUpdate {
			if data, err := objectMembers(m["data"]); err == nil {
				add(EntityPayment, stringField(data, "paymentId"))
			}
		}
		add(EntityTemplateCheckout, stringField(m, "checkoutId"))
		add(EntityChat, stringField(m, "chatId"))
	}

	switch room.Kind() {
	case KindRequest:
		add(EntityRequest, room.ID())
	case KindTemplateCheckout:
		add(EntityTemplateCheckout, room.ID())
	case KindChat:
		add(EntityChat, room.ID())
	}
	return out
}

// EntityState is the state of one entity folded from its history. Apply
// folds one delivery; deliveries must come in log order (ascending
// Position), and the same event may arrive once per room it was sent to:
// Apply counts each event once. The state as of a time T is what Apply
// yields over the deliveries the log accepted at or before T.
// Implementations are *RequestState, *PaymentState, *CheckoutState and
// *ChatState; they are not safe for concurrent use.
type EntityState interface {
	Apply(d Delivery)
}

// NewEntityState returns the empty state of the entity ref names, ready
// for Apply. ref must come from ParseEntityRef; an unknown kind yields nil.
func NewEntityState(ref EntityRef) EntityState {
	switch ref.Kind {
	case EntityRequest:
		return NewRequestState(ref.ID)
	case EntityPayment:
		return NewPaymentState(ref.ID)
	case EntityTemplateCheckout:
		return NewCheckoutState(ref.ID)
	case EntityChat:
		return NewChatState(ref.ID)
	}
	return nil
}
