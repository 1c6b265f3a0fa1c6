// Package projector runs long-lived consumers of the event log.
//
// # Overview
//
// A Runner follows the log's tail for one named consumer: it loads the
// consumer's checkpoint, reads a batch after it, hands the batch to its
// Handler, saves the new checkpoint and repeats. A LISTEN/NOTIFY wake-up
// (Runner.Wake) makes it read at once; a jittered poll backs the wake-ups
// up, because notifications are lost while a listener reconnects. Errors
// are retried with exponential backoff, and the same batch is handed over
// again, so a Handler sees every event at least once and, when it commits
// its effects together with its checkpoint, exactly once. A Handler of a
// few event types (TypedHandler, Config.Types) reads only those; one
// that can tell a batch changes nothing (IdleHandler,
// Config.IdleCheckpoint) gets such batches, and saves their checkpoint,
// at most once per IdleCheckpoint.
//
// The tail (eventstore.Store.ReadTail) delivers rows in the log's global
// order, and each room in seq order, and never skips a row that commits
// late. Live fan-out to sockets, membership and presence read models are all
// Runners.
package projector
