-- relay PostgreSQL schema 6 (SQLite schema 7): tenants and API keys created through the
-- API (SPEC §10), shared by every process. Each holds them in memory with its config
-- file's (relay.directory) and reads them again when directory_changes.version moves:
-- every write bumps it and sends NOTIFY relay_directory in its own transaction, and
-- the heartbeat compares it, should a NOTIFY be missed.
CREATE TABLE tenants (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    metadata         TEXT NOT NULL,
    max_webhooks     INTEGER,
    webhooks_enabled BOOLEAN NOT NULL,
    uid              TEXT UNIQUE,
    throttle_rate    INTEGER,
    created_at       DOUBLE PRECISION NOT NULL,
    updated_at       DOUBLE PRECISION NOT NULL
);
CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    sha256     TEXT NOT NULL UNIQUE,
    scopes     TEXT NOT NULL,
    tenant     TEXT NOT NULL,
    expires_at DOUBLE PRECISION,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE directory_changes (
    one     BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    version BIGINT NOT NULL
);
INSERT INTO directory_changes VALUES (TRUE, 0);
