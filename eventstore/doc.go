// Package eventstore owns every SQL statement roomlog runs against
// PostgreSQL: the append-only event log, per-room heads, idempotency keys,
// consumer checkpoints, the tail query and the hash-chain verifier.
//
// # Overview
//
// Appends go through a group-commit writer: concurrent Append calls queue
// their events, one goroutine drains the queue and writes everything in one
// transaction with one fsync, then acknowledges every caller. Throughput
// therefore rises with concurrency while each acknowledgement still means a
// durable commit (synchronous_commit = on).
//
// Each append locks its rooms with pg_advisory_xact_lock, in sorted order and
// before its first write, so per-room sequence numbers are gap-free and
// unique across processes, and a room's rows commit in seq order.
//
// Readers never trust an identity column alone. The tail (ReadTail) orders by
// (txid, id) and reads only rows whose transaction is older than every
// transaction still running, so a row that commits late is never skipped.
//
// pgx types do not leave this package; callers see domain types.
package eventstore
