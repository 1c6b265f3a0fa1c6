-- Indexes for the audit API (GET /api/v1/audit/events). Audit pages are read in
-- global order, ORDER BY (txid, id), below pg_snapshot_xmin like the tail; the
-- existing events_tail index serves unfiltered and common-value queries, the
-- (room, seq) key serves room filters, events_event_id serves event-id lookups
-- and the BRIN serves time windows. Measured on PG 15 with 1M rows (2-core VM):
--
--   filter                                    without       with
--   payload containment {"requestId":"r42"}   2,015 ms      0.6 ms   (50 of 1M rows match)
--   type = a type in 1 of 1,000 rows             31 ms      0.8 ms   (page of 101)
--   producer = one in 1 of 1,000 rows            23 ms      0.7 ms   (not indexed, see below)
--
-- Cost per 1M rows: GIN 54 MB, (type, txid, id) 51 MB, (producer, txid, id)
-- 39 MB. Inserting 200k rows in 1,000-row transactions took 3.5-3.9 s with
-- neither, 5.0 s with the GIN index and 5.9 s with the GIN index and both
-- btrees. Without an index the scans grow linearly with the log and a rare
-- value needs a full scan per page.

-- Payload containment ("every event whose payload has requestId X"). The
-- payload column is json (exact bytes for the hash chain), so the index is on
-- the expression payload::jsonb; queries must write exactly (e.payload::jsonb)
-- @> $n::jsonb to use it. jsonb_path_ops supports only @> (all we need) and,
-- per the PostgreSQL docs, is smaller and faster for it than jsonb_ops.
--
-- Side effect, on purpose: every payload must now convert to jsonb, so an
-- append whose payload holds \u0000 (which json accepts and jsonb rejects)
-- fails with SQLSTATE 22P05 instead of storing a row that would make every
-- later containment query fail. domain.ValidatePublish already rejects such
-- payloads for everything published through the API.
CREATE INDEX IF NOT EXISTS events_payload_jsonb ON events USING gin ((payload::jsonb) jsonb_path_ops);

-- Event type in global order: catalogue types are heavily skewed (chat
-- messages dominate, payouts are rare) and rare types are what auditors ask
-- for. Producers get no index: they are a handful of services with comparable
-- volumes, so a producer filter finds a page quickly on events_tail.
CREATE INDEX IF NOT EXISTS events_type_tail ON events (type, txid, id);

-- CREATE INDEX (not CONCURRENTLY: migrations run in a transaction) blocks
-- appends while it builds. On a large existing log, build both by hand first
-- with CREATE INDEX CONCURRENTLY and exactly these names and definitions;
-- IF NOT EXISTS then makes this migration a no-op.
