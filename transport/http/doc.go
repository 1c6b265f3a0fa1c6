// Package httpapi is roomlog's REST API, served with gin: producers publish
// events, reconnecting clients catch up on the rooms they follow, auditors
// query, export and verify history, and anyone authenticated can read
// presence. The OpenAPI 3.1 document of every route is served at
// /api/v1/openapi.json.
//
// # Overview
//
//   - POST /api/v1/events: producers, authenticated by API key
//     (Authorization: Bearer <key> or X-API-Key: <key>), publish one event
//     or an atomic batch of up to MaxBatchEvents. The key's configured name
//     is recorded as each event's producer. Membership of shared rooms is
//     granted and revoked through the same route with room-member-added and
//     room-member-removed events.
//   - GET /api/v1/rooms/{room}/events and POST /api/v1/catch-up: clients,
//     authenticated by their JWT, read what they missed, with the same
//     authorization as socket joins (domain.CanRead plus membership of
//     shared rooms).
//   - GET /api/v1/audit/events, GET /api/v1/audit/export and
//     GET /api/v1/audit/rooms/{room}/verify: the auditor and admin roles
//     query the whole log, stream it as NDJSON or CSV and check a room's
//     hash chain.
//   - GET /api/v1/presence: who is online.
//   - GET /healthz and GET /readyz: liveness and readiness.
//
// # Errors
//
// Every error answers {"error": {"code", "message", "details"?}}. Handlers
// return errors carrying a domain.Code; statusOf maps each code to its HTTP
// status in one place, and writeError logs internal errors and never sends
// their text. Unavailable dependencies answer 503 with Retry-After.
//
// # Choices the issue leaves open
//
//   - "room" is shorthand for "rooms": [room]; giving both is an error. The
//     room kinds each event may target are the catalogue's
//     (domain.Catalogue), which documents every choice where the spec is
//     vague.
//   - A batch answers 200 only if every event in it was an idempotent
//     replay, and 201 otherwise.
//   - A room the caller may not read, and a name that is not a valid room,
//     both answer 404 with the same body. A readable room with no events
//     answers 200 with head 0: whether a room has events is never revealed
//     to someone who may not read it.
//   - reset: true means the answer does not continue the cursor (it is
//     ahead of the head, or older than the oldest event the log holds).
//     The events then start at the oldest event the log holds for the
//     room: the client discards what it has for the room and rebuilds from
//     them.
//   - Multi-room catch-up answers every room it was asked about; a room
//     the caller may not read gets an entry with the same not_found error
//     as a room that does not exist, rather than failing the request.
//   - A catch-up page holds up to MaxCatchUpLimit (10,000) events, so
//     that a client that was away catches up in one request, and stops
//     early, with more: true, once its payloads reach 4 MiB (shared
//     between the rooms of a multi-room catch-up); it always holds at
//     least one event. Audit pages stay at MaxReadLimit (1,000).
//   - Audit pages carry next only while more rows matched at the time of
//     the read; an export reads the rows that had committed when it
//     started, so it ends even while appends continue.
package httpapi
