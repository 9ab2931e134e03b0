-- relay PostgreSQL schema 4: the head of an ordered (fifo) endpoint, its unfinished
-- delivery with the lowest id, read from this index's first entry per endpoint, as on
-- SQLite (its migration 004). Without it the planner walked the primary key through the
-- whole history: 423 ms per claim with 1M finished deliveries, under the endpoint's
-- claim lock (0.05 ms with it).
CREATE INDEX deliveries_unfinished ON deliveries (endpoint_id, id)
    WHERE state IN ('pending', 'delivering');
