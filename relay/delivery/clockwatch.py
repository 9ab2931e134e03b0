"""The scheduler's clocks: its sleep, the wall clock watched for steps against the
monotonic one (clocksteps.py says how), and a step taken in, by moving the stored times
it affects."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection

from relay.delivery import clocksteps
from relay.errors import RelayError
from relay.logs import log
from relay.storage.base import Queue


class ClockWatch:
    """Steps noticed add up in `pending` until `take_in` has moved the stored times."""

    def __init__(self, store: Queue, clock: Callable[[], float],
                 monotonic: Callable[[], float]) -> None:
        self._store = store
        self._clock = clock
        self._monotonic = monotonic
        self._steps = clocksteps.StepWatch(clocksteps.offset(clock(), monotonic()))
        self.pending = 0.0  # a step of the wall clock noticed and not yet taken in

    def noticed_step(self) -> bool:
        """Whether the wall clock stepped since the last look (added to `pending`)."""
        step = self._steps.detect(self._clock(), self._monotonic())
        self.pending += step
        return step != 0.0

    async def sleep(self, until: float | None, wake: asyncio.Event) -> None:
        """Wait for `wake`, or until `until` by the wall clock (None: only `wake`),
        looking at the clocks every `CHECK_EVERY` s: a step of the wall clock ends the
        wait. The wait itself runs on the loop's monotonic clock, its length taken from
        the wall clock once."""
        loop = asyncio.get_running_loop()
        deadline = None if until is None else loop.time() + max(0.0, until - self._clock())
        while not self.noticed_step():
            left = clocksteps.CHECK_EVERY if deadline is None \
                else min(clocksteps.CHECK_EVERY, deadline - loop.time())
            if left <= 0:
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await wake.wait()
            if wake.is_set():
                return

    async def take_in(self, held: Collection[int]) -> bool:
        """Move the stored times the pending step affects (`held`: the leases this
        process holds) in one store operation. False: the store failed, the step stays
        pending."""
        step, now = self.pending, self._clock()
        try:
            moved = await self._store.shift_times(clocksteps.plan(step, now, held))
        except RelayError as exc:
            log("clock_step_failed", logging.ERROR, step=f"{step:+.3f}s", error=exc.message)
            return False
        self.pending = 0.0
        log("clock_step", logging.WARNING, step=f"{step:+.3f}s", moved=moved or None)
        return True
