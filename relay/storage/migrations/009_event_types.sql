-- relay schema 9: event types created through the API (SPEC §10). The config file's
-- [[event_types]] are never stored here: each process holds both in its directory
-- (relay.directory), with the schemas compiled, and reads this table again when
-- directory_changes.version moves, which every write to it bumps in its own transaction.
CREATE TABLE event_types (
    name        TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    sample      TEXT NOT NULL,                 -- JSON object: the example `data`
    schema      TEXT,                          -- JSON Schema for `data`; NULL: any object
    deprecated  INTEGER NOT NULL,              -- still accepted, shown as deprecated
    archived    INTEGER NOT NULL,              -- Svix's delete: kept, not listed, not enforced
    enforced    INTEGER NOT NULL,              -- 0 (Svix's): the schema is documentation
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
);
