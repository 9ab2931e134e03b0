"""The retry policy as a table."""

from __future__ import annotations

import random

import pytest

from relay.delivery.retry import decide

SCHEDULE = (10.0, 100.0, 1000.0)
NOW = 1_000_000.0


@pytest.mark.parametrize(
    ("attempt", "status", "ok", "retry_after", "accepting", "state", "delay"),
    [
        (1, 200, True, None, True, "succeeded", None),
        (1, 500, False, None, True, "pending", 10.0),
        (2, None, False, None, True, "pending", 100.0),  # timeout / connection error
        (3, 302, False, None, True, "pending", 1000.0),  # redirects are failures
        (4, 500, False, None, True, "failed", None),  # schedule used up
        (1, 429, False, 42.0, True, "pending", 42.0),  # Retry-After replaces the delay
        (1, 503, False, 0.0, True, "pending", 1.0),  # clamped to at least 1 s
        (1, 503, False, 10**9, True, "pending", 86400.0),  # and at most a day
        (1, 500, False, 42.0, True, "pending", 10.0),  # only on 429 and 503
        (1, 410, False, None, True, "held", None),  # gone: endpoint disabled
        (1, 500, False, None, False, "held", 10.0),  # endpoint paused meanwhile
    ],
)
def test_decide(attempt: int, status: int | None, ok: bool, retry_after: float | None,
                accepting: bool, state: str, delay: float | None) -> None:
    decision = decide(attempt=attempt, status=status, ok=ok, retry_after=retry_after,
                      schedule=SCHEDULE, now=NOW, accepting=accepting,
                      rng=random.Random(0))
    assert decision.state == state
    assert decision.gone == (status == 410)
    if delay is None:
        assert decision.next_at is None
    elif retry_after is not None and status in (429, 503):
        assert decision.next_at == NOW + delay
    else:
        assert decision.next_at is not None
        assert NOW + delay * 0.9 <= decision.next_at <= NOW + delay * 1.1


def test_jitter_spreads_retries() -> None:
    rng = random.Random(1)
    times = {decide(attempt=1, status=500, ok=False, retry_after=None, schedule=SCHEDULE,
                    now=NOW, accepting=True, rng=rng).next_at for _ in range(50)}
    assert len(times) == 50


def test_empty_schedule_fails_after_one_attempt() -> None:
    decision = decide(attempt=1, status=500, ok=False, retry_after=None, schedule=(),
                      now=NOW, accepting=True)
    assert decision.state == "failed"
