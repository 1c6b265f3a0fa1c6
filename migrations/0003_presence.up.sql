-- Presence: which users have live sockets on which server process, and each
-- user's last known status. Every status change is also an event in the log
-- (user-status-change in room global, producer roomlog-presence), appended in
-- the same transaction that changes these tables, so the log and the read
-- model below never disagree.
--
-- How presence stays correct with several server processes: each process
-- (node) heartbeats its row in presence_nodes and registers one row in
-- presence_sessions per socket that announced itself with user-online. A
-- user is online while they have at least one session anywhere. Transitions
-- are decided under a per-user advisory transaction lock, so two nodes can
-- never both announce the same user's first socket or last goodbye. A node
-- that stops heartbeating (it crashed) is swept by the surviving nodes: its
-- sessions are removed and users left with no session go offline. Sessions
-- whose node has no row at all are treated like those of a dead node.
CREATE TABLE presence_nodes (
    node_id      text        PRIMARY KEY,
    started_at   timestamptz NOT NULL DEFAULT now(),
    -- database clock, so that liveness never depends on the nodes' clocks
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);

-- No foreign key to presence_nodes: a session may be registered in the same
-- transaction that (re)creates its node row, and the sweeper removes the
-- sessions of missing nodes itself.
CREATE TABLE presence_sessions (
    node_id      text        NOT NULL,
    socket_id    text        NOT NULL,
    user_id      text        NOT NULL,
    connected_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (node_id, socket_id)
);
CREATE INDEX presence_sessions_user ON presence_sessions (user_id);

-- The last status announced for each user, exactly as the last
-- user-status-change event in the log says. Users never seen have no row.
CREATE TABLE presence_users (
    user_id    text        PRIMARY KEY,
    status     text        NOT NULL CHECK (status IN ('online', 'offline')),
    -- when the user came online or went offline (the event's lastSeen)
    last_seen  timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
