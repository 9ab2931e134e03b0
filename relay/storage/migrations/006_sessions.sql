-- relay schema 6: console and portal sessions, so that signing out, removing an admin
-- key and disabling a tenant end them (on every process sharing the database) and idle
-- ones expire. The cookie stays a signed token; its nonce is the row's id, and a signed-in
-- session is live only while its row is (relay.sessions.decide). No index beyond the key:
-- the table holds the sessions of the last session_lifetime only (housekeeping purges
-- the rest), read by id.
CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,  -- 'o' operator, 'p' portal
    subject      TEXT NOT NULL,  -- the admin key's digest prefix, or the tenant id
    created_at   REAL NOT NULL,
    last_seen_at REAL NOT NULL,
    expires_at   REAL NOT NULL
);
