"""The tenant-scoped operations every surface calls (the JSON API, the console), each rule
written once: `webhooks` (webhooks, deliveries, events, event types of one tenant)."""

from relay.operations.webhooks import (
    WEBHOOK_STATES,
    Operations,
    WebhookState,
    delivery_number,
    list_webhooks,
    reads_of,
    webhook_state,
)

__all__ = [
    "WEBHOOK_STATES",
    "Operations",
    "WebhookState",
    "delivery_number",
    "list_webhooks",
    "reads_of",
    "webhook_state",
]
