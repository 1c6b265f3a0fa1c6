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
package domain
