-- Drops the one-round-trip append's head check. This roomlog needs it
-- (eventstore/heads.go): migrate down only to run an older release.
DROP FUNCTION IF EXISTS roomlog_advance_heads(text[], bigint[], bytea[], bigint[], bytea[]);
