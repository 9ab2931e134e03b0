"""relay's answers as Svix's: ids, names, status numbers, times and integers.

relay keeps its own ids (tenant id, `ep_...`, `evt_...`, `atmpt_<n>`): Svix's models
type every id as a plain string, and one object then has one id everywhere.
"""

from __future__ import annotations

import json

from relay.api.svix.models import (
    ApplicationOut,
    AttemptOut,
    EndpointOut,
    EventTypeOut,
    MessageOut,
)
from relay.directory import EventType, Tenant
from relay.errors import NotFound
from relay.models import Webhook
from relay.runtime import timestamp
from relay.types import EventRow, ListedAttempt

# Svix's attempt statuses: success, pending, fail, sending, canceled.
STATUS_TEXT = {0: "success", 1: "pending", 2: "fail", 3: "sending", 4: "canceled"}
ATTEMPT_PREFIX = "atmpt_"


def application_out(tenant: Tenant) -> ApplicationOut:
    return ApplicationOut(id=tenant.id, uid=tenant.uid, name=tenant.name,
                          metadata=dict(tenant.metadata), throttle_rate=tenant.throttle_rate,
                          created_at=timestamp(tenant.created_at),
                          updated_at=timestamp(tenant.updated_at))


def event_type_out(event_type: EventType, with_content: bool = True) -> EventTypeOut:
    """`schemas` is Svix's versioned map: relay's one schema is version "1". A config
    type's times are when this process first loaded it (the file has none)."""
    schema = event_type.schema
    return EventTypeOut(
        name=event_type.name, description=event_type.description,
        deprecated=event_type.deprecated, archived=event_type.archived,
        schemas={"1": schema} if with_content and schema is not None else None,
        created_at=timestamp(event_type.created_at),
        updated_at=timestamp(event_type.updated_at))


def endpoint_out(webhook: Webhook) -> EndpointOut:
    """`eventTypes` null for an endpoint of every type (`*`); relay's patterns (`lead.*`)
    show as names. `throttleRate` is Svix's integer; `disabled` is relay's not active."""
    rate = webhook.rate_limit
    return EndpointOut(
        id=webhook.id, uid=webhook.uid, url=webhook.url, description=webhook.name,
        metadata=webhook.metadata, throttle_rate=None if rate is None else max(1, round(rate)),
        disabled=not webhook.is_active,
        event_types=None if webhook.events == ["*"] else webhook.events,
        channels=webhook.channels, created_at=webhook.created_at,
        updated_at=webhook.updated_at)


def message_out(event: EventRow, with_content: bool) -> MessageOut:
    """An event as Svix's message: `payload` is its data (`{}` without content)."""
    data = json.loads(event.payload)["data"] if with_content else {}
    return MessageOut(id=event.id, event_type=event.type, payload=data,
                      event_id=event.idem_key,
                      channels=None if event.channels is None else list(event.channels),
                      timestamp=timestamp(event.created_at))


def attempt_status(attempt: ListedAttempt) -> int:
    """Svix's status of a finished attempt: 0 success (2xx), 2 fail."""
    ok = attempt.status is not None and 200 <= attempt.status < 300
    return 0 if ok else 2


def attempt_out(attempt: ListedAttempt, url: str, with_content: bool) -> AttemptOut:
    """A relay attempt as Svix's: the response (or the error, when none came) as text,
    status code 0 when no response came; `triggerType` 1 for a replay's."""
    status = attempt_status(attempt)
    response = (attempt.response_body.decode("utf-8", errors="replace")
                if attempt.status is not None else attempt.error or "")
    return AttemptOut(
        id=f"{ATTEMPT_PREFIX}{attempt.id}", msg_id=attempt.event_id,
        endpoint_id=attempt.endpoint_id, url=url,
        response=response if with_content else "{}",
        response_status_code=attempt.status or 0,
        response_duration_ms=round(attempt.duration_ms or 0), status=status,
        status_text=STATUS_TEXT[status], trigger_type=1 if attempt.manual else 0,
        timestamp=timestamp(attempt.started_at))


def attempt_number(ref: str) -> int:
    """`atmpt_<n>` -> n; anything else is a 404, as an unknown one."""
    number = ref.removeprefix(ATTEMPT_PREFIX)
    if ref.startswith(ATTEMPT_PREFIX) and number.isascii() and number.isdigit() \
            and len(number) < 19:
        return int(number)
    raise NotFound(f"no attempt {ref!r}")
