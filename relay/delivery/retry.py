"""Retry policy: what happens to a delivery after an attempt. Pure: values and `now` in,
a decision out.

After failed attempt n (1-based) of a schedule [d1, ..., dk], the next attempt is due at
now + d_n * (1 + u), u uniform in [-JITTER, +JITTER]; after attempt k+1 fails the delivery
is `failed`. A `Retry-After` on a 429 or 503 replaces d_n (clamped to [1s, 24h]) and is
not jittered: the receiver asked for that time.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from relay.types import State

JITTER = 0.1
RETRY_AFTER_MIN = 1.0
RETRY_AFTER_MAX = 86_400.0


@dataclass(frozen=True, slots=True)
class Decision:
    state: State  # "succeeded" | "pending" | "failed" | "held"
    next_at: float | None = None
    gone: bool = False


def decide(
    *,
    attempt: int,
    status: int | None,
    ok: bool,
    retry_after: float | None,
    schedule: Sequence[float],
    now: float,
    accepting: bool,
    rng: random.Random | None = None,
) -> Decision:
    """The delivery's state after attempt number `attempt` (1-based)."""
    if ok:
        return Decision("succeeded")
    if status == 410:
        return Decision("held", gone=True)
    if attempt > len(schedule):
        return Decision("failed")
    if retry_after is not None and status in (429, 503):
        delay = min(max(retry_after, RETRY_AFTER_MIN), RETRY_AFTER_MAX)
    else:
        delay = schedule[attempt - 1] * (1 + (rng or random).uniform(-JITTER, JITTER))
    if not accepting:
        return Decision("held", next_at=now + delay)
    return Decision("pending", next_at=now + delay)
