-- relay schema 5: ingest as one statement.

-- An event with its deliveries, written through this view: a row's `targets` is a JSON
-- array of [endpoint_id, state], and the trigger inserts the event and one delivery per
-- target (in the targets' order, so delivery ids keep following events). Being one
-- statement, a batch of events needs no BEGIN and COMMIT of its own: the writer runs it
-- in SQLite's implicit transaction. Each statement the writer thread runs gives up the
-- GIL and waits to take it back from the busy event loop; four statements per ingest
-- (BEGIN, events, deliveries, COMMIT) made that wait most of a commit's time.
CREATE VIEW ingest AS
    SELECT id, tenant, type, idem_key, digest, created_at, n_deliveries, payload,
           NULL AS targets
    FROM events;

CREATE TRIGGER ingest_insert INSTEAD OF INSERT ON ingest
BEGIN
    INSERT INTO events (id, tenant, type, idem_key, digest, created_at, n_deliveries,
                        payload)
    VALUES (NEW.id, NEW.tenant, NEW.type, NEW.idem_key, NEW.digest, NEW.created_at,
            NEW.n_deliveries, NEW.payload);
    INSERT INTO deliveries (event_id, endpoint_id, state, next_at, created_at, updated_at)
    SELECT NEW.id, json_extract(value, '$[0]'), json_extract(value, '$[1]'), NEW.created_at,
           NEW.created_at, NEW.created_at
    FROM json_each(NEW.targets) ORDER BY key;
END;
