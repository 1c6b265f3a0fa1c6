-- Index for the audit API (GET /api/v1/audit/events). Audit pages are read in
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

-- Payload containment ("every event whose payload has requestId X") gets NO
-- index, on purpose. A GIN index on (payload::jsonb) jsonb_path_ops made
-- containment 3,000x faster, but it made every append batch 5-6x slower
-- (640-row batch insert: 7.7 ms without, 46.7 ms with, measured in the append
-- benchmark's database), and the log's append path comes first. Containment
-- filters therefore scan; combine them with a time range (BRIN) or an event
-- type (below), and use GET /api/v1/audit/entities/{kind}/{id}, which reads
-- the indexed entity_events read model, for one entity's whole history.

-- Event type in global order: catalogue types are heavily skewed (chat
-- messages dominate, payouts are rare) and rare types are what auditors ask
-- for. Producers get no index: they are a handful of services with comparable
-- volumes, so a producer filter finds a page quickly on events_tail.
CREATE INDEX IF NOT EXISTS events_type_tail ON events (type, txid, id);

-- CREATE INDEX (not CONCURRENTLY: migrations run in a transaction) blocks
-- appends while it builds. On a large existing log, build both by hand first
-- with CREATE INDEX CONCURRENTLY and exactly these names and definitions;
-- IF NOT EXISTS then makes this migration a no-op.
