"""What recording attempts does to endpoints (relay.storage.outcomes) as tables: the
rows both backends read, the health and notices they are told to write."""

from __future__ import annotations

from typing import Any

import pytest

from relay.delivery import health, operational
from relay.storage import outcomes
from relay.types import AttemptResult, NewEvent, Reporting, State

NOW = 1_700_000_000.0
DAY = 86_400.0


def attempt(delivery_id: int, endpoint: str, code: str) -> AttemptResult:
    """`ok`, `fail` (retried), `last` (failed: retries used up) or `gone` (410)."""
    state: State = {"ok": "succeeded", "fail": "pending", "last": "failed",
                    "gone": "failed"}[code]  # type: ignore[assignment]
    return AttemptResult(
        delivery_id=delivery_id, endpoint_id=endpoint, attempt=1, started_at=NOW,
        duration_ms=1.0, request_headers={}, status={"ok": 200, "gone": 410}.get(code, 500),
        response_headers={}, response_body=b"", error=None if code == "ok" else "boom",
        state=state, next_at=None, success=code == "ok", gone=code == "gone")


def row(endpoint: str, failures: int = 0, since: float | None = None,
        active: Any = 1) -> tuple[Any, ...]:
    """A HEALTH_COLS row as a backend reads it (SQLite gives is_active as 0/1)."""
    return (endpoint, active, None, failures, since, None, None, f"tenant-{endpoint}")


REPORTING = Reporting(failing_after=3, build=lambda notices, now: [])


@pytest.mark.parametrize(
    ("rows", "codes", "failures", "disabled", "notices"),
    [
        # a success: streak reset, no notice
        ([row("a")], ["ok"], {"a": 0}, {}, []),
        # the 3rd failure in a row crosses failing_after
        ([row("a", 2, NOW - 10)], ["fail"], {"a": 3}, {}, [operational.FAILING]),
        # a success after a reported streak: recovered
        ([row("a", 5, NOW - 10)], ["ok"], {"a": 0}, {}, [operational.RECOVERED]),
        # 410 disables at once, with the code `gone`
        ([row("a")], ["gone"], {"a": 1}, {"a": health.GONE},
         [operational.EXHAUSTED, operational.DISABLED]),
        # failing for longer than disable_after, with enough failures: disabled
        ([row("a", 5, NOW - 2 * DAY)], ["fail"], {"a": 6},
         {"a": "failing without a success for 48.0h (delivery.disable_after)"},
         [operational.DISABLED]),
        # an endpoint deleted meanwhile has no row: left alone, no notice
        ([], ["fail"], {}, {}, []),
        # two endpoints, each folded on its own
        ([row("a"), row("b", 2, NOW - 10)], ["ok", "fail"], {"a": 0, "b": 3}, {},
         [operational.FAILING]),
    ],
)
def test_fold_and_notices(rows: list[tuple[Any, ...]], codes: list[str],
                          failures: dict[str, int], disabled: dict[str, str],
                          notices: list[str]) -> None:
    endpoints = ["a", "b"]
    attempted = outcomes.by_endpoint(
        attempt(n, endpoints[n % 2] if len(codes) > 1 else "a", code)
        for n, code in enumerate(codes))
    folded = outcomes.fold(rows, attempted, NOW, DAY)
    assert {eid: h.consecutive_failures for eid, h in folded.health} == failures
    assert folded.disabled == disabled
    assert folded.streaks == {r[0]: (r[7], r[3]) for r in rows}
    events = {d: (f"evt_{d}", "order.paid")
              for d in outcomes.lookups(REPORTING, attempted, folded)}
    made = outcomes.notices(REPORTING, attempted, folded, events)
    assert [n.type for n in made] == notices
    assert all(n.tenant == f"tenant-{n.endpoint_id}" for n in made)


def test_a_sqlite_flag_is_read_as_a_bool() -> None:
    folded = outcomes.fold([row("a", active=1)], outcomes.by_endpoint([attempt(1, "a", "ok")]),
                           NOW, DAY)
    assert folded.health[0][1].is_active is True


@pytest.mark.parametrize(
    ("reason", "code"),
    [(None, None), (health.GONE, operational.GONE),
     ("failing for 2 days", operational.DISABLE_AFTER)],
)
def test_the_code_a_disabled_event_gives(reason: str | None, code: str | None) -> None:
    assert outcomes.disable_code(reason) == code


def test_the_endpoints_operational_events_make_due() -> None:
    def ev(*deliveries: tuple[str, State]) -> NewEvent:
        return NewEvent("e", "t", "relay.endpoint.failing", None, "d", NOW, b"{}", deliveries)
    assert outcomes.due([ev(("a", "pending"), ("b", "held")), ev(("c", "pending"))]) \
        == {"a", "c"}
    assert outcomes.due([]) == frozenset()


def test_record_calls_committed_together_merge() -> None:
    """Every result in order, the latest `now`, the last call's disable_after and
    reporting (a reload between two calls: the newer config)."""
    newer = Reporting(failing_after=5, build=lambda notices, now: [])
    one, two, three = (attempt(n, "a", "fail") for n in (1, 2, 3))
    assert outcomes.merged([([one, two], NOW + 1, DAY, REPORTING), ([three], NOW, 2 * DAY,
                                                                     newer)]) \
        == ([one, two, three], NOW + 1, 2 * DAY, newer)


@pytest.mark.parametrize(
    ("subscribed", "stored", "due"),
    [
        # An endpoint subscribes: the event is stored and its pending delivery made due.
        (True, ["relay.endpoint.failing"], {"ops"}),
        # None does: the notice is still answered, nothing is stored.
        (False, [], set()),
    ],
)
def test_what_record_reports(subscribed: bool, stored: list[str], due: set[str]) -> None:
    def build(notices: list[Any], now: float) -> list[NewEvent]:
        return [NewEvent("e", n.tenant, n.type, None, "d", now, b"{}", (("ops", "pending"),))
                for n in notices] if subscribed else []

    attempted = outcomes.by_endpoint([attempt(1, "a", "fail")])
    folded = outcomes.fold([row("a", 2, NOW - 10)], attempted, NOW, DAY)
    new, recorded = outcomes.reported(
        Reporting(failing_after=3, build=build), attempted, folded, {1: ("evt_1", "x")}, NOW)
    assert [e.type for e in new] == stored
    assert [n.type for n in recorded.notices] == [operational.FAILING]
    assert recorded.due == due and recorded.disabled == {}
