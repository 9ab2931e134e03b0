"""The operations every surface calls (the JSON API, the console, Svix's API), each rule
written once: `webhooks` (webhooks, deliveries, events, event types of one tenant),
`tenants` and `keys` (the directory's, for admins)."""

from relay.operations.webhooks import (
    WEBHOOK_STATES,
    Operations,
    WebhookState,
    delivery_number,
    list_webhooks,
    portal_link,
    reads_of,
    webhook_state,
)

__all__ = [
    "WEBHOOK_STATES",
    "Operations",
    "WebhookState",
    "delivery_number",
    "list_webhooks",
    "portal_link",
    "reads_of",
    "webhook_state",
]
