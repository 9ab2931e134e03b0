-- relay schema 8: what Svix's API (/api/v1, docs/svix.md) keeps beside relay's own.

-- An endpoint's caller-chosen id and labels (Svix's uid and metadata, a JSON string map).
ALTER TABLE endpoints ADD COLUMN uid TEXT;
ALTER TABLE endpoints ADD COLUMN metadata TEXT;
-- A uid names one live endpoint of its tenant; a deleted endpoint's uid is free again.
CREATE UNIQUE INDEX endpoints_uid ON endpoints (tenant, uid)
    WHERE uid IS NOT NULL AND deleted_at IS NULL;

-- The channels an event was sent on (a JSON list; NULL: none), matched against the
-- endpoints' `channels` again when it is replayed.
ALTER TABLE events ADD COLUMN channels TEXT;
-- 1: made by a replay (an operator re-sending it), not by ingest: Svix's "manual" attempts.
ALTER TABLE deliveries ADD COLUMN manual INTEGER NOT NULL DEFAULT 0;

-- The ingest view of migration 005, with the channels.
DROP TRIGGER ingest_insert;
DROP VIEW ingest;
CREATE VIEW ingest AS
    SELECT id, tenant, type, idem_key, digest, created_at, n_deliveries, payload, channels,
           NULL AS targets
    FROM events;

CREATE TRIGGER ingest_insert INSTEAD OF INSERT ON ingest
BEGIN
    INSERT INTO events (id, tenant, type, idem_key, digest, created_at, n_deliveries,
                        payload, channels)
    VALUES (NEW.id, NEW.tenant, NEW.type, NEW.idem_key, NEW.digest, NEW.created_at,
            NEW.n_deliveries, NEW.payload, NEW.channels);
    INSERT INTO deliveries (event_id, endpoint_id, state, next_at, created_at, updated_at)
    SELECT NEW.id, json_extract(value, '$[0]'), json_extract(value, '$[1]'), NEW.created_at,
           NEW.created_at, NEW.created_at
    FROM json_each(NEW.targets) ORDER BY key;
END;

-- API requests by idempotency key (the `idempotency-key` header of /api/v1's POSTs): the
-- first answer, given again to a retry of the same request for 12 hours
-- (relay.storage.rules.answer_again).
CREATE TABLE idempotency (
    owner      TEXT NOT NULL,     -- whose key: the sha256 of the API key that sent it
    key        TEXT NOT NULL,     -- the header's value
    digest     TEXT NOT NULL,     -- sha256 of the request: method, path, query and body
    status     INTEGER,           -- the answer's status; NULL while being answered
    body       BLOB NOT NULL,     -- the answer's body
    created_at REAL NOT NULL,
    PRIMARY KEY (owner, key)
);
CREATE INDEX idempotency_created ON idempotency (created_at);
