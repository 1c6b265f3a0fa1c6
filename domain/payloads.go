package domain

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"time"
)

// The catalogue's event names. They are the wire names that clients listen
// for and that every stored event carries: never rename one, or stored events
// are orphaned and clients stop hearing them.
const (
	// Marketplace.
	EventNewPurchaseRequest               = "new-purchase-request"
	EventNewOffer                         = "new-offer"
	EventSellerOfferUpdate                = "seller-offer-update"
	EventPurchaseRequestUpdate            = "purchase-request-update"
	EventRequestCancelled                 = "request-cancelled"
	EventTransactionCompleted             = "transaction-completed"
	EventDeliveryCodeGenerated            = "delivery-code-generated"
	EventDeliveryUpdate                   = "delivery-update"
	EventDeliveryConfirmed                = "delivery-confirmed"
	EventBuyerConfirmedDelivery           = "buyer-confirmed-delivery"
	EventTemplateCheckoutPaymentConfirmed = "template-checkout-payment-confirmed"
	EventTemplateCheckoutPaymentPending   = "template-checkout-payment-pending"
	EventTemplateCheckoutPaymentFailed    = "template-checkout-payment-failed"

	// Payment.
	EventPaymentCreated  = "payment-created"
	EventPaymentReceived = "payment-received"
	EventPaymentUpdate   = "payment-update"
	EventPayoutCreated   = "payout-created"
	EventPayoutCompleted = "payout-completed"
	EventPayoutUpdated   = "payout-updated"

	// Chat.
	EventNewMessage         = "new-message"
	EventMessagesRead       = "messages-read"
	EventMessageEdited      = "message-edited"
	EventMessageDeleted     = "message-deleted"
	EventParticipantsAdded  = "participants-added"
	EventParticipantRemoved = "participant-removed"
	EventUserTyping         = "user-typing"
	EventUserStatusChange   = "user-status-change"

	// Notification.
	EventNewNotification   = "new-notification"
	EventUnreadCountUpdate = "unread-count-update"

	// Points.
	EventLevelUp        = "level-up"
	EventReferralReward = "referral-reward"
	EventReferralSignup = "referral-signup"

	// Membership: roomlog's own events, stored but never emitted.
	EventRoomMemberAdded   = "room-member-added"
	EventRoomMemberRemoved = "room-member-removed"
)

// EventPayload is implemented by every typed payload: Kind returns the
// catalogue name of the event the payload belongs to. Kind is a constant per
// type and never derived from the Go type name, so renaming a Go type never
// orphans stored events.
type EventPayload interface {
	Kind() string
}

// Scalar is a payload value that the catalogue allows to be either a JSON
// string or a JSON number, such as a money amount ("12.50" or 12.5) or an
// external task id. It keeps its JSON form: it marshals back exactly as it
// was unmarshalled or built. The zero Scalar marshals as null.
type Scalar struct {
	raw string // a JSON string or number literal; "" for the zero Scalar
}

// StringScalar returns a Scalar that marshals as the JSON string s. Money
// amounts should travel as decimal strings, which keep their precision.
func StringScalar(s string) Scalar {
	b, _ := json.Marshal(s) // marshalling a string cannot fail
	return Scalar{raw: string(b)}
}

// NumberScalar returns a Scalar that marshals as the JSON number n. If n is
// not a valid JSON number literal, marshalling the Scalar fails.
func NumberScalar(n json.Number) Scalar { return Scalar{raw: string(n)} }

// IsZero reports whether s is the zero Scalar.
func (s Scalar) IsZero() bool { return s.raw == "" }

// IsNumber reports whether s is a JSON number.
func (s Scalar) IsNumber() bool { return s.raw != "" && s.raw[0] != '"' }

// String returns the scalar's text: the string's contents or the number's
// literal. It is "" for the zero Scalar.
func (s Scalar) String() string {
	if s.raw == "" || s.raw[0] != '"' {
		return s.raw
	}
	var str string
	_ = json.Unmarshal([]byte(s.raw), &str) // raw is a valid JSON string by construction
	return str
}

// MarshalJSON implements json.Marshaler.
func (s Scalar) MarshalJSON() ([]byte, error) {
	if s.raw == "" {
		return []byte("null"), nil
	}
	if s.raw[0] != '"' && !validNumberLiteral(s.raw) {
		return nil, errors.New("domain: Scalar holds an invalid JSON number")
	}
	return []byte(s.raw), nil
}

