-- relay PostgreSQL schema 5 (SQLite schema 6): console and portal sessions, shared by
-- every process on the database, so that signing out on one ends the session on all.
CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    subject      TEXT NOT NULL,
    created_at   DOUBLE PRECISION NOT NULL,
    last_seen_at DOUBLE PRECISION NOT NULL,
    expires_at   DOUBLE PRECISION NOT NULL
);
