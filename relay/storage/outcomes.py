"""What recording attempts changes beyond the deliveries, decided once for both backends.

`record` on either backend reads the attempted endpoints' health (`HEALTH_COLS`), `fold`s
the attempts into it and writes the health it returns (holding the pending deliveries of
the endpoints it disabled); with `Reporting`, it reads the events of the deliveries
`lookups` names and stores the operational events that `notices` become, in the same transaction.
relay.delivery.health and relay.delivery.operational make the decisions; this module joins
them to the rows, so that both backends call them alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from relay.delivery import health, operational
from relay.types import AttemptResult, NewEvent, Notice, Recorded, Reporting, Row

# The endpoint columns `fold` reads, in this order.
HEALTH_COLS = ("id, is_active, disable_reason, consecutive_failures, failing_since, "
               "last_delivery_at, last_delivery_status, tenant")

Attempted = dict[str, list[AttemptResult]]  # endpoint id -> its attempts, oldest first
# One Store.record call's arguments: results, now, disable_after, reporting.
RecordCall = tuple[list[AttemptResult], float, float, Reporting | None]


def merged(calls: Sequence[RecordCall]) -> RecordCall:
    """Record calls committed together, as one: every result, the latest `now`, and the
    last call's `disable_after` and `reporting` (the config of the latest reload)."""
    return ([r for results, _, _, _ in calls for r in results], max(c[1] for c in calls),
            calls[-1][2], calls[-1][3])


def by_endpoint(results: Iterable[AttemptResult]) -> Attempted:
    attempted: Attempted = {}
    for r in results:
        attempted.setdefault(r.endpoint_id, []).append(r)
    return attempted


@dataclass(frozen=True, slots=True)
class Fold:
    """The endpoints' health once the attempts are recorded."""

    health: list[tuple[str, health.Health]]  # (endpoint id, health to write), as read
    disabled: dict[str, str]  # endpoint id -> why these attempts disabled it
    streaks: dict[str, tuple[str, int]]  # endpoint id -> (tenant, streak before them)


def fold(rows: Iterable[Row], attempted: Attempted, now: float,
         disable_after: float) -> Fold:
    """The health `attempted` leaves the endpoints read as `rows` (of HEALTH_COLS); an
    endpoint without a row (deleted meanwhile) is left alone."""
    after: list[tuple[str, health.Health]] = []
    disabled: dict[str, str] = {}
    streaks: dict[str, tuple[str, int]] = {}
    for row in rows:
        before = health.Health(
            is_active=bool(row[1]), disable_reason=row[2], consecutive_failures=row[3],
            failing_since=row[4], last_delivery_at=row[5], last_delivery_status=row[6],
        )
        change = health.after_attempts(before, attempted[row[0]], now, disable_after)
        after.append((row[0], change.health))
        streaks[row[0]] = (row[7], row[3])
        if change.disabled is not None:
            disabled[row[0]] = change.disabled
    return Fold(after, disabled, streaks)


def lookups(reporting: Reporting, attempted: Attempted, folded: Fold) -> list[int]:
    """The deliveries whose events `notices` needs (none for the usual outcome)."""
    return [delivery_id for eid, attempts in attempted.items() if eid in folded.streaks
            for delivery_id in operational.lookups(
                folded.streaks[eid][1], attempts, failing_after=reporting.failing_after,
                disabled=folded.disabled.get(eid))]


def notices(reporting: Reporting, attempted: Attempted, folded: Fold,
            events: Mapping[int, tuple[str, str]]) -> list[Notice]:
    """The operational notices these outcomes cause, given `events`: delivery id ->
    (event id, event type) for the deliveries `lookups` named."""
    out: list[Notice] = []
    for eid, attempts in attempted.items():
        if eid not in folded.streaks:  # deleted meanwhile
            continue
        tenant, streak = folded.streaks[eid]
        reason = folded.disabled.get(eid)
        out += operational.from_attempts(
            eid, tenant, streak, attempts, failing_after=reporting.failing_after,
            disabled=reason, disabled_code=disable_code(reason),
            event_of=lambda delivery_id: events.get(delivery_id, ("", "")),
        )
    return out


def disable_code(reason: str | None) -> str | None:
    """The `reason` a relay.endpoint.disabled event gives for health's disable reason."""
    if reason is None:
        return None
    return operational.GONE if reason == health.GONE else operational.DISABLE_AFTER


def reported(reporting: Reporting, attempted: Attempted, folded: Fold,
             events: Mapping[int, tuple[str, str]], now: float
             ) -> tuple[list[NewEvent], Recorded]:
    """The operational events to store for the `notices` these outcomes cause (none when
    no endpoint subscribes: `reporting.build` matches them), and what record answers."""
    caused = notices(reporting, attempted, folded, events)
    new = reporting.build(caused, now) if caused else []
    return new, Recorded(folded.disabled, tuple(caused), due(new))


def due(new: Iterable[NewEvent]) -> frozenset[str]:
    """The endpoints given pending deliveries by these (operational) events."""
    return frozenset(e for ev in new for e, state in ev.deliveries if state == "pending")