// UnmarshalJSON implements json.Unmarshaler. It accepts a JSON string, a
// JSON number or null (which leaves the zero Scalar).
func (s *Scalar) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case string(b) == "null":
		*s = Scalar{}
		return nil
	case len(b) > 0 && b[0] == '"':
		var str string
		if err := json.Unmarshal(b, &str); err != nil {
			return err
		}
		*s = StringScalar(str)
		return nil
	case validNumberLiteral(string(b)):
		*s = Scalar{raw: string(b)}
		return nil
	}
	return errors.New("domain: Scalar must be a JSON string or number")
}

// validNumberLiteral reports whether s is exactly one JSON number.
func validNumberLiteral(s string) bool {
	if s == "" {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return false
	}
	n, ok := v.(json.Number)
	return ok && string(n) == s
}

// OfferEventType is the eventType of a seller-offer-update.
type OfferEventType string

// The values of SellerOfferUpdate.EventType.
const (
	OfferPaymentCompleted OfferEventType = "payment-completed"
	OfferRejected         OfferEventType = "offer-rejected"
	OfferAccepted         OfferEventType = "offer-accepted"
)

// PresenceStatus is the status of a user-status-change.
type PresenceStatus string

// The values of UserStatusChange.Status. The spec only emits online today;
// offline is what a presence tracker emits on disconnect.
const (
	StatusOnline  PresenceStatus = "online"
	StatusOffline PresenceStatus = "offline"
)

// NewPurchaseRequest is the payload of new-purchase-request: a whole
// PurchaseRequest document. Only _id and buyerId are required and typed;
// every other field of the document travels in Extra.
type NewPurchaseRequest struct {
	// ID is the document's _id, which is also the request id.
	ID string `json:"_id"`
	// BuyerID is the buyer who created the request.
	BuyerID string `json:"buyerId"`
	// Extra holds the document's other fields, by name. Entries named _id
	// or buyerId are ignored when marshalling.
	Extra map[string]json.RawMessage `json:"-"`
}

// Kind returns "new-purchase-request". Never change it.
func (NewPurchaseRequest) Kind() string { return EventNewPurchaseRequest }

// MarshalJSON implements json.Marshaler: the document's fields are Extra's
// plus _id and buyerId, with keys sorted.
func (p NewPurchaseRequest) MarshalJSON() ([]byte, error) {
	m := make(map[string]any, len(p.Extra)+2)
	for k, v := range p.Extra {
		m[k] = v
	}
	m["_id"] = p.ID
	m["buyerId"] = p.BuyerID
	return json.Marshal(m)
}

// UnmarshalJSON implements json.Unmarshaler.
func (p *NewPurchaseRequest) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	var out NewPurchaseRequest
	if raw, ok := m["_id"]; ok {
		if err := json.Unmarshal(raw, &out.ID); err != nil {
			return err
		}
	}
	if raw, ok := m["buyerId"]; ok {
		if err := json.Unmarshal(raw, &out.BuyerID); err != nil {
			return err
		}
	}
	delete(m, "_id")
	delete(m, "buyerId")
	if len(m) > 0 {
		out.Extra = maps.Clone(m)
	}
	*p = out
	return nil
}

// NewOffer is the payload of new-offer, sent to the buyer's room.
type NewOffer struct {
	RequestID string `json:"requestId"`
	// Offer is the offer document as the marketplace stores it.
	Offer    json.RawMessage `json:"offer"`
	SellerID string          `json:"sellerId"`
}

// Kind returns "new-offer". Never change it.
func (NewOffer) Kind() string { return EventNewOffer }

// SellerOfferUpdate is the payload of seller-offer-update.
type SellerOfferUpdate struct {
	SellerID  string          `json:"sellerId"`
	RequestID string          `json:"requestId"`
	EventType OfferEventType  `json:"eventType"`
	Data      SellerOfferData `json:"data"`
}

// Kind returns "seller-offer-update". Never change it.
func (SellerOfferUpdate) Kind() string { return EventSellerOfferUpdate }

