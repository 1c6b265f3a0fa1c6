-- The event log. One logical event (event_id) has one row per room it targets;
-- each row has a per-room sequence number that is gap-free and unique.
--
-- How seqs stay gap-free under any number of writers in any number of
-- processes: every append takes pg_advisory_xact_lock on each target room (in
-- sorted order, so writers cannot deadlock) *before* its first write, reads
-- the room's head, and writes head+1.. in the same transaction. A rolled-back
-- append leaves no trace, so there is no gap; UNIQUE (room, seq) is the
-- backstop that turns any violation of this discipline into an error instead
-- of a duplicate.
--
-- Why the tail is ordered by (txid, id) and not by id: identity values are
-- assigned at insert time but become visible at commit, so id 105 can be
-- visible before id 104 and a reader with "id > cursor" would skip 104
-- forever. A reader that only reads rows whose transaction id is below
-- pg_snapshot_xmin(pg_current_snapshot()) reads a set that can never gain a
-- member later, so advancing a (txid, id) cursor inside it cannot skip. Because
-- an append takes its room locks before it has a transaction id, the next
-- writer of the same room gets a larger txid: within a room, (txid, id) order
-- is seq order.
CREATE TABLE room_heads (
    room       text        PRIMARY KEY,
    seq        bigint      NOT NULL CHECK (seq >= 0),
    -- hash of the room's last row: lets verify detect a truncated tail.
    hash       bytea       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE events (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- physical order only, never a tail cursor on its own
    txid       xid8        NOT NULL DEFAULT pg_current_xact_id(),
    event_id   uuid        NOT NULL,
    room       text        NOT NULL,
    seq        bigint      NOT NULL CHECK (seq > 0),
    type       text        NOT NULL,
    -- json, not jsonb: json keeps the exact bytes, and the hash chain covers
    -- the exact bytes. jsonb would reorder keys and re-space the text.
    payload    json        NOT NULL,
    producer   text        NOT NULL,
    created_at timestamptz NOT NULL,
    -- sha256 chain per room: hash = sha256(prev_hash || row fields); see
    -- eventstore/hash.go for the exact encoding.
    prev_hash  bytea       NOT NULL,
    hash       bytea       NOT NULL,
    UNIQUE (room, seq)
);

CREATE INDEX events_tail ON events (txid, id);
CREATE INDEX events_event_id ON events (event_id);
-- BRIN is tiny and good enough for time-range audits over an append-only table.
CREATE INDEX events_created_at_brin ON events USING brin (created_at);

-- Idempotency keys are unique forever per producer: the same key with the
-- same content returns the original result, other content is a conflict.
CREATE TABLE idempotency_keys (
    producer     text        NOT NULL,
    key          text        NOT NULL,
    content_hash bytea       NOT NULL,
    event_id     uuid        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (producer, key)
);

-- The log is append-only. These triggers are a seatbelt, not the control: a
-- superuser can bypass them (session_replication_role = replica), which is
-- why the hash chain exists. Production deployments should also REVOKE
-- UPDATE, DELETE, TRUNCATE from the application role.
CREATE FUNCTION roomlog_forbid_mutation() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'roomlog: % on % is forbidden: the log is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION roomlog_forbid_mutation();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION roomlog_forbid_mutation();
CREATE TRIGGER idempotency_keys_append_only BEFORE UPDATE OR DELETE ON idempotency_keys
    FOR EACH ROW EXECUTE FUNCTION roomlog_forbid_mutation();
CREATE TRIGGER idempotency_keys_no_truncate BEFORE TRUNCATE ON idempotency_keys
    FOR EACH STATEMENT EXECUTE FUNCTION roomlog_forbid_mutation();

-- One checkpoint per named consumer (projection): the last position it has
-- fully handled. Read models commit their changes and their checkpoint in one
-- transaction.
CREATE TABLE checkpoints (
    name       text        PRIMARY KEY,
    txid       xid8        NOT NULL,
    event_row  bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
