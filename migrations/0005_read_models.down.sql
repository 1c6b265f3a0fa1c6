-- Drops the unread-count and entity-index read models and their checkpoints.
-- Nothing is lost: both are rebuilt from the log when the tables return.
DROP TABLE IF EXISTS entity_events;
DROP TABLE IF EXISTS notification_unread;
DELETE FROM checkpoints WHERE name IN ('unread', 'entities');
