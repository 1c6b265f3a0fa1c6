-- Read models that projections build from the log (projector/readmodels.go,
-- projector/registry.go). Like room_members, every row here is derived: the
-- tables can be dropped and rebuilt from the log at any time (roomlog project
-- rebuild NAME), and each projection commits its rows together with its
-- checkpoint (checkpoints.name) in one transaction, so a crash never applies
-- an event twice or skips one.
--
-- The checkpoints of these projections are deleted here so that a schema
-- that once had these tables (migrated down, then up again) rebuilds them
-- from the beginning of the log instead of resuming after events whose
-- effects were dropped with the tables.
DELETE FROM checkpoints WHERE name IN ('unread', 'entities');

-- Unread notification count per user: projection "unread". new-notification
-- to user-<id> adds one, unread-count-update {unreadCount} sets the count.
-- Users without a row have no unread notifications.
CREATE TABLE notification_unread (
    user_id      text        PRIMARY KEY,
    unread_count bigint      NOT NULL CHECK (unread_count >= 0),
    -- the log position of the last event that changed the count
    txid         xid8        NOT NULL,
    event_row    bigint      NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Entity index: projection "entities". One row per (entity, delivery): every
-- row of the log (events.id = event_row) that touched a purchase request, a
-- payment, a template checkout or a chat, wherever it was delivered (see
-- domain.EntityRefs for which payload fields and rooms name which entity).
-- An entity's history is then one range scan of the primary key, already in
-- the log's global (txid, id) order; payloads stay in events and are joined
-- in, so the index holds no copy of any payload.
--
-- No foreign key to events: the log is append-only (rows are never deleted),
-- and a foreign key would only add a lookup to every indexed row.
CREATE TABLE entity_events (
    kind       text        NOT NULL CHECK (kind IN ('request', 'payment', 'template-checkout', 'chat')),
    entity_id  text        NOT NULL CHECK (length(entity_id) BETWEEN 1 AND 200),
    txid       xid8        NOT NULL,
    event_row  bigint      NOT NULL,
    event_id   uuid        NOT NULL,
    room       text        NOT NULL,
    seq        bigint      NOT NULL,
    -- events.created_at, copied so that "as of T" filters without a join
    created_at timestamptz NOT NULL,
    PRIMARY KEY (kind, entity_id, txid, event_row)
);
-- Which entities did one event touch: links a request to the payments its
-- events name (a request's history includes its payments' events).
CREATE INDEX entity_events_event_id ON entity_events (event_id);