// SellerOfferData is the data of a SellerOfferUpdate.
type SellerOfferData struct {
	OfferID         string `json:"offerId"`
	IsSelected      bool   `json:"isSelected"`
	PaymentID       string `json:"paymentId,omitempty"`
	TransactionHash string `json:"transactionHash,omitempty"`
	Reason          string `json:"reason,omitempty"`
}

// PurchaseRequestUpdate is the payload of purchase-request-update.
type PurchaseRequestUpdate struct {
	// Type says what changed, e.g. "status_changed".
	Type      string `json:"type"`
	RequestID string `json:"requestId"`
	Status    string `json:"status,omitempty"`
	PaymentID string `json:"paymentId,omitempty"`
	TxHash    string `json:"txHash,omitempty"`
	Provider  string `json:"provider,omitempty"`
}

// Kind returns "purchase-request-update". Never change it.
func (PurchaseRequestUpdate) Kind() string { return EventPurchaseRequestUpdate }

// RequestCancelled is the payload of request-cancelled.
type RequestCancelled struct {
	RequestID string `json:"requestId"`
	Reason    string `json:"reason"`
}

// Kind returns "request-cancelled". Never change it.
func (RequestCancelled) Kind() string { return EventRequestCancelled }

// TransactionCompleted is the payload of transaction-completed.
type TransactionCompleted struct {
	RequestID string `json:"requestId"`
	PaymentID string `json:"paymentId"`
	Amount    Scalar `json:"amount"`
	Currency  string `json:"currency"`
}

// Kind returns "transaction-completed". Never change it.
func (TransactionCompleted) Kind() string { return EventTransactionCompleted }

// DeliveryCodeGenerated is the payload of delivery-code-generated.
type DeliveryCodeGenerated struct {
	RequestID    string `json:"requestId"`
	DeliveryCode string `json:"deliveryCode"`
}

// Kind returns "delivery-code-generated". Never change it.
func (DeliveryCodeGenerated) Kind() string { return EventDeliveryCodeGenerated }

// DeliveryUpdate is the payload of delivery-update.
type DeliveryUpdate struct {
	RequestID      string `json:"requestId"`
	Status         string `json:"status"`
	Carrier        string `json:"carrier,omitempty"`
	TrackingNumber string `json:"trackingNumber,omitempty"`
}

// Kind returns "delivery-update". Never change it.
func (DeliveryUpdate) Kind() string { return EventDeliveryUpdate }

// DeliveryConfirmed is the payload of delivery-confirmed.
type DeliveryConfirmed struct {
	RequestID string `json:"requestId"`
}

// Kind returns "delivery-confirmed". Never change it.
func (DeliveryConfirmed) Kind() string { return EventDeliveryConfirmed }

// BuyerConfirmedDelivery is the payload of buyer-confirmed-delivery.
type BuyerConfirmedDelivery struct {
	RequestID string `json:"requestId"`
	BuyerID   string `json:"buyerId"`
}

// Kind returns "buyer-confirmed-delivery". Never change it.
func (BuyerConfirmedDelivery) Kind() string { return EventBuyerConfirmedDelivery }

// TemplateCheckoutPaymentConfirmed is the payload of
// template-checkout-payment-confirmed.
type TemplateCheckoutPaymentConfirmed struct {
	CheckoutID string `json:"checkoutId"`
	// RequestIDs must not be nil: a nil slice marshals as null.
	RequestIDs []string `json:"requestIds"`
	PaymentID  string   `json:"paymentId"`
}

// Kind returns "template-checkout-payment-confirmed". Never change it.
func (TemplateCheckoutPaymentConfirmed) Kind() string {
	return EventTemplateCheckoutPaymentConfirmed
}

// TemplateCheckoutPaymentPending is the payload of
// template-checkout-payment-pending.
type TemplateCheckoutPaymentPending struct {
	CheckoutID string `json:"checkoutId"`
}

// Kind returns "template-checkout-payment-pending". Never change it.
func (TemplateCheckoutPaymentPending) Kind() string { return EventTemplateCheckoutPaymentPending }

// TemplateCheckoutPaymentFailed is the payload of
// template-checkout-payment-failed.
type TemplateCheckoutPaymentFailed struct {
	CheckoutID string `json:"checkoutId"`
	Reason     string `json:"reason"`
}

// Kind returns "template-checkout-payment-failed". Never change it.
func (TemplateCheckoutPaymentFailed) Kind() string { return EventTemplateCheckoutPaymentFailed }

