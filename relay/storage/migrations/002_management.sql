-- relay schema 2: indexes for the management API's lists.

-- GET /v1/events without a type filter: a tenant's events, newest first.
CREATE INDEX events_tenant ON events (tenant, seq);
-- POST /v1/webhooks/{id}/recover and ?status=failed: failed deliveries of an endpoint.
CREATE INDEX deliveries_failed ON deliveries (endpoint_id, updated_at) WHERE state = 'failed';
