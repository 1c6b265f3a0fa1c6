// Package domain holds roomlog's vocabulary: the event envelope, the catalogue
// of server→client events from the product spec, room names, the principal
// that a token identifies, the join policy and the error codes every other
// package speaks.
//
// # Overview
//
// domain has no I/O. It imports no database, HTTP or Socket.IO package, starts
// no goroutines and never reads the clock: callers pass times in. Everything
// here is pure and table-tested, so the rules the rest of the service enforces
// (which rooms an event may target, who may join which room, which events are
// durable) are written down exactly once.
//
// # Rooms
//
// A Room is a validated name such as "user-42" or "sellers"; ParseRoom and
// the constructors (UserRoom, ChatRoom, …) are the only code that knows the
// spelling. Personal rooms (user, seller, buyer) belong to one user; shared
// rooms (request, chat, template-checkout) belong to their members; sellers,
// buyers and global are open to a role or to everyone.
//
// # Catalogue
//
// Catalogue lists every event type with its EventSpec: whether it is durable
// (stored and replayed; only user-typing is not), whether it is internal
// (roomlog's own room-member-added and room-member-removed events that
// grant and revoke membership of shared rooms; delivered like the others so
// room seqs stay gap-free for clients), the room kinds
// it may target and its payload fields. Producers may also publish extension
// events named "x-…" with any object payload. ValidatePublish is the single
// check an event passes before it is appended, and each event has a typed
// payload struct (NewOffer, NewMessage, …) whose Kind method returns its
// stable wire name.
//
// # Policy
//
// CanJoin, CanRead and CanType decide who may receive, read and type in a
// room. Membership of shared rooms is derived from the log itself:
// ImpliedMembership says which membership changes an event implies.
package domain
