-- Drops connection state recovery. Clients then reconnect with
-- recovered = false and catch up over REST, as the spec's policy says.
DROP INDEX IF EXISTS events_room_position;
DROP TABLE IF EXISTS socket_sessions;
