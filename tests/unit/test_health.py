"""The endpoint-health rule as tables: attempts in, health and disabling out, `now` given."""

from __future__ import annotations

from typing import Any

import pytest

from relay.delivery import health
from relay.delivery.health import Change, Health
from relay.types import AttemptResult, EndpointRow, EndpointSpec
from tests.helpers import result

NOW = 1_000_000.0
HOUR = 3600.0
DAY = 86_400.0


def attempt(at: float, status: int | None = 500) -> AttemptResult:
    """An attempt started `at` seconds from NOW (negative: before) that got `status`."""
    ok = status is not None and 200 <= status < 300
    return result(1, "e", 1, "succeeded" if ok else "pending", ok=ok, status=status,
                  gone=status == 410, started_at=NOW + at)


@pytest.mark.parametrize(
    ("before", "attempts", "now", "after", "disabled"),
    [
        # A first failure starts the streak at its start time.
        (Health(), [attempt(-5)], NOW,
         Health(consecutive_failures=1, failing_since=NOW - 5,
                last_delivery_at=NOW - 5, last_delivery_status=500), None),
        # Failures extend a streak; failing_since stays its first failure.
        (Health(consecutive_failures=2, failing_since=NOW - HOUR), [attempt(-2), attempt(-1, None)],
         NOW, Health(consecutive_failures=4, failing_since=NOW - HOUR,
                     last_delivery_at=NOW - 1, last_delivery_status=None), None),
        # A success resets the streak...
        (Health(consecutive_failures=7, failing_since=NOW - HOUR), [attempt(-1, 204)], NOW,
         Health(last_delivery_at=NOW - 1, last_delivery_status=204), None),
        # ...and a failure after it, in the same batch, starts a new one.
        (Health(consecutive_failures=7, failing_since=NOW - DAY),
         [attempt(-3), attempt(-2, 200), attempt(-1, 503)], NOW,
         Health(consecutive_failures=1, failing_since=NOW - 1, last_delivery_at=NOW - 1,
                last_delivery_status=503), None),
        # Failing for disable_after (1 day here) without a success disables, with the hours.
        (Health(consecutive_failures=9, failing_since=NOW - DAY), [attempt(-1)], NOW,
         Health(is_active=False, disable_reason=(
             "failing without a success for 24.0h (delivery.disable_after)"),
             consecutive_failures=10, failing_since=NOW - DAY, last_delivery_at=NOW - 1,
             last_delivery_status=500),
         "failing without a success for 24.0h (delivery.disable_after)"),
        # Just short of it: still active.
        (Health(consecutive_failures=9, failing_since=NOW - DAY + 1), [attempt(-1)], NOW,
         Health(consecutive_failures=10, failing_since=NOW - DAY + 1,
                last_delivery_at=NOW - 1, last_delivery_status=500), None),
        # A success at the end of a long streak keeps it active.
        (Health(consecutive_failures=9, failing_since=NOW - 2 * DAY),
         [attempt(-2), attempt(-1, 200)], NOW,
         Health(last_delivery_at=NOW - 1, last_delivery_status=200), None),
        # 410 Gone disables at once, and counts as a failure.
        (Health(), [attempt(-1, 410)], NOW,
         Health(is_active=False, disable_reason=health.GONE, consecutive_failures=1,
                failing_since=NOW - 1, last_delivery_at=NOW - 1, last_delivery_status=410),
         health.GONE),
        # Even when a success follows it in the same batch.
        (Health(), [attempt(-2, 410), attempt(-1, 200)], NOW,
         Health(is_active=False, disable_reason=health.GONE, last_delivery_at=NOW - 1,
                last_delivery_status=200), health.GONE),
        # An endpoint already disabled keeps its reason; attempts still count.
        (Health(is_active=False, disable_reason="disabled through the API"),
         [attempt(-1, 410)], NOW,
         Health(is_active=False, disable_reason="disabled through the API",
                consecutive_failures=1, failing_since=NOW - 1, last_delivery_at=NOW - 1,
                last_delivery_status=410), None),
        # Fewer than DISABLE_MIN_FAILURES failed attempts never disable, however long ago
        # the first one was (a clock jump, a VM suspended, relay stopped for days)...
        (Health(consecutive_failures=1, failing_since=NOW - 6 * DAY), [attempt(-1)], NOW,
         Health(consecutive_failures=2, failing_since=NOW - 6 * DAY,
                last_delivery_at=NOW - 1, last_delivery_status=500), None),
        (Health(), [attempt(-6 * DAY), attempt(-1)], NOW,
         Health(consecutive_failures=2, failing_since=NOW - 6 * DAY,
                last_delivery_at=NOW - 1, last_delivery_status=500), None),
        # ...the third does.
        (Health(consecutive_failures=2, failing_since=NOW - 6 * DAY), [attempt(-1)], NOW,
         Health(is_active=False, disable_reason=(
             "failing without a success for 144.0h (delivery.disable_after)"),
             consecutive_failures=3, failing_since=NOW - 6 * DAY, last_delivery_at=NOW - 1,
             last_delivery_status=500),
         "failing without a success for 144.0h (delivery.disable_after)"),
        # No attempts: nothing changes, even past disable_after.
        (Health(consecutive_failures=3, failing_since=NOW - 2 * DAY), [], NOW,
         Health(consecutive_failures=3, failing_since=NOW - 2 * DAY), None),
    ],
)
def test_after_attempts(before: Health, attempts: list[AttemptResult], now: float, after: Health,
                        disabled: str | None) -> None:
    assert health.after_attempts(before, attempts, now, DAY) == Change(after, disabled)


@pytest.mark.parametrize(
    ("active", "was_active", "changes"),
    [
        # Re-enabling forgets the streak, so disable_after counts from scratch.
        (True, False, {"is_active": True, "disable_reason": None, "failing_since": None,
                       "consecutive_failures": 0}),
        (True, True, {"is_active": True, "disable_reason": None, "failing_since": None,
                      "consecutive_failures": 0}),
        (False, True, {"is_active": False, "disable_reason": "disabled through the API"}),
        (False, False, {}),  # already disabled (say by a 410): keep that reason
    ],
)
def test_set_active(active: bool, was_active: bool, changes: dict[str, Any]) -> None:
    assert health.set_active(active, was_active=was_active) == changes


def row(**flags: Any) -> EndpointRow:
    spec = EndpointSpec(url="https://e.example/", **flags.pop("spec", {}))
    fields: dict[str, Any] = {
        "id": "e", "tenant": "default", "source": "config", "name": "e", "spec": spec,
        "secret": "s", "prev_secret": None, "prev_secret_until": None, "is_active": True,
        "is_paused": False, "disable_reason": None, "created_at": NOW,
        "last_delivery_at": None, "last_delivery_status": None, "consecutive_failures": 0,
        "failing_since": None,
    }
    return EndpointRow(**{**fields, **flags})


@pytest.mark.parametrize(
    ("endpoint", "accepting", "state"),
    [
        (row(), True, "pending"),
        (row(spec={"enabled": True}), True, "pending"),
        (row(is_active=False), False, "held"),
        (row(is_paused=True), False, "held"),
        (row(spec={"enabled": False}), False, "held"),
        (row(is_active=False, is_paused=True, spec={"enabled": False}), False, "held"),
    ],
)
def test_accepting_and_the_state_deliveries_wait_in(endpoint: EndpointRow, accepting: bool,
                                                    state: str) -> None:
    assert health.accepting(endpoint) is accepting
    assert health.waiting_state(health.accepting(endpoint)) == state
