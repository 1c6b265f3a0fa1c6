package domain

import (
	"encoding/json"
	"slices"
	"time"
)

// This file folds entity histories into states. The folds are pure: they
// read only the deliveries they are given, so the state of an entity as of
// any time T is the fold of its history up to T, and a fold over the same
// history always yields the same state.
//
// Every fold reads payload fields by exact key, like ImpliedMembership,
// and ignores what it does not understand: the log is the truth and a fold
// must never fail on it.

// RequestPhase summarises how far a purchase request has come.
type RequestPhase string

// The request phases, in the order a request normally passes them. A
// request's phase is the furthest it has reached, or PhaseCancelled once
// it is cancelled.
const (
	// PhaseOpen: the request exists (new-purchase-request) but has no offer.
	PhaseOpen RequestPhase = "open"
	// PhaseOffered: at least one seller made an offer (new-offer).
	PhaseOffered RequestPhase = "offered"
	// PhaseAccepted: an offer was accepted (seller-offer-update
	// offer-accepted).
	PhaseAccepted RequestPhase = "accepted"
	// PhasePaid: the selected offer was paid (seller-offer-update
	// payment-completed, payment-received, or a confirmed template
	// checkout that includes the request).
	PhasePaid RequestPhase = "paid"
	// PhaseDelivered: delivery was confirmed (delivery-confirmed or
	// buyer-confirmed-delivery).
	PhaseDelivered RequestPhase = "delivered"
	// PhaseCompleted: the transaction completed (transaction-completed).
	PhaseCompleted RequestPhase = "completed"
	// PhaseCancelled: the request was cancelled (request-cancelled). It is
	// final and overrides every other phase.
	PhaseCancelled RequestPhase = "cancelled"
)

var phaseRank = map[RequestPhase]int{
	"": 0, PhaseOpen: 1, PhaseOffered: 2, PhaseAccepted: 3, PhasePaid: 4, PhaseDelivered: 5, PhaseCompleted: 6,
}

// OfferStatus is the status of one offer on a request.
type OfferStatus string

// The offer statuses.
const (
	OfferStatusPending  OfferStatus = "pending"
	OfferStatusAccepted OfferStatus = "accepted"
	OfferStatusRejected OfferStatus = "rejected"
)

