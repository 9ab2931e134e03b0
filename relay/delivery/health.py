"""Endpoint health: whether an endpoint takes deliveries, and how attempts change that.
Pure: values and `now` in, the new health out; every store applies these functions, so
the rules are the same on each backend.

- An endpoint accepts deliveries while it is active (not disabled), not paused and not
  `enabled = false` in its config; its deliveries wait `pending` then, else `held`.
- Attempts are folded in order: a success resets the failure streak, a failure extends
  it (`failing_since` is the first failure after the last success).
- An active endpoint is disabled by a 410 Gone, or when its streak has lasted
  `disable_after` seconds and counts at least `DISABLE_MIN_FAILURES` failed attempts; its
  pending deliveries are then held. Elapsed time alone is not evidence: relay stopped
  for days must not disable, at its first attempt after the restart, an endpoint that
  had failed once. A clock step noticed while running (a VM suspended and resumed, NTP)
  moves `failing_since` by the step instead (clocksteps.py), whatever the streak.
- An operator re-enabling an endpoint forgets the streak, so `disable_after` counts from
  scratch; disabling it through the API records why, unless it already was.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from relay.types import AttemptResult, EndpointRow, State

GONE = "the endpoint answered 410 Gone"
DISABLE_MIN_FAILURES = 3  # failed attempts in a streak before disable_after may disable
DISABLED_BY_API = "disabled through the API"


def accepting(row: EndpointRow) -> bool:
    """Whether new, retried and released deliveries to this endpoint may be sent."""
    return row.is_active and not row.is_paused and row.spec.enabled


def waiting_state(accepting: bool) -> State:
    """The state a delivery waits in: `pending` (claimable) or `held` (kept for later)."""
    return "pending" if accepting else "held"


@dataclass(frozen=True, slots=True)
class Health:
    """The stored health of one endpoint (the endpoints table's columns of these names)."""

    is_active: bool = True
    disable_reason: str | None = None
    consecutive_failures: int = 0
    failing_since: float | None = None  # first failure since the last success
    last_delivery_at: float | None = None
    last_delivery_status: int | None = None


@dataclass(frozen=True, slots=True)
class Change:
    health: Health
    disabled: str | None = None  # why these attempts disabled the endpoint; None: they did not


def after_attempts(before: Health, attempts: Sequence[AttemptResult], now: float,
                   disable_after: float) -> Change:
    """The endpoint's health once `attempts` (its own, oldest first) are recorded at `now`."""
    failures, since = before.consecutive_failures, before.failing_since
    gone = False
    for attempt in attempts:
        if attempt.success:
            failures, since = 0, None
        else:
            failures += 1
            since = attempt.started_at if since is None else since
        gone = gone or attempt.gone
    last = attempts[-1] if attempts else None
    health = replace(
        before, consecutive_failures=failures, failing_since=since,
        last_delivery_at=before.last_delivery_at if last is None else last.started_at,
        last_delivery_status=before.last_delivery_status if last is None else last.status,
    )
    if not before.is_active:
        return Change(health)
    reason = None
    if gone:
        reason = GONE
    elif attempts and since is not None and since <= now - disable_after \
            and failures >= DISABLE_MIN_FAILURES:
        reason = (f"failing without a success for {round((now - since) / 3600, 1)}h "
                  "(delivery.disable_after)")
    if reason is None:
        return Change(health)
    return Change(replace(health, is_active=False, disable_reason=reason), reason)


def set_active(active: bool, *, was_active: bool) -> dict[str, Any]:
    """The endpoint columns an operator's `is_active` writes (through the API)."""
    if active:
        return {"is_active": True, "disable_reason": None, "failing_since": None,
                "consecutive_failures": 0}
    if was_active:
        return {"is_active": False, "disable_reason": DISABLED_BY_API}
    return {}  # already disabled: keep the reason it was disabled for
