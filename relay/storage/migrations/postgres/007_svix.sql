-- relay PostgreSQL schema 7 (SQLite schema 8): what Svix's API (/api/v1, docs/svix.md)
-- keeps beside relay's own.

-- An endpoint's caller-chosen id and labels (Svix's uid and metadata, a JSON string map).
ALTER TABLE endpoints ADD COLUMN uid TEXT;
ALTER TABLE endpoints ADD COLUMN metadata TEXT;
-- A uid names one live endpoint of its tenant; a deleted endpoint's uid is free again.
CREATE UNIQUE INDEX endpoints_uid ON endpoints (tenant, uid)
    WHERE uid IS NOT NULL AND deleted_at IS NULL;

-- The channels an event was sent on (a JSON list; NULL: none), matched against the
-- endpoints' `channels` again when it is replayed.
ALTER TABLE events ADD COLUMN channels TEXT;
-- Made by a replay (an operator re-sending it), not by ingest: Svix's "manual" attempts.
ALTER TABLE deliveries ADD COLUMN manual BOOLEAN NOT NULL DEFAULT FALSE;

-- API requests by idempotency key (the `idempotency-key` header of /api/v1's POSTs): the
-- first answer, given again to a retry of the same request for 12 hours, by any process
-- (relay.storage.rules.answer_again).
CREATE TABLE idempotency (
    owner      TEXT NOT NULL,     -- whose key: the sha256 of the API key that sent it
    key        TEXT NOT NULL,     -- the header's value
    digest     TEXT NOT NULL,     -- sha256 of the request: method, path, query and body
    status     INTEGER,           -- the answer's status; NULL while being answered
    body       BYTEA NOT NULL,    -- the answer's body
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (owner, key)
);
CREATE INDEX idempotency_created ON idempotency (created_at);