// PaymentCreated is the payload of payment-created.
type PaymentCreated struct {
	PaymentID string `json:"paymentId"`
	Provider  string `json:"provider"`
	RequestID string `json:"requestId"`
	BuyerID   string `json:"buyerId"`
	SellerID  string `json:"sellerId"`
	Amount    Scalar `json:"amount"`
	Currency  string `json:"currency"`
}

// Kind returns "payment-created". Never change it.
func (PaymentCreated) Kind() string { return EventPaymentCreated }

// PaymentReceived is the payload of payment-received.
type PaymentReceived struct {
	PurchaseRequestID string `json:"purchaseRequestId"`
	Amount            Scalar `json:"amount"`
	Currency          string `json:"currency"`
	BuyerID           string `json:"buyerId"`
}

// Kind returns "payment-received". Never change it.
func (PaymentReceived) Kind() string { return EventPaymentReceived }

// PaymentUpdate is the payload of payment-update.
type PaymentUpdate struct {
	PaymentID   string `json:"paymentId"`
	Status      string `json:"status"`
	EscrowState string `json:"escrowState,omitempty"`
	TxHash      string `json:"txHash,omitempty"`
}

// Kind returns "payment-update". Never change it.
func (PaymentUpdate) Kind() string { return EventPaymentUpdate }

// PayoutCreated is the payload of payout-created.
type PayoutCreated struct {
	PayoutID string `json:"payoutId"`
	// TaskID is the payment provider's task id, a string or a number.
	TaskID   Scalar `json:"taskId"`
	SellerID string `json:"sellerId"`
	Amount   Scalar `json:"amount"`
	Currency string `json:"currency"`
}

// Kind returns "payout-created". Never change it.
func (PayoutCreated) Kind() string { return EventPayoutCreated }

// PayoutCompleted is the payload of payout-completed.
type PayoutCompleted struct {
	PayoutID string `json:"payoutId"`
	TaskID   Scalar `json:"taskId"`
	TxHash   string `json:"txHash"`
}

// Kind returns "payout-completed". Never change it.
func (PayoutCompleted) Kind() string { return EventPayoutCompleted }

// PayoutUpdated is the payload of payout-updated.
type PayoutUpdated struct {
	PayoutID string `json:"payoutId"`
	Status   string `json:"status"`
}

// Kind returns "payout-updated". Never change it.
func (PayoutUpdated) Kind() string { return EventPayoutUpdated }

// NewMessage is the payload of new-message.
type NewMessage struct {
	ChatID   string      `json:"chatId"`
	Message  ChatMessage `json:"message"`
	SenderID string      `json:"senderId"`
}

// Kind returns "new-message". Never change it.
func (NewMessage) Kind() string { return EventNewMessage }

// ChatMessage is the message of a NewMessage.
type ChatMessage struct {
	ID        string    `json:"_id"`
	Content   string    `json:"content"`
	SenderID  string    `json:"senderId"`
	CreatedAt time.Time `json:"createdAt"`
	// Attachments, if set, is a JSON array.
	Attachments json.RawMessage `json:"attachments,omitempty"`
}

// MessagesRead is the payload of messages-read.
type MessagesRead struct {
	ChatID        string `json:"chatId"`
	UserID        string `json:"userId"`
	UpToMessageID string `json:"upToMessageId"`
	ModifiedCount int64  `json:"modifiedCount"`
}

// Kind returns "messages-read". Never change it.
func (MessagesRead) Kind() string { return EventMessagesRead }

// MessageEdited is the payload of message-edited.
type MessageEdited struct {
	ChatID    string    `json:"chatId"`
	MessageID string    `json:"messageId"`
	Content   string    `json:"content"`
	EditedAt  time.Time `json:"editedAt"`
}

// Kind returns "message-edited". Never change it.
func (MessageEdited) Kind() string { return EventMessageEdited }

// MessageDeleted is the payload of message-deleted.
type MessageDeleted struct {
	ChatID    string    `json:"chatId"`
	MessageID string    `json:"messageId"`
	DeletedAt time.Time `json:"deletedAt"`
}

// Kind returns "message-deleted". Never change it.
func (MessageDeleted) Kind() string { return EventMessageDeleted }

