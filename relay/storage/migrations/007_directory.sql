-- relay schema 7: tenants and API keys created through the API (SPEC §10). The config
-- file's tenants and keys are never stored here: each process holds both in memory
-- (relay.directory) and reads these tables again when directory_changes.version moves,
-- which every write to them bumps in its own transaction. No index beyond the keys:
-- the tables are read whole, on a change only.
CREATE TABLE tenants (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    metadata         TEXT NOT NULL,            -- JSON object of strings
    max_webhooks     INTEGER,                  -- NULL: no limit
    webhooks_enabled INTEGER NOT NULL,
    uid              TEXT UNIQUE,              -- Svix's application uid
    throttle_rate    INTEGER,                  -- Svix's, stored and echoed, not enforced
    created_at       REAL NOT NULL,
    updated_at       REAL NOT NULL
);
CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,               -- key_<ulid>
    name       TEXT NOT NULL,
    sha256     TEXT NOT NULL UNIQUE,           -- hex digest: the key itself is never stored
    scopes     TEXT NOT NULL,                  -- JSON list
    tenant     TEXT NOT NULL,
    expires_at REAL,                           -- NULL: never
    created_at REAL NOT NULL
);
CREATE TABLE directory_changes (
    one     INTEGER PRIMARY KEY CHECK (one = 1),
    version INTEGER NOT NULL
);
INSERT INTO directory_changes VALUES (1, 0);
