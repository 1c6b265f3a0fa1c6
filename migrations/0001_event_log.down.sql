-- Drops the whole log. Only for development: down migrations destroy history.
DROP TABLE IF EXISTS checkpoints;
DROP TABLE IF EXISTS idempotency_keys;
DROP TABLE IF EXISTS events;
DROP TABLE IF EXISTS room_heads;
DROP FUNCTION IF EXISTS roomlog_forbid_mutation();
