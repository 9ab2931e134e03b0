-- relay PostgreSQL schema 2 (SQLite schema 3): keys relay generates for itself (the
-- console's session signing key), shared by every process on the database; and the
-- console's recent-attempts queries by time.
CREATE TABLE secret_keys (
    name       TEXT PRIMARY KEY,
    key        BYTEA NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX attempts_started ON attempts (started_at);
