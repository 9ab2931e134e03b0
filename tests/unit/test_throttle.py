"""The failed-authentication throttle as a table, its clock given."""

from __future__ import annotations

import pytest

from relay.throttle import NOT_AN_ADDRESS, REPEATS, Failed, Refused, Throttle, source_key

NOW = 1_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def _throttle(**kwargs: float) -> tuple[Throttle, Clock]:
    clock = Clock()
    return Throttle(clock, burst=3, rate=0.5, report_every=60.0, **kwargs), clock  # type: ignore[arg-type]


# Steps: (seconds later, "check" or "fail" (with a key never sent before) or "fail KEY",
# what it answers).
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
    pytest.param([
        (0, "fail old", Failed(True, False, 0, 0)),
        # A stale client repeating its key: nothing spent, nothing logged on its own ...
        *[(0, "fail old", Failed(False, False, 0, 0))] * 50,
        (0, "check", None),
        (0, "fail", Failed(True, False, 0, 0)),  # ... so a new key still has the burst
        (60, "fail old", Failed(False, False, 51, 0)),  # a minute on: a summary line
        (0, "fail", Failed(True, False, 0, 0)),
        (0, "fail", Failed(True, False, 0, 0)),
        (0, "fail", Failed(True, True, 0, 2)),
        (0, "check", Refused(2, 0)),  # empty: even a repeat is refused unchecked
    ], id="a-repeated-key-spends-nothing"),
    pytest.param([
        *[(60, f"fail k{n}", Failed(True, False, 0, 0)) for n in range(5)],
        (60, "fail k0", Failed(True, False, 0, 0)),  # four newer keys: k0 is new again
        (0, "fail k4", Failed(False, False, 0, 0)),
        (0, "fail k2", Failed(False, False, 0, 0)),  # the fourth newest
    ], id="the-last-four-keys-are-remembered"),
])
def test_steps(steps: list[Step]) -> None:
    assert REPEATS == 4
    throttle, clock = _throttle()
    for n, (later, action, expected) in enumerate(steps):
        clock.now += later
        verb, _, key = action.partition(" ")
        got = (throttle.check("192.0.2.1") if verb == "check"
               else throttle.fail("192.0.2.1", key or f"new{n}"))
        assert got == expected, (n, later, action)
        assert throttle.check("192.0.2.2") is None  # another source is never affected


def test_the_table_forgets_refilled_sources_and_stays_bounded() -> None:
    throttle, clock = _throttle(max_sources=100)
    for n in range(50):
        throttle.fail(f"10.0.0.{n}", "k")
    assert len(throttle) == 50
    clock.now += 5  # two tokens back for each: all full
    throttle.fail("10.0.1.1", "k")
    assert len(throttle) == 1
    for n in range(1000):  # many sources at once: the oldest go first
        for i in range(3):
            throttle.fail(f"10.1.{n // 256}.{n % 256}", f"k{i}")
    assert len(throttle) == 100
    assert throttle.check("10.1.3.231") is not None and throttle.check("10.1.0.0") is None


def test_an_ipv6_host_is_its_64() -> None:
    throttle, _ = _throttle()
    for n in range(3):
        throttle.fail("2001:db8::1", f"k{n}")
    assert throttle.check("2001:db8::ffff") == Refused(2, 0)  # another address, same /64
    assert throttle.check("2001:db8:0:1::1") is None  # the next /64


@pytest.mark.parametrize(("address", "key"), [
    ("192.0.2.7", "192.0.2.7"),
    ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),  # the same /64: the same bucket
    ("::ffff:192.0.2.7", "192.0.2.7"),
    # Not an address (no client address: a Unix socket; a forwarded value): one bucket,
    # however it is spelled.
    ("unknown", NOT_AN_ADDRESS),
    ("unknown2", NOT_AN_ADDRESS),
    ("192.0.2.7, 10.0.0.1", NOT_AN_ADDRESS),
])
def test_source_key(address: str, key: str) -> None:
    assert source_key(address) == key


def test_the_log_has_a_cap_for_every_source_together() -> None:
    """A flood from many addresses: LOG_LINES lines a second in all; the failures past it
    are counted in their source's next summary line."""
    throttle, clock = _throttle(log_lines=5)  # type: ignore[arg-type]
    logged = [throttle.fail(f"10.0.0.{n}", "k").log for n in range(8)]
    assert logged == [True] * 5 + [False] * 3
    clock.now += 1  # the next second: lines again
    assert throttle.fail("10.0.0.9", "k").log
    clock.now += 60
    assert throttle.fail("10.0.0.7", "k") == Failed(False, False, 2, 0)  # its own and this
