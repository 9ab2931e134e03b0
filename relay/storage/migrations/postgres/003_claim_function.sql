-- relay PostgreSQL schema 3: a claim is one statement, `SELECT * FROM relay_claim(...)`,
-- run on its own (its own implicit transaction) instead of seven round trips through the
-- writer. For each endpoint, in the order given (sorted by id: the advisory locks are
-- always taken in one order, so two processes never deadlock on them):
-- - ordered (fifo): under the endpoint's claim lock, its head (the lowest-id unfinished
--   delivery) alone, and only when it is pending and due and none of the endpoint's
--   deliveries is in flight;
-- - with a cap: under the same lock, at most `cap` live leases of the whole cluster, less
--   the caller's own finished-but-unrecorded deliveries (`finished`: no longer at the
--   receiver), and with a rate, no more than the shared bucket's whole tokens;
-- - up to `want` due deliveries, oldest first, marked delivering under a lease, the
--   attempt counted (FOR UPDATE SKIP LOCKED: another process's claim skips them).
-- Rows with an id are claimed deliveries; a row without one gives the endpoint's next due
-- time (NULL: nothing pending), sent when the endpoint ran out of due work or tokens.
-- The locks are released when the statement's transaction commits.
CREATE FUNCTION relay_claim(
    p_endpoints TEXT[], p_wants INTEGER[], p_caps INTEGER[], p_rates DOUBLE PRECISION[],
    p_ordered BOOLEAN[], p_finished BIGINT[], p_now DOUBLE PRECISION,
    p_lease_until DOUBLE PRECISION
) RETURNS TABLE (
    c_endpoint TEXT, c_id BIGINT, c_event TEXT, c_attempt INTEGER, c_payload BYTEA,
    c_due DOUBLE PRECISION
) LANGUAGE plpgsql AS $$
DECLARE
    ep TEXT;
    want INTEGER;
    got INTEGER;
    live INTEGER;
    tokens DOUBLE PRECISION;
    retry_at DOUBLE PRECISION;
    head RECORD;
    has_head BOOLEAN;
BEGIN
    -- Losing a claim only repeats a delivery: its commit need not wait for the disk.
    PERFORM set_config('synchronous_commit', 'off', true);
    FOR i IN 1 .. coalesce(array_length(p_endpoints, 1), 0) LOOP
        ep := p_endpoints[i];
        want := p_wants[i];
        retry_at := NULL;
        IF p_ordered[i] OR p_caps[i] IS NOT NULL THEN
            PERFORM pg_advisory_xact_lock(hashtextextended('relay.claim:' || ep, 0));
        END IF;
        IF p_ordered[i] THEN
            -- One request at a time: nothing while one is out. Usually that one is the
            -- head, not always (an operator's retry of an earlier delivery sits below it).
            has_head := false;
            IF NOT EXISTS (SELECT 1 FROM deliveries d
                           WHERE d.endpoint_id = ep AND d.state = 'delivering') THEN
                SELECT d.id, d.state, d.next_at INTO head FROM deliveries d
                WHERE d.endpoint_id = ep AND d.state IN ('pending', 'delivering')
                ORDER BY d.id LIMIT 1;
                has_head := FOUND;
            END IF;
            IF NOT has_head THEN
                RETURN QUERY SELECT ep, NULL::BIGINT, NULL::TEXT, NULL::INTEGER,
                    NULL::BYTEA, NULL::DOUBLE PRECISION;
            ELSIF head.next_at > p_now THEN
                RETURN QUERY SELECT ep, NULL::BIGINT, NULL::TEXT, NULL::INTEGER,
                    NULL::BYTEA, head.next_at;
            ELSE
                RETURN QUERY UPDATE deliveries d SET state = 'delivering',
                    attempts = d.attempts + 1, lease_until = p_lease_until,
                    updated_at = p_now
                FROM events e WHERE d.id = head.id AND d.state = 'pending'
                AND e.id = d.event_id  -- not cancelled meanwhile
                RETURNING d.endpoint_id, d.id, d.event_id, d.attempts, e.payload,
                    NULL::DOUBLE PRECISION;
            END IF;
            CONTINUE;
        END IF;
        IF p_caps[i] IS NOT NULL THEN
            SELECT count(*) INTO live FROM deliveries d
            WHERE d.state = 'delivering' AND d.endpoint_id = ep AND d.lease_until >= p_now
            AND d.id <> ALL (p_finished);
            -- At the cap: claimed again on a wake-up (an outcome recorded here, a
            -- NOTIFY from another process, the rescan poll).
            want := least(want, p_caps[i] - live);
            IF p_rates[i] IS NOT NULL AND want > 0 THEN
                INSERT INTO rate_buckets AS b (endpoint_id, tokens, refilled)
                VALUES (ep, p_rates[i], p_now)
                ON CONFLICT (endpoint_id) DO UPDATE SET
                    tokens = least(p_rates[i],
                                   b.tokens + greatest(0, p_now - b.refilled) * p_rates[i]),
                    refilled = p_now
                RETURNING b.tokens INTO tokens;
                IF floor(tokens) < want THEN  -- held back by the bucket: due at the next token
                    want := floor(tokens)::INTEGER;
                    retry_at := p_now + (1 - (tokens - floor(tokens))) / p_rates[i];
                END IF;
            END IF;
        END IF;
        got := 0;
        IF want > 0 THEN
            RETURN QUERY UPDATE deliveries d SET state = 'delivering',
                attempts = d.attempts + 1, lease_until = p_lease_until, updated_at = p_now
            FROM (SELECT x.id FROM deliveries x WHERE x.state = 'pending'
                  AND x.endpoint_id = ep AND x.next_at <= p_now ORDER BY x.next_at, x.id
                  LIMIT want FOR UPDATE SKIP LOCKED) c, events e
            WHERE d.id = c.id AND e.id = d.event_id
            RETURNING d.endpoint_id, d.id, d.event_id, d.attempts, e.payload,
                NULL::DOUBLE PRECISION;
            GET DIAGNOSTICS got = ROW_COUNT;
            IF p_rates[i] IS NOT NULL AND got > 0 THEN
                UPDATE rate_buckets SET tokens = rate_buckets.tokens - got
                WHERE endpoint_id = ep;
            END IF;
        END IF;
        IF got < want OR retry_at IS NOT NULL THEN
            RETURN QUERY SELECT ep, NULL::BIGINT, NULL::TEXT, NULL::INTEGER, NULL::BYTEA,
                CASE WHEN retry_at IS NULL OR min(x.next_at) IS NULL THEN min(x.next_at)
                     ELSE greatest(min(x.next_at), retry_at) END
            FROM deliveries x WHERE x.state = 'pending' AND x.endpoint_id = ep;
        END IF;
    END LOOP;
END
$$;
