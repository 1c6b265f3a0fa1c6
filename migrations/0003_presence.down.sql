-- Drops the presence read model. The user-status-change events stay in the log.
DROP TABLE IF EXISTS presence_users;
DROP TABLE IF EXISTS presence_sessions;
DROP TABLE IF EXISTS presence_nodes;
