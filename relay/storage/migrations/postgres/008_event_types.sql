-- relay PostgreSQL schema 8 (SQLite schema 9): event types created through the API
-- (SPEC §10), shared by every process. Each holds them in its directory with its config
-- file's (relay.directory) and reads them again when directory_changes.version moves:
-- every write bumps it and sends NOTIFY relay_directory in its own transaction.
CREATE TABLE event_types (
    name        TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    sample      TEXT NOT NULL,
    schema      TEXT,
    deprecated  BOOLEAN NOT NULL,
    archived    BOOLEAN NOT NULL,
    enforced    BOOLEAN NOT NULL,
    created_at  DOUBLE PRECISION NOT NULL,
    updated_at  DOUBLE PRECISION NOT NULL
);