// ParticipantsAdded is the payload of participants-added. Each added user
// becomes a member of the chat's room.
type ParticipantsAdded struct {
	ChatID string `json:"chatId"`
	// AddedUserIDs must not be nil: a nil slice marshals as null.
	AddedUserIDs []string `json:"addedUserIds"`
}

// Kind returns "participants-added". Never change it.
func (ParticipantsAdded) Kind() string { return EventParticipantsAdded }

// ParticipantRemoved is the payload of participant-removed. The removed
// user stops being a member of the chat's room.
type ParticipantRemoved struct {
	ChatID        string `json:"chatId"`
	RemovedUserID string `json:"removedUserId"`
}

// Kind returns "participant-removed". Never change it.
func (ParticipantRemoved) Kind() string { return EventParticipantRemoved }

// UserTyping is the payload of user-typing. The event is volatile: it is
// broadcast to a chat room and never enters the log.
type UserTyping struct {
	UserID   string `json:"userId"`
	UserName string `json:"userName,omitempty"`
	IsTyping bool   `json:"isTyping"`
}

// Kind returns "user-typing". Never change it.
func (UserTyping) Kind() string { return EventUserTyping }

// UserStatusChange is the payload of user-status-change.
type UserStatusChange struct {
	UserID   string         `json:"userId"`
	Status   PresenceStatus `json:"status"`
	LastSeen time.Time      `json:"lastSeen"`
}

// Kind returns "user-status-change". Never change it.
func (UserStatusChange) Kind() string { return EventUserStatusChange }

// NewNotification is the payload of new-notification.
type NewNotification struct {
	Notification Notification `json:"notification"`
}

// Kind returns "new-notification". Never change it.
func (NewNotification) Kind() string { return EventNewNotification }

// Notification is the notification of a NewNotification.
type Notification struct {
	ID    string `json:"_id"`
	Type  string `json:"type"`
	Title string `json:"title"`
	Body  string `json:"body"`
	// Data, if set, is any JSON value.
	Data      json.RawMessage `json:"data,omitempty"`
	CreatedAt time.Time       `json:"createdAt"`
}

// UnreadCountUpdate is the payload of unread-count-update.
type UnreadCountUpdate struct {
	UnreadCount int64 `json:"unreadCount"`
}

// Kind returns "unread-count-update". Never change it.
func (UnreadCountUpdate) Kind() string { return EventUnreadCountUpdate }

// LevelUp is the payload of level-up.
type LevelUp struct {
	// OldLevel and NewLevel are level numbers or names.
	OldLevel       Scalar  `json:"oldLevel"`
	NewLevel       Scalar  `json:"newLevel"`
	LifetimePoints float64 `json:"lifetimePoints"`
	// Perks must not be nil: a nil slice marshals as null.
	Perks []json.RawMessage `json:"perks"`
}

// Kind returns "level-up". Never change it.
func (LevelUp) Kind() string { return EventLevelUp }

// ReferralReward is the payload of referral-reward.
type ReferralReward struct {
	ReferredUserID string  `json:"referredUserId"`
	Points         float64 `json:"points"`
	TransactionID  string  `json:"transactionId"`
}

// Kind returns "referral-reward". Never change it.
func (ReferralReward) Kind() string { return EventReferralReward }

// ReferralSignup is the payload of referral-signup.
type ReferralSignup struct {
	ReferredUserID string    `json:"referredUserId"`
	Name           string    `json:"name"`
	JoinedAt       time.Time `json:"joinedAt"`
}

// Kind returns "referral-signup". Never change it.
func (ReferralSignup) Kind() string { return EventReferralSignup }

// RoomMemberAdded is the payload of room-member-added, roomlog's own event
// that makes UserID a member of every shared room the event targets. It is
// stored in the log but never emitted to sockets.
type RoomMemberAdded struct {
	UserID string `json:"userId"`
}

// Kind returns "room-member-added". Never change it.
func (RoomMemberAdded) Kind() string { return EventRoomMemberAdded }

// RoomMemberRemoved is the payload of room-member-removed, roomlog's own
// event that ends UserID's membership of every shared room the event
// targets. It is stored in the log but never emitted to sockets.
type RoomMemberRemoved struct {
	UserID string `json:"userId"`
}

// Kind returns "room-member-removed". Never change it.
func (RoomMemberRemoved) Kind() string { return EventRoomMemberRemoved }
