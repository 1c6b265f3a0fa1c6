DROP INDEX IF EXISTS events_type_tail;
DROP INDEX IF EXISTS events_payload_jsonb;
