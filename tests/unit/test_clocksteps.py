"""Noticing a step of the wall clock, and what it moves, as tables (no database)."""

from __future__ import annotations

import pytest

from relay.delivery import clocksteps
from relay.types import ClockShift

NOW = 1_000_000.0
HOUR = 3600.0


@pytest.mark.parametrize(
    ("wall", "monotonic", "step"),
    [
        # Both clocks ran on together (the offset is 1,000 s): no step.
        (NOW + 60, 60.0, 0.0),
        # Drift within the threshold (NTP slewing, a slow read): no step.
        (NOW + 60.9, 60.0, 0.0),
        (NOW + 59.1, 60.0, 0.0),
        # An NTP correction back by an hour; a VM resumed after 6 days; just past 1 s.
        (NOW + 60 - HOUR, 60.0, -HOUR),
        (NOW + 60 + 6 * 24 * HOUR, 60.0, 6 * 24 * HOUR),
        (NOW + 61.5, 60.0, 1.5),
    ],
)
def test_detect(wall: float, monotonic: float, step: float) -> None:
    watch = clocksteps.StepWatch(clocksteps.offset(NOW, 0.0))
    assert watch.detect(wall, monotonic) == pytest.approx(step)
    # Taken in once: the next look compares with the new offset.
    assert watch.detect(wall + 5, monotonic + 5) == 0.0


def test_slow_drift_is_followed_not_summed_into_a_step() -> None:
    """Each look compares with the previous one: 0.4 s between looks is no step, however
    many add up (slewing); the same 1.2 s at once is one."""
    watch = clocksteps.StepWatch(0.0)
    assert [watch.detect(t + 0.4 * n, t) for n, t in enumerate((1.0, 2.0, 3.0, 4.0))] \
        == [0.0, 0.0, 0.0, 0.0]
    assert watch.detect(5.0 + 1.2 + 1.2, 5.0) == pytest.approx(1.2)


@pytest.mark.parametrize(
    ("step", "held", "shift"),
    [
        # Back: pending deliveries due after the new now move back by the step (to now at
        # the earliest); the leases held here and failing_since move with the clock.
        (-HOUR, {3, 1, 2}, ClockShift(step=-HOUR, now=NOW, due_after=NOW, leases=(1, 2, 3))),
        # Forward: no due time moves (what the step made overdue goes now); leases and
        # failing_since do, so the time across the step never counts as failing.
        (6 * 24 * HOUR, {7}, ClockShift(step=6 * 24 * HOUR, now=NOW, due_after=None,
                                        leases=(7,))),
        (2.0, set(), ClockShift(step=2.0, now=NOW, due_after=None, leases=())),
    ],
)
def test_plan(step: float, held: set[int], shift: ClockShift) -> None:
    assert clocksteps.plan(step, NOW, held) == shift
