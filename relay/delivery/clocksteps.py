"""Wall-clock steps: noticing one, and what it moves in the queue. Pure.

Stored times (due times, leases, `failing_since`) are wall-clock times, as they must be
to mean anything to another process or after a restart; waits run on the monotonic
clock. The offset wall - monotonic is constant while both clocks run; a change of more
than `THRESHOLD` between two looks is a step of the wall clock (an NTP correction, a VM
resumed after a suspend, an operator's `date -s`): `detect` gives its size.

What a step of `step` seconds (negative: back) found at wall time `now` moves (`plan`):

- back: pending deliveries due after `now` move back by the step, to `now` at the
  earliest, so a retry due in 10 s is still due in 10 s, and one that was due already
  (up to the step's size ahead of the new clock) is due now, not in an hour. Forward:
  none move; the work the step made overdue is claimed at once (the scheduler rescans).
- either way: the leases this process holds move with the clock (their remaining time
  is kept: one written just before the step neither expires at once nor lasts an hour
  longer), and so does every failing endpoint's `failing_since`, so the time across a
  step never counts towards `delivery.disable_after` (a VM suspended for days does not
  make a brief failure days long; health.py also asks for a few failed attempts).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from relay.types import ClockShift

THRESHOLD = 1.0  # seconds the offset may drift before it counts as a step
CHECK_EVERY = 1.0  # seconds between looks while nothing else wakes the scheduler


def offset(wall: float, monotonic: float) -> float:
    return wall - monotonic


@dataclass(slots=True)
class StepWatch:
    """The offset at the last look; `detect` compares the clocks' readings with it."""

    offset: float

    def detect(self, wall: float, monotonic: float) -> float:
        """The wall clock's step since the last look (0.0: none beyond the threshold).
        Each look starts from the offset just seen, so a step is reported once, and slow
        drift (NTP slewing, at most 0.5 ms/s) is followed and never adds up to a step."""
        now = offset(wall, monotonic)
        step, self.offset = now - self.offset, now
        return step if abs(step) > THRESHOLD else 0.0


def plan(step: float, now: float, held: Collection[int]) -> ClockShift:
    """What a step of `step` seconds, noticed at wall time `now` (after it), moves; `held`
    are the deliveries this process has claimed and not yet recorded."""
    return ClockShift(
        step=step, now=now,
        due_after=now if step < 0 else None,
        leases=tuple(sorted(held)),
    )