// OfferState is one seller's offer on a request.
type OfferState struct {
	// OfferID is the offer document's _id (or id); "" if the document
	// had neither and no seller-offer-update has named it yet.
	OfferID  string `json:"offerId"`
	SellerID string `json:"sellerId,omitempty"`
	// Offer is the offer document as new-offer carried it.
	Offer    json.RawMessage `json:"offer,omitempty"`
	Status   OfferStatus     `json:"status"`
	Selected bool            `json:"isSelected"`
	// Reason is the rejection reason of an offer-rejected update.
	Reason    string    `json:"reason,omitempty"`
	OfferedAt time.Time `json:"offeredAt,omitzero"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// DeliveryState is the delivery of a request. The delivery code itself is
// never kept: only the seller may see it, and a state is shown to
// auditors.
type DeliveryState struct {
	// Status is the last delivery-update's status.
	Status         string    `json:"status,omitempty"`
	Carrier        string    `json:"carrier,omitempty"`
	TrackingNumber string    `json:"trackingNumber,omitempty"`
	CodeGenerated  time.Time `json:"codeGeneratedAt,omitzero"`
	// ConfirmedAt is when delivery-confirmed was logged.
	ConfirmedAt time.Time `json:"confirmedAt,omitzero"`
	// BuyerConfirmedAt is when buyer-confirmed-delivery was logged.
	BuyerConfirmedAt time.Time `json:"buyerConfirmedAt,omitzero"`
}

// PaymentState is a payment folded from the events that name its
// paymentId.
type PaymentState struct {
	PaymentID string `json:"paymentId"`
	Provider  string `json:"provider,omitempty"`
	// RequestIDs are the requests the payment's events name, in the order
	// first named (a template checkout pays several).
	RequestIDs []string `json:"requestIds,omitempty"`
	CheckoutID string   `json:"checkoutId,omitempty"`
	BuyerID    string   `json:"buyerId,omitempty"`
	SellerID   string   `json:"sellerId,omitempty"`
	Amount     Scalar   `json:"amount,omitzero"`
	Currency   string   `json:"currency,omitempty"`
	// Status is "created" after payment-created, then each payment-update's
	// status.
	Status      string `json:"status,omitempty"`
	EscrowState string `json:"escrowState,omitempty"`
	TxHash      string `json:"txHash,omitempty"`
	// CreatedAt is when payment-created was logged.
	CreatedAt time.Time `json:"createdAt,omitzero"`
	// CompletedAt is when a seller-offer-update payment-completed or a
	// transaction-completed naming the payment was first logged.
	CompletedAt time.Time `json:"completedAt,omitzero"`
	// Events counts the distinct events folded.
	Events int `json:"events"`
	// UpdatedAt is when the last folded event was logged.
	UpdatedAt time.Time `json:"updatedAt,omitzero"`

	seen map[string]bool
}

// NewPaymentState returns the empty state of payment id.
func NewPaymentState(id string) *PaymentState {
	return &PaymentState{PaymentID: id, seen: map[string]bool{}}
}

// FoldPayment folds history (in log order) into the state of payment id.
func FoldPayment(id string, history []Delivery) PaymentState {
	s := NewPaymentState(id)
	for _, d := range history {
		s.Apply(d)
	}
	return *s
}

// Apply implements EntityState: it folds d if d names the payment.
func (s *PaymentState) Apply(d Delivery) {
	if s.seen == nil {
		s.seen = map[string]bool{}
	}
	refs := EntityRefs(d.Type, d.Room, d.Payload)
	if !hasRef(refs, EntityPayment, s.PaymentID) || s.seen[d.ID] {
		return
	}
	s.seen[d.ID] = true
	s.apply(d, object(d.Payload), refs)
}

// apply folds one event that names the payment, once.
func (s *PaymentState) apply(d Delivery, m map[string]json.RawMessage, refs []EntityRef) {
	s.Events++
	s.UpdatedAt = d.OccurredAt
	for _, r := range refs {
		if r.Kind == EntityRequest && !slices.Contains(s.RequestIDs, r.ID) {
			s.RequestIDs = append(s.RequestIDs, r.ID)
		}
	}
	setIf := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	switch d.Type {
	case EventPaymentCreated:
		s.CreatedAt = d.OccurredAt
		setIf(&s.Provider, stringField(m, "provider"))
		setIf(&s.BuyerID, stringField(m, "buyerId"))
		setIf(&s.SellerID, stringField(m, "sellerId"))
		setIf(&s.Currency, stringField(m, "currency"))
		if a := scalarField(m, "amount"); !a.IsZero() {
			s.Amount = a
		}
		if s.Status == "" {
			s.Status = "created"
		}
	case EventPaymentUpdate:
		setIf(&s.Status, stringField(m, "status"))
		setIf(&s.EscrowState, stringField(m, "escrowState"))
		setIf(&s.TxHash, stringField(m, "txHash"))
	case EventPurchaseRequestUpdate:
		setIf(&s.TxHash, stringField(m, "txHash"))
		setIf(&s.Provider, stringField(m, "provider"))
	case EventSellerOfferUpdate:
		data := object(m["data"])
		setIf(&s.TxHash, stringField(data, "transactionHash"))
		if stringField(m, "eventType") == string(OfferPaymentCompleted) && s.CompletedAt.IsZero() {
			s.CompletedAt = d.OccurredAt
		}
	case EventTransactionCompleted:
		setIf(&s.Currency, stringField(m, "currency"))
		if a := scalarField(m, "amount"); !a.IsZero() {
			s.Amount = a
		}
		if s.CompletedAt.IsZero() {
			s.CompletedAt = d.OccurredAt
		}
	case EventTemplateCheckoutPaymentConfirmed:
		setIf(&s.CheckoutID, stringField(m, "checkoutId"))
	}
}

// RequestState is a purchase request as of some time: its own events and
// the events of the payments linked to it. A payment is linked once one
// of the request's own events names it (payment-created, a
// purchase-request-update or seller-offer-update with a paymentId,
// transaction-completed, a confirmed template checkout including the
// request, or a payment-update sent to the request's room).
type RequestState struct {
	RequestID string `json:"requestId"`
	BuyerID   string `json:"buyerId,omitempty"`
	// Document is the new-purchase-request payload: the request document
	// as created.
	Document  json.RawMessage `json:"document,omitempty"`
	CreatedAt time.Time       `json:"createdAt,omitzero"`
	Phase     RequestPhase    `json:"phase,omitempty"`
	// Status is the last status a purchase-request-update named; the
	// marketplace's own word for the request's state.
	Status string `json:"status,omitempty"`
	// Offers are the offers in the order first seen.
	Offers []OfferState `json:"offers"`
	// AcceptedOfferID is the offer accepted (or paid as selected), "" if
	// none or if it was rejected afterwards.
	AcceptedOfferID string `json:"acceptedOfferId,omitempty"`
	// PaymentID is the payment the request's own events named last.
	PaymentID string `json:"paymentId,omitempty"`
	// Payments are the linked payments in the order first linked.
	Payments   []PaymentState `json:"payments"`
	CheckoutID string         `json:"checkoutId,omitempty"`
	PaidAt     time.Time      `json:"paidAt,omitzero"`
	Delivery   DeliveryState  `json:"delivery"`
	Cancelled  bool           `json:"cancelled"`
	// CancelReason and CancelledAt come from request-cancelled.
	CancelReason string    `json:"cancelReason,omitempty"`
	CancelledAt  time.Time `json:"cancelledAt,omitzero"`
	CompletedAt  time.Time `json:"completedAt,omitzero"`
	// Members are the request room's members as the log implies them
	// (see ImpliedMembership), sorted.
	Members []string `json:"members"`
	// Events counts the distinct events folded, own and linked.
	Events int `json:"events"`
	// UpdatedAt is when the last folded event was logged.
	UpdatedAt time.Time `json:"updatedAt,omitzero"`

	reached RequestPhase
	members memberSet
	pays    map[string]int // paymentId → index in Payments
	seen    map[string]bool
}

// NewRequestState returns the empty state of request id.
func NewRequestState(id string) *RequestState {
	return &RequestState{RequestID: id, Offers: []OfferState{}, Payments: []PaymentState{}, Members: []string{}}
}

// FoldRequest folds history (in log order) into the state of request id.
func FoldRequest(id string, history []Delivery) RequestState {
	s := NewRequestState(id)
	for _, d := range history {
		s.Apply(d)
	}
	return *s
}

// Apply implements EntityState: it folds d if d is one of the request's
// own events or an event of a linked payment.
func (s *RequestState) Apply(d Delivery) {
	if s.seen == nil {
		s.seen, s.pays = map[string]bool{}, map[string]int{}
	}
	refs := EntityRefs(d.Type, d.Room, d.Payload)
	m := object(d.Payload)
	own := hasRef(refs, EntityRequest, s.RequestID)
	folded := false
	if own {
		// Membership changes are idempotent and may differ per room, so
		// every delivery applies them.
		if room, err := RequestRoom(s.RequestID); err == nil {
			s.Members = s.members.apply(room, d)
		}
		if !s.seen["own "+d.ID] {
			s.seen["own "+d.ID] = true
			s.applyOwn(d, m, refs)
			folded = true
		}
	}
	folded = foldLinked(&s.Payments, s.pays, s.seen, d, m, refs) || folded
	if folded {
		if !s.seen[d.ID] {
			s.seen[d.ID] = true
			s.Events++
		}
		s.UpdatedAt = d.OccurredAt
	}
	s.Phase = s.reached
	if s.Cancelled {
		s.Phase = PhaseCancelled
	}
}

func (s *RequestState) reach(p RequestPhase) {
	if phaseRank[p] > phaseRank[s.reached] {
		s.reached = p
	}
	if phaseRank[p] >= phaseRank[PhasePaid] && s.PaidAt.IsZero() {
		s.PaidAt = s.UpdatedAt
	}
}

func (s *RequestState) applyOwn(d Delivery, m map[string]json.RawMessage, refs []EntityRef) {
	s.UpdatedAt = d.OccurredAt
	// Every payment an own event names is linked to the request.
	for _, r := range refs {
		if r.Kind == EntityPayment {
			linkPayment(&s.Payments, s.pays, r.ID)
			s.PaymentID = r.ID
		}
	}
	s.reach(PhaseOpen)
	switch d.Type {
	case EventNewPurchaseRequest:
		if stringField(m, "_id") == s.RequestID {
			s.BuyerID = stringField(m, "buyerId")
			s.Document = append(json.RawMessage(nil), d.Payload...)
			s.CreatedAt = d.OccurredAt
		}
	case EventNewOffer:
		doc := m["offer"]
		o := object(doc)
		id := stringField(o, "_id")
		if id == "" {
			id = stringField(o, "id")
		}
		of := s.offer(id, stringField(m, "sellerId"))
		of.Offer = append(json.RawMessage(nil), doc...)
		if of.OfferedAt.IsZero() {
			of.OfferedAt = d.OccurredAt
		}
		of.UpdatedAt = d.OccurredAt
		s.reach(PhaseOffered)
	case EventSellerOfferUpdate:
		data := object(m["data"])
		id := stringField(data, "offerId")
		of := s.offer(id, stringField(m, "sellerId"))
		of.UpdatedAt = d.OccurredAt
		of.Selected = boolField(data, "isSelected")
		switch OfferEventType(stringField(m, "eventType")) {
		case OfferAccepted:
			of.Status = OfferStatusAccepted
			s.AcceptedOfferID = id
			s.reach(PhaseAccepted)
		case OfferRejected:
			of.Status, of.Reason, of.Selected = OfferStatusRejected, stringField(data, "reason"), false
			if s.AcceptedOfferID == id {
				s.AcceptedOfferID = ""
			}
		case OfferPaymentCompleted:
			if of.Selected {
				of.Status = OfferStatusAccepted
				s.AcceptedOfferID = id
			}
			s.reach(PhasePaid)
		}
	case EventPurchaseRequestUpdate:
		if st := stringField(m, "status"); st != "" {
			s.Status = st
		}
	case EventRequestCancelled:
		if !s.Cancelled {
			s.Cancelled, s.CancelledAt = true, d.OccurredAt
			s.CancelReason = stringField(m, "reason")
		}
	case EventTransactionCompleted:
		if s.CompletedAt.IsZero() {
			s.CompletedAt = d.OccurredAt
		}
		s.reach(PhaseCompleted)
	case EventPaymentReceived:
		s.reach(PhasePaid)
	case EventTemplateCheckoutPaymentConfirmed:
		s.CheckoutID = stringField(m, "checkoutId")
		s.reach(PhasePaid)
	case EventDeliveryCodeGenerated:
		s.Delivery.CodeGenerated = d.OccurredAt
	case EventDeliveryUpdate:
		if st := stringField(m, "status"); st != "" {
			s.Delivery.Status = st
		}
		if c := stringField(m, "carrier"); c != "" {
			s.Delivery.Carrier = c
		}
		if n := stringField(m, "trackingNumber"); n != "" {
			s.Delivery.TrackingNumber = n
		}
	case EventDeliveryConfirmed:
		s.Delivery.ConfirmedAt = d.OccurredAt
		s.reach(PhaseDelivered)
	case EventBuyerConfirmedDelivery:
		s.Delivery.BuyerConfirmedAt = d.OccurredAt
		s.reach(PhaseDelivered)
	}
}

// offer returns the offer with id, adopting an offer of the same seller
// whose document had no id, or appending a new pending one.
func (s *RequestState) offer(id, seller string) *OfferState {
	for i := range s.Offers {
		if id != "" && s.Offers[i].OfferID == id {
			return &s.Offers[i]
		}
	}
	for i := range s.Offers {
		o := &s.Offers[i]
		if o.OfferID == "" && seller != "" && o.SellerID == seller {
			o.OfferID = id
			return o
		}
	}
	s.Offers = append(s.Offers, OfferState{OfferID: id, SellerID: seller, Status: OfferStatusPending})
	return &s.Offers[len(s.Offers)-1]
}

// CheckoutStatus is the payment status of a template checkout.
type CheckoutStatus string

// The checkout statuses, one per template-checkout-payment-* event.
const (
	CheckoutPending   CheckoutStatus = "pending"
	CheckoutConfirmed CheckoutStatus = "confirmed"
	CheckoutFailed    CheckoutStatus = "failed"
)

// CheckoutState is a template checkout as of some time: its own events
// and those of the payment its confirmation names.
type CheckoutState struct {
	CheckoutID string `json:"checkoutId"`
	// Status is the status of the last template-checkout-payment-* event.
	Status CheckoutStatus `json:"status,omitempty"`
	// Reason is the last failure's reason.
	Reason      string    `json:"reason,omitempty"`
	RequestIDs  []string  `json:"requestIds"`
	PaymentID   string    `json:"paymentId,omitempty"`
	ConfirmedAt time.Time `json:"confirmedAt,omitzero"`
	// Payments are the linked payments in the order first linked.
	Payments []PaymentState `json:"payments"`
	// Members are the checkout room's members, sorted.
	Members   []string  `json:"members"`
	Events    int       `json:"events"`
	UpdatedAt time.Time `json:"updatedAt,omitzero"`

	members memberSet
	pays    map[string]int
	seen    map[string]bool
}

// NewCheckoutState returns the empty state of template checkout id.
func NewCheckoutState(id string) *CheckoutState {
	return &CheckoutState{CheckoutID: id, RequestIDs: []string{}, Payments: []PaymentState{}, Members: []string{}}
}

// FoldCheckout folds history (in log order) into the state of template
// checkout id.
func FoldCheckout(id string, history []Delivery) CheckoutState {
	s := NewCheckoutState(id)
	for _, d := range history {
		s.Apply(d)
	}
	return *s
}

// Apply implements EntityState.
func (s *CheckoutState) Apply(d Delivery) {
	if s.seen == nil {
		s.seen, s.pays = map[string]bool{}, map[string]int{}
	}
	refs := EntityRefs(d.Type, d.Room, d.Payload)
	m := object(d.Payload)
	folded := false
	if hasRef(refs, EntityTemplateCheckout, s.CheckoutID) {
		if room, err := TemplateCheckoutRoom(s.CheckoutID); err == nil {
			s.Members = s.members.apply(room, d)
		}
		if !s.seen["own "+d.ID] {
			s.seen["own "+d.ID] = true
			folded = true
			for _, r := range refs {
				if r.Kind == EntityPayment {
					linkPayment(&s.Payments, s.pays, r.ID)
				}
			}
			switch d.Type {
			case EventTemplateCheckoutPaymentPending:
				s.Status = CheckoutPending
			case EventTemplateCheckoutPaymentFailed:
				s.Status, s.Reason = CheckoutFailed, stringField(m, "reason")
			case EventTemplateCheckoutPaymentConfirmed:
				s.Status, s.ConfirmedAt = CheckoutConfirmed, d.OccurredAt
				s.PaymentID = stringField(m, "paymentId")
				for _, r := range refs {
					if r.Kind == EntityRequest && !slices.Contains(s.RequestIDs, r.ID) {
						s.RequestIDs = append(s.RequestIDs, r.ID)
					}
				}
			}
		}
	}
	folded = foldLinked(&s.Payments, s.pays, s.seen, d, m, refs) || folded
	if folded {
		if !s.seen[d.ID] {
			s.seen[d.ID] = true
			s.Events++
		}
		s.UpdatedAt = d.OccurredAt
	}
}

// ChatState is a chat as of some time.
type ChatState struct {
	ChatID string `json:"chatId"`
	// Members are the chat room's members as the log implies them:
	// participants added and not removed, senders, and users granted
	// membership with room-member-added. Sorted.
	Members []string `json:"members"`
	// Messages counts new-message events; Edited and Deleted count
	// message-edited and message-deleted.
	Messages      int       `json:"messages"`
	Edited        int       `json:"edited"`
	Deleted       int       `json:"deleted"`
	LastMessageID string    `json:"lastMessageId,omitempty"`
	LastSenderID  string    `json:"lastSenderId,omitempty"`
	LastMessageAt time.Time `json:"lastMessageAt,omitzero"`
	// ReadUpTo maps each user to the upToMessageId of their last
	// messages-read.
	ReadUpTo  map[string]string `json:"readUpTo"`
	Events    int               `json:"events"`
	UpdatedAt time.Time         `json:"updatedAt,omitzero"`

	members memberSet
	seen    map[string]bool
}

// NewChatState returns the empty state of chat id.
func NewChatState(id string) *ChatState {
	return &ChatState{ChatID: id, Members: []string{}, ReadUpTo: map[string]string{}}
}

// FoldChat folds history (in log order) into the state of chat id.
func FoldChat(id string, history []Delivery) ChatState {
	s := NewChatState(id)
	for _, d := range history {
		s.Apply(d)
	}
	return *s
}

// Apply implements EntityState.
func (s *ChatState) Apply(d Delivery) {
	if s.seen == nil {
		s.seen = map[string]bool{}
	}
	if s.ReadUpTo == nil {
		s.ReadUpTo = map[string]string{}
	}
	if !hasRef(EntityRefs(d.Type, d.Room, d.Payload), EntityChat, s.ChatID) {
		return
	}
	if room, err := ChatRoom(s.ChatID); err == nil {
		s.Members = s.members.apply(room, d)
	}
	if s.seen[d.ID] {
		return
	}
	s.seen[d.ID] = true
	s.Events++
	s.UpdatedAt = d.OccurredAt
	m := object(d.Payload)
	switch d.Type {
	case EventNewMessage:
		s.Messages++
		msg := object(m["message"])
		s.LastMessageID = stringField(msg, "_id")
		s.LastSenderID = stringField(m, "senderId")
		s.LastMessageAt = d.OccurredAt
		if t, err := time.Parse(time.RFC3339, stringField(msg, "createdAt")); err == nil {
			s.LastMessageAt = t.UTC()
		}
	case EventMessageEdited:
		s.Edited++
	case EventMessageDeleted:
		s.Deleted++
	case EventMessagesRead:
		if u := stringField(m, "userId"); u != "" {
			s.ReadUpTo[u] = stringField(m, "upToMessageId")
		}
	}
}

// memberSet is the membership of one shared room, folded from
// ImpliedMembership.
type memberSet map[string]bool

// apply applies the membership changes d implies for room and returns the
// sorted members. It allocates the set on first use, so callers keep the
// returned slice and the (possibly new) set through a pointer receiver.
func (ms *memberSet) apply(room Room, d Delivery) []string {
	if *ms == nil {
		*ms = memberSet{}
	}
	for _, c := range ImpliedMembership(d.Type, []Room{d.Room}, d.Payload) {
		if c.Room != room {
			continue
		}
		if c.Added {
			(*ms)[c.UserID] = true
		} else {
			delete(*ms, c.UserID)
		}
	}
	out := make([]string, 0, len(*ms))
	for u := range *ms {
		out = append(out, u)
	}
	slices.Sort(out)
	return out
}

// linkPayment adds payment id to pays (indexed by idx) unless present.
func linkPayment(pays *[]PaymentState, idx map[string]int, id string) {
	if _, ok := idx[id]; ok {
		return
	}
	idx[id] = len(*pays)
	*pays = append(*pays, PaymentState{PaymentID: id})
}

// foldLinked folds d into every linked payment it names, once per event
// and payment, and reports whether it folded anything.
func foldLinked(pays *[]PaymentState, idx map[string]int, seen map[string]bool, d Delivery, m map[string]json.RawMessage, refs []EntityRef) bool {
	folded := false
	for _, r := range refs {
		i, ok := idx[r.ID]
		if r.Kind != EntityPayment || !ok {
			continue
		}
		key := "pay " + r.ID + " " + d.ID
		if seen[key] {
			continue
		}
		seen[key] = true
		(*pays)[i].apply(d, m, refs)
		folded = true
	}
	return folded
}

func hasRef(refs []EntityRef, k EntityKind, id string) bool {
	for _, r := range refs {
		if r.Kind == k && r.ID == id {
			return true
		}
	}
	return false
}

// object returns the members of a JSON object, or nil.
func object(raw json.RawMessage) map[string]json.RawMessage {
	m, err := objectMembers(raw)
	if err != nil {
		return nil
	}
	return m
}

func boolField(m map[string]json.RawMessage, key string) bool {
	var b bool
	_ = json.Unmarshal(m[key], &b) // absent or not a boolean: false
	return b
}

func scalarField(m map[string]json.RawMessage, key string) Scalar {
	var s Scalar
	if raw, ok := m[key]; ok && json.Unmarshal(raw, &s) == nil {
		return s
	}
	return Scalar{}
}
