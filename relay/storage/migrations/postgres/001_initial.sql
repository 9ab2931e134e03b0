-- relay PostgreSQL schema 1: the SQLite schema (migrations 001 and 002) plus what several
-- processes sharing one database need (nodes, shared rate buckets, a change counter).
-- Times are unix seconds (DOUBLE PRECISION). The version lives in relay_schema.

CREATE TABLE endpoints (
    id                   TEXT PRIMARY KEY,
    tenant               TEXT NOT NULL,
    source               TEXT NOT NULL,            -- 'config' | 'api'
    name                 TEXT NOT NULL,
    spec                 TEXT NOT NULL,            -- JSON: url, events, filter, headers, ...
    secret               TEXT NOT NULL,
    prev_secret          TEXT,                     -- still signing until prev_secret_until
    prev_secret_until    DOUBLE PRECISION,
    is_active            BOOLEAN NOT NULL DEFAULT TRUE,   -- false: disabled by relay
    is_paused            BOOLEAN NOT NULL DEFAULT FALSE,  -- true: paused by an operator
    disable_reason       TEXT,
    created_at           DOUBLE PRECISION NOT NULL,
    updated_at           DOUBLE PRECISION NOT NULL,
    deleted_at           DOUBLE PRECISION,
    last_delivery_at     DOUBLE PRECISION,
    last_delivery_status INTEGER,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    failing_since        DOUBLE PRECISION          -- first failure since the last success
);

CREATE TABLE events (
    seq          BIGSERIAL PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,             -- evt_..., the webhook-id
    tenant       TEXT NOT NULL,
    type         TEXT NOT NULL,
    idem_key     TEXT,                             -- body "id" or Idempotency-Key header
    digest       TEXT NOT NULL,                    -- sha256 of tenant, type and data
    created_at   DOUBLE PRECISION NOT NULL,
    n_deliveries INTEGER NOT NULL,
    payload      BYTEA NOT NULL                    -- the envelope as sent
);
-- Idempotency across processes: the second of two racing inserts fails here.
CREATE UNIQUE INDEX events_idem ON events (tenant, idem_key) WHERE idem_key IS NOT NULL;
CREATE INDEX events_created ON events (created_at);
CREATE INDEX events_type ON events (tenant, type, seq);
CREATE INDEX events_tenant ON events (tenant, seq);

CREATE TABLE deliveries (
    id          BIGSERIAL PRIMARY KEY,
    event_id    TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    state       TEXT NOT NULL,  -- pending delivering succeeded failed held cancelled
    attempts    INTEGER NOT NULL DEFAULT 0,        -- counted when claimed
    next_at     DOUBLE PRECISION NOT NULL,
    lease_until DOUBLE PRECISION,
    created_at  DOUBLE PRECISION NOT NULL,
    updated_at  DOUBLE PRECISION NOT NULL,
    last_status INTEGER,
    last_error  TEXT
);
-- The claim index: due work per endpoint, in order. Partial, so it holds only the queue.
CREATE INDEX deliveries_due ON deliveries (endpoint_id, next_at, id) WHERE state = 'pending';
CREATE INDEX deliveries_held ON deliveries (endpoint_id, id) WHERE state = 'held';
CREATE INDEX deliveries_inflight ON deliveries (lease_until) WHERE state = 'delivering';
-- Live leases per endpoint: endpoint_concurrency counted across every process.
CREATE INDEX deliveries_leased ON deliveries (endpoint_id, lease_until) WHERE state = 'delivering';
CREATE INDEX deliveries_event ON deliveries (event_id);
CREATE INDEX deliveries_endpoint ON deliveries (endpoint_id, id);
CREATE INDEX deliveries_failed ON deliveries (endpoint_id, updated_at) WHERE state = 'failed';

CREATE TABLE attempts (
    id               BIGSERIAL PRIMARY KEY,
    delivery_id      BIGINT NOT NULL,
    n                INTEGER NOT NULL,
    started_at       DOUBLE PRECISION NOT NULL,
    duration_ms      DOUBLE PRECISION,
    request_headers  TEXT,          -- JSON, signatures included, secrets never
    status           INTEGER,
    response_headers TEXT,          -- JSON
    response_body    BYTEA,         -- first 4 KiB
    error            TEXT
);
CREATE INDEX attempts_delivery ON attempts (delivery_id, n);

-- rate_limit held across processes: one token bucket per endpoint, taken under the
-- endpoint's claim lock.
CREATE TABLE rate_buckets (
    endpoint_id TEXT PRIMARY KEY,
    tokens      DOUBLE PRECISION NOT NULL,
    refilled    DOUBLE PRECISION NOT NULL
);

-- Every relay serve process sharing the database, seen by its heartbeat (relay status).
CREATE TABLE nodes (
    id            TEXT PRIMARY KEY,             -- relay:host:pid:random
    host          TEXT NOT NULL,
    pid           INTEGER NOT NULL,
    version       TEXT NOT NULL,
    config_digest TEXT NOT NULL,                -- sha256 of the config file's endpoints
    started_at    DOUBLE PRECISION NOT NULL,
    seen_at       DOUBLE PRECISION NOT NULL
);

-- Bumped by every endpoint change: each process polls it to refresh its endpoints.
CREATE TABLE endpoint_changes (
    one     BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    version BIGINT NOT NULL
);
INSERT INTO endpoint_changes VALUES (TRUE, 0);
