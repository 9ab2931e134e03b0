"""The failed-authentication throttle as a table, its clock given."""

from __future__ import annotations

import pytest

from relay.api.throttle import Failed, Refused, Throttle, source_key

NOW = 1_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def _throttle(**kwargs: float) -> tuple[Throttle, Clock]:
    clock = Clock()
    return Throttle(clock, burst=3, rate=0.5, report_every=60.0, **kwargs), clock  # type: ignore[arg-type]


# Steps: (seconds later, "check" or "fail", what it answers).
Step = tuple[float, str, Refused | Failed | None]


@pytest.mark.parametrize("steps", [
    pytest.param([
        (0, "check", None),  # a source never seen is not throttled
        (0, "fail", Failed(True, False, 0, 0)),
        (0, "check", None),
        (0, "fail", Failed(True, False, 0, 0)),
        (0, "fail", Failed(True, True, 0, 2)),  # the third empties it: 2 s to the next token
        (0, "check", Refused(2, 0)),
        (1, "check", Refused(1, 0)),  # half a token back
        (2, "check", None),  # a whole token: the key is checked again
    ], id="burst-then-refill"),
    pytest.param([
        (0, "fail", Failed(True, False, 0, 0)),
        (0, "fail", Failed(True, False, 0, 0)),
        (0, "fail", Failed(True, True, 0, 2)),
        *[(0, "check", Refused(2, 0))] * 5,
        # Failing as fast as tokens come back: throttled, counted, not logged one by one...
        *[(2, "fail", Failed(False, False, 0, 2))] * 29,
        (2, "fail", Failed(False, False, 35, 2)),  # ... until a minute after the last line
        (0, "check", Refused(2, 0)),
        (6, "check", None),  # refilled: forgotten ...
        (0, "fail", Failed(True, False, 0, 0)),  # ... and logged one by one again
    ], id="one-line-a-minute-while-throttled"),
    pytest.param([
        (0, "fail", Failed(True, False, 0, 0)),
        (4, "fail", Failed(True, False, 0, 0)),  # refilled in between: still 2 left after
        (0, "fail", Failed(True, False, 0, 0)),
        (0, "fail", Failed(True, True, 0, 2)),
    ], id="slow-failures-are-not-throttled"),
])
def test_steps(steps: list[Step]) -> None:
    throttle, clock = _throttle()
    for n, (later, action, expected) in enumerate(steps):
        clock.now += later
        got = throttle.check("a") if action == "check" else throttle.fail("a")
        assert got == expected, (n, later, action)
        assert throttle.check("b") is None  # another source is never affected


def test_the_table_forgets_refilled_sources_and_stays_bounded() -> None:
    throttle, clock = _throttle(max_sources=100)
    for n in range(50):
        throttle.fail(f"s{n}")
    assert len(throttle) == 50
    clock.now += 5  # two tokens back for each: all full
    throttle.fail("new")
    assert len(throttle) == 1
    for n in range(1000):  # many sources at once: the oldest go first
        for _ in range(3):
            throttle.fail(f"t{n}")
    assert len(throttle) == 100
    assert throttle.check("t999") is not None and throttle.check("t0") is None


def test_an_ipv6_host_is_its_64() -> None:
    throttle, _ = _throttle()
    for _ in range(3):
        throttle.fail("2001:db8::1")
    assert throttle.check("2001:db8::ffff") == Refused(2, 0)  # another address, same /64
    assert throttle.check("2001:db8:0:1::1") is None  # the next /64


@pytest.mark.parametrize(("address", "key"), [
    ("192.0.2.7", "192.0.2.7"),
    ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),  # the same /64: the same bucket
    ("::ffff:192.0.2.7", "192.0.2.7"),
    ("unknown", "unknown"),  # no client address (a Unix socket)
])
def test_source_key(address: str, key: str) -> None:
    assert source_key(address) == key
