-- Socket.IO connection state recovery, kept in the database so that a
-- client can recover on any server process, after a graceful stop or a
-- SIGKILL alike.
--
-- One row per Socket.IO private session id (pid, a secret the client
-- received in its CONNECT reply). The row is written when the socket
-- connects and on every join and leave, so it is current before any
-- disconnect happens; a process that dies without a goodbye leaves correct
-- rows behind. Nothing here holds events: missed events are read from the
-- log itself (events, by room and (txid, id)).
--
-- Why the row is bound to user_id: a pid alone is not a credential. A
-- recovering handshake is authenticated again, and a token of another user
-- cannot restore the session.
--
-- rooms maps each room to the log Position ("txid:id") the socket joined it
-- at: events of the room at or before that position were never sent to the
-- socket live, so recovery does not send them either.
--
-- Storage stays bounded: live sockets push expires_at forward (their
-- process heartbeats them), a disconnected socket's row expires one
-- recovery window after it went away, and every process deletes expired
-- rows. A session past expires_at is never restored.
CREATE TABLE socket_sessions (
    pid        text        PRIMARY KEY,
    sid        text        NOT NULL,
    user_id    text        NOT NULL,
    node       text        NOT NULL,
    rooms      jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX socket_sessions_expires_at ON socket_sessions (expires_at);

-- Recovery reads one room's events after a Position, in (txid, id) order.
-- Within a room that order is seq order (appends lock rooms before taking a
-- txid), but the planner cannot know it; this index serves the read
-- directly, without scanning the room from its first seq.
CREATE INDEX events_room_position ON events (room, txid, id);
