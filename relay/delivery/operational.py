"""Operational events: what relay reports about itself, and when. Pure.

relay emits `relay.*` events through its own pipeline, in the tenant of the endpoint
concerned, so they are stored, signed, retried and replayable like any other event. Only
patterns that name them (`relay.*`, the exact type) match them; `*` does not
(matching.py).

When, per endpoint, folding its attempts oldest first (`from_attempts`):
- `relay.endpoint.failing`: the attempt that makes the failure streak `failing_after`
  long. The streak only grows until a success, so this is once per streak however the
  endpoint flaps.
- `relay.endpoint.recovered`: a success ending a streak that had reached `failing_after`.
- `relay.delivery.exhausted`: an attempt after which its delivery is `failed`.
- `relay.endpoint.disabled`: the attempts disabled the endpoint (410, `disable_after`).
No loops: an attempt at delivering an operational event never causes one. It still counts
in the endpoint's health (a dead endpoint of operational events is disabled like any
other); it only reports nothing, so a streak made `failing_after` long by such an attempt reports no
`failing`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from relay.ids import delivery_ref
from relay.types import AttemptResult, Notice

PREFIX = "relay."
DISABLED = "relay.endpoint.disabled"
FAILING = "relay.endpoint.failing"
RECOVERED = "relay.endpoint.recovered"
EXHAUSTED = "relay.delivery.exhausted"
CREATED = "relay.endpoint.created"
UPDATED = "relay.endpoint.updated"
DELETED = "relay.endpoint.deleted"

# `reason` of relay.endpoint.disabled
GONE, DISABLE_AFTER, API = "gone", "disable_after", "api"

_ENDPOINT = {"id": "ep_01JRZ8Y6X1T6M3K9Q4W2B7C5DA", "name": "crm",
             "url": "https://crm.example.com/hooks"}

# name -> (description, sample data): GET /v1/event-types lists them after the declared ones.
TYPES: dict[str, tuple[str, dict[str, Any]]] = {
    DISABLED: (
        "An endpoint stopped receiving deliveries (held until it is re-enabled). reason: "
        "gone (it answered 410), disable_after (failing without a success that long) or "
        "api (disabled through the API or console); detail says it in words.",
        {"endpoint": _ENDPOINT, "reason": "gone", "detail": "the endpoint answered 410 Gone"},
    ),
    FAILING: (
        "An endpoint's attempts failed failing_after times in a row ([operator]); once per "
        "failure streak.",
        {"endpoint": _ENDPOINT, "consecutive_failures": 5, "last_status": 503,
         "last_error": "HTTP 503"},
    ),
    RECOVERED: (
        "The first success of an endpoint reported failing.",
        {"endpoint": _ENDPOINT, "failed_attempts": 7},
    ),
    EXHAUSTED: (
        "A delivery used up its retries and is failed (it can be retried or recovered).",
        {"endpoint": _ENDPOINT, "delivery_id": "dlv_4812",
         "event_id": "evt_01JRZ8Y6X1T6M3K9Q4W2B7C5DB", "event_type": "lead.qualified",
         "attempts": 9, "last_status": 500, "last_error": "HTTP 500"},
    ),
    CREATED: (
        "An endpoint was created through the API or console.",
        {"endpoint": {**_ENDPOINT, "events": ["lead.*"]}},
    ),
    UPDATED: (
        "An endpoint was changed through the API or console; changed names the fields.",
        {"endpoint": {**_ENDPOINT, "events": ["lead.*"]}, "changed": ["url"]},
    ),
    DELETED: (
        "An endpoint was deleted through the API or console; its pending deliveries were "
        "cancelled.",
        {"endpoint": {**_ENDPOINT, "events": ["lead.*"]}, "cancelled": 3},
    ),
}


def is_operational(event_type: str) -> bool:
    return event_type.startswith(PREFIX)


def _reporting(failures_before: int, attempts: Sequence[AttemptResult], failing_after: int
               ) -> Iterator[tuple[AttemptResult, int, int, bool, bool]]:
    """The attempts that may cause a notice, each with the streak before and after it,
    whether it crossed `failing_after` and whether it ended a reported streak."""
    streak = failures_before
    for attempt in attempts:
        before = streak
        streak = 0 if attempt.success else streak + 1
        crossed = not attempt.success and streak == failing_after
        ended = attempt.success and before >= failing_after
        if crossed or ended or attempt.state == "failed":
            yield attempt, before, streak, crossed, ended


def lookups(failures_before: int, attempts: Sequence[AttemptResult], *, failing_after: int,
            disabled: str | None) -> list[int]:
    """The deliveries `from_attempts` may ask `event_of` about, for a caller that fetches
    them beforehand (PostgreSQL: one query, and none for the usual outcome)."""
    if disabled is not None:
        return [a.delivery_id for a in attempts]
    return [a.delivery_id for a, *_ in _reporting(failures_before, attempts, failing_after)]


def from_attempts(
    endpoint_id: str, tenant: str, failures_before: int, attempts: Sequence[AttemptResult],
    *, failing_after: int, disabled: str | None, disabled_code: str | None,
    event_of: Callable[[int], tuple[str, str]],
) -> list[Notice]:
    """The notices one endpoint's recorded attempts (oldest first) cause.

    `failures_before`: its streak before them; `disabled`: why they disabled it (None:
    they did not), `disabled_code` the `reason` for that; `event_of(delivery_id)` ->
    (event id, event type) of a delivery (called only for the attempts `lookups` names)."""
    out: list[Notice] = []

    def notice(kind: str, **data: Any) -> None:
        out.append(Notice(kind, endpoint_id, tenant, data))

    for attempt, before, streak, crossed, ended in _reporting(
            failures_before, attempts, failing_after):
        event_id, event_type = event_of(attempt.delivery_id)
        if is_operational(event_type):
            continue
        if crossed:
            notice(FAILING, consecutive_failures=streak, last_status=attempt.status,
                   last_error=attempt.error)
        if ended:
            notice(RECOVERED, failed_attempts=before)
        if attempt.state == "failed":
            notice(EXHAUSTED, delivery_id=delivery_ref(attempt.delivery_id),
                   event_id=event_id, event_type=event_type, attempts=attempt.attempt,
                   last_status=attempt.status, last_error=attempt.error)
    if disabled is not None and not all(
            is_operational(event_of(a.delivery_id)[1]) for a in attempts):
        notice(DISABLED, reason=disabled_code, detail=disabled)
    return out
