-- relay schema 1. Times are unix seconds (REAL).

CREATE TABLE endpoints (
    id                   TEXT PRIMARY KEY,
    tenant               TEXT NOT NULL,
    source               TEXT NOT NULL,            -- 'config' | 'api'
    name                 TEXT NOT NULL,
    spec                 TEXT NOT NULL,            -- JSON: url, events, filter, headers, ...
    secret               TEXT NOT NULL,
    prev_secret          TEXT,                     -- still signing until prev_secret_until
    prev_secret_until    REAL,
    is_active            INTEGER NOT NULL DEFAULT 1,  -- 0: disabled by relay (410, disable_after)
    is_paused            INTEGER NOT NULL DEFAULT 0,  -- 1: paused by an operator
    disable_reason       TEXT,
    created_at           REAL NOT NULL,
    updated_at           REAL NOT NULL,
    deleted_at           REAL,
    last_delivery_at     REAL,
    last_delivery_status INTEGER,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    failing_since        REAL                      -- first failure since the last success
);

CREATE TABLE events (
    seq          INTEGER PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,             -- evt_..., the webhook-id
    tenant       TEXT NOT NULL,
    type         TEXT NOT NULL,
    idem_key     TEXT,                             -- body "id" or Idempotency-Key header
    digest       TEXT NOT NULL,                    -- sha256 of tenant, type and data
    created_at   REAL NOT NULL,
    n_deliveries INTEGER NOT NULL,
    payload      BLOB NOT NULL                     -- the envelope as sent
);
CREATE UNIQUE INDEX events_idem ON events (tenant, idem_key) WHERE idem_key IS NOT NULL;
CREATE INDEX events_created ON events (created_at);
CREATE INDEX events_type ON events (tenant, type, seq);

CREATE TABLE deliveries (
    id          INTEGER PRIMARY KEY,
    event_id    TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    state       TEXT NOT NULL,  -- pending delivering succeeded failed held cancelled
    attempts    INTEGER NOT NULL DEFAULT 0,        -- counted when claimed
    next_at     REAL NOT NULL,
    lease_until REAL,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
    last_status INTEGER,
    last_error  TEXT
);
-- The claim index: due work per endpoint, in order. Partial, so it holds only the queue.
CREATE INDEX deliveries_due ON deliveries (endpoint_id, next_at, id) WHERE state = 'pending';
CREATE INDEX deliveries_held ON deliveries (endpoint_id, id) WHERE state = 'held';
CREATE INDEX deliveries_inflight ON deliveries (lease_until) WHERE state = 'delivering';
CREATE INDEX deliveries_event ON deliveries (event_id);
CREATE INDEX deliveries_endpoint ON deliveries (endpoint_id, id);

CREATE TABLE attempts (
    id               INTEGER PRIMARY KEY,
    delivery_id      INTEGER NOT NULL,
    n                INTEGER NOT NULL,
    started_at       REAL NOT NULL,
    duration_ms      REAL,
    request_headers  TEXT,          -- JSON, signatures included, secrets never
    status           INTEGER,
    response_headers TEXT,          -- JSON
    response_body    BLOB,          -- first 4 KiB
    error            TEXT
);
CREATE INDEX attempts_delivery ON attempts (delivery_id, n);
