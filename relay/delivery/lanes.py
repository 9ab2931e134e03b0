"""One endpoint's scheduling state (its lane) and the scheduler's decisions about one
endpoint: its hint of when work is next due, how many deliveries to claim for it now
(its cap, its ordering and its rate limit's token bucket), and what a claim taught."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from relay.delivery import budget, ratelimit
from relay.delivery.endpoints import Endpoint
from relay.types import Claimed


@dataclass(slots=True)
class Lane:
    """Per-endpoint scheduling state."""

    due: float | None = 0.0  # earliest known due time; 0 = unknown, look; None = nothing
    notified: float | None = None  # lowest hint received while a claim was running
    inflight: int = 0
    unrecorded: int = 0  # outcomes sent back but not yet committed
    bucket: ratelimit.Bucket = field(default_factory=ratelimit.Bucket)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    ready: deque[Claimed] = field(default_factory=deque)  # claimed, waiting for a slot

    def hint(self, due: float, *, claiming: bool) -> None:
        """A delivery is due at `due` (new, retried or released). During a claim, the
        hint is also kept aside: the claim's answer must not overwrite it."""
        if self.due is None or due < self.due:
            self.due = due
        if claiming:
            self.notified = due if self.notified is None else min(self.notified, due)

    def wants(self, endpoint: Endpoint, now: float, ticks: float,
              left: int) -> tuple[int, float | None]:
        """How many deliveries to claim now (<= 0: none) within `left` of the round's
        budget, and when none, when to look again (None: when told). `now` is the wall
        clock, `ticks` the monotonic one the token bucket counts in."""
        if self.due is None:
            return 0, None
        if self.due > now:
            return 0, self.due
        if budget.held_back(ordered=endpoint.ordered, inflight=self.inflight,
                            ready=len(self.ready), unrecorded=self.unrecorded):
            return 0, None  # the recorder wakes it when the outcome is committed
        taken = None
        if endpoint.rate_limit:
            taken = ratelimit.take(self.bucket, ticks, endpoint.rate_limit)
            self.bucket = taken.bucket
        free = budget.endpoint(
            concurrency=endpoint.concurrency, inflight=self.inflight,
            ready=len(self.ready), budget=left,
            tokens=None if taken is None else taken.allowed, ordered=endpoint.ordered,
        )
        if taken is not None and endpoint.rate_limit:  # tokens beyond the ask stay
            self.give_back(taken.allowed - max(free, 0), endpoint.rate_limit)
        if free <= 0 and taken is not None and self.inflight < endpoint.concurrency:
            # a free slot, no token: due at the next one (a monotonic time)
            return free, now + taken.next_at - ticks
        return free, None

    def claimed(self, exhausted: bool, next_due: float | None, now: float) -> float | None:
        """Take in a claim's answer: `exhausted` when it took all that was due, then
        `next_due` is the next due time the database knows (None: nothing). Returns the
        new hint when it is known."""
        if not exhausted:
            self.due = now  # the claim was full: more may be due
            return None
        due = next_due
        if self.notified is not None:
            due = self.notified if due is None else min(due, self.notified)
        self.due = due
        return due

    def give_back(self, unused: int, rate: float | None) -> None:
        """Tokens taken and not spent go back to the bucket."""
        if rate:
            self.bucket = ratelimit.give_back(self.bucket, unused, rate)
