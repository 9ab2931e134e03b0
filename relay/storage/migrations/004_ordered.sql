-- relay schema 4: ordered (fifo) endpoints.

-- The head of an ordered endpoint: its unfinished delivery with the lowest id. The claim
-- reads only this index's first entry per endpoint, however long the backlog or history.
CREATE INDEX deliveries_unfinished ON deliveries (endpoint_id, id)
    WHERE state IN ('pending', 'delivering');
