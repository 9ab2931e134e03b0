-- relay schema 3: keys relay generates for itself (the console's session signing key),
-- kept in the database so they survive restarts and never appear in the config file.
CREATE TABLE secret_keys (
    name       TEXT PRIMARY KEY,
    key        BLOB NOT NULL,
    created_at REAL NOT NULL
);
