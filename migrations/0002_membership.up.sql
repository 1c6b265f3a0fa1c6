-- Membership of shared rooms (request-, chat-, template-checkout-<id>): a
-- read model built by the "membership" projection from the log. Every grant
-- and revocation is an event in the log, so the table can always be rebuilt
-- from zero and every change is auditable.
CREATE TABLE room_members (
    room       text        NOT NULL,
    user_id    text        NOT NULL,
    -- the log position of the event that made the user a member
    since_txid xid8        NOT NULL,
    since_row  bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (room, user_id)
);
CREATE INDEX room_members_user ON room_members (user_id);
