"""PostgreSQL's heartbeat decisions (relay.storage.postgres.cluster) on injected clocks,
as tables, and its loop against a database that does not answer: no database needed."""

from __future__ import annotations

import itertools

import pytest

from relay.errors import StorageError
from relay.storage.base import Watcher
from relay.storage.postgres import cluster
from relay.storage.postgres.cluster import BACK, UNREACHABLE, Answer, Cluster, Pulse
from relay.storage.postgres.connection import Pool
from relay.types import NodeRow
from tests.serving import eventually

NOW = 1_000_000.0


@pytest.mark.parametrize(
    ("healthy", "reached", "action"),
    [
        (True, True, None),  # the usual round
        (True, False, UNREACHABLE),  # the first round that fails says so, once
        (False, False, None),  # ... and the next ones do not repeat it
        (False, True, BACK),  # the first that reaches the database again
    ],
)
def test_health_change(healthy: bool, reached: bool, action: str | None) -> None:
    assert cluster.health_change(healthy, reached) == action


@pytest.mark.parametrize(
    ("timeout", "deadline"),
    [(5.0, cluster.HEARTBEAT_TIMEOUT), (1.0, 1.0), (cluster.HEARTBEAT_TIMEOUT, 2.0)],
)
def test_a_heartbeat_statement_has_the_shorter_deadline(timeout: float, deadline: float
                                                        ) -> None:
    assert cluster.beat_deadline(timeout) == deadline


@pytest.mark.parametrize(
    ("payload", "woken"),
    [
        ("relay:b:2:ff00aa ep_1 1000.5", ("ep_1", 1000.5)),  # another process's
        ("relay:a:1:abcdef ep_1 1000.5", None),  # this process's own: it woke itself
    ],
)
def test_due_wakeup(payload: str, woken: tuple[str, float] | None) -> None:
    assert cluster.due_wakeup(payload, cluster.node_id("a", 1, "abcdef")) == woken


@pytest.mark.parametrize(
    ("seen", "alive"),
    [
        (NOW, True),
        (NOW - cluster.NODE_ALIVE, True),  # just within
        (NOW - cluster.NODE_ALIVE - 0.001, False),  # its heartbeat is late: shown as gone
        (NOW + 5, True),  # a process whose wall clock is ahead of this one's
    ],
)
def test_node_row_alive(seen: float, alive: bool) -> None:
    row = ("relay:a:1:abcdef", "a", 1, "1.0", "d1", NOW - 60, seen)
    assert cluster.node_row(row, NOW) == NodeRow(
        id="relay:a:1:abcdef", host="a", pid=1, version="1.0", config_digest="d1",
        started_at=NOW - 60, seen_at=seen, alive=alive)


def test_node_rows_are_forgotten_a_day_after_last_seen() -> None:
    assert cluster.forget_before(NOW) == NOW - 86_400


@pytest.mark.parametrize(
    ("versions", "stepped", "answers"),
    [
        # The first answer reads no endpoints (the watcher does on listening); a moved
        # counter does, the same counter does not.
        ([3, 3, 4, 4], False, [(False, True), (False, True), (True, True), (False, True)]),
        # While a step of the wall clock waits to be taken in, no lease comes back.
        ([3, 4], True, [(False, False), (True, False)]),
    ],
)
def test_pulse_answered(versions: list[int], stepped: bool,
                        answers: list[tuple[bool, bool]]) -> None:
    pulse = Pulse(polled=0.0)
    assert [pulse.answered(v, stepped) for v in versions] == [Answer(*a) for a in answers]


def test_pulse_says_when_the_directory_moved_not_at_the_first_answer() -> None:
    pulse = Pulse(polled=0.0)
    assert [pulse.directory_moved(v) for v in [7, 7, 8, 8, 9]] == [
        False, False, True, False, True]


def test_pulse_rescans_every_poll_interval_of_the_monotonic_clock() -> None:
    pulse = Pulse(polled=100.0)
    every = cluster.POLL_EVERY
    looks = [100.5, 100 + every, 100 + every + 0.1, 100 + 2 * every, 100 + 2 * every + 0.2]
    assert [pulse.rescan(t) for t in looks] == [False, False, True, False, True]
    assert pulse.polled == 100 + 2 * every + 0.2


class _Woken:
    def __init__(self) -> None:
        self.rescans = 0

    def rescan(self) -> None:
        self.rescans += 1

    @property
    def watcher(self) -> Watcher:
        return Watcher(due=lambda _e, _t: None, rescan=self.rescan, endpoints=lambda: None,
                       config_digest="")


async def test_the_loop_turns_unhealthy_and_still_rescans_on_its_clock() -> None:
    """A database that cannot be reached (here: a closed pool) turns the store unhealthy
    at the first round; the watcher is still asked to rescan once the monotonic clock
    passed POLL_EVERY (each look here moves it on past that). Nothing is reclaimed."""

    def closed() -> Pool:
        raise StorageError("the store is closed")

    async def reclaim(now: float) -> int:
        raise AssertionError("no round reached the database")

    health = [True]
    ticks = itertools.count(0.0, cluster.POLL_EVERY + 1)
    member = Cluster("postgresql://relay@127.0.0.1:1/none", closed, timeout=1.0,
                     reclaim=reclaim, healthy=lambda: health[-1], set_health=health.append,
                     clock=lambda: NOW, monotonic=lambda: next(ticks))
    woken = _Woken()
    await member.watch(woken.watcher)  # cannot listen: polls, logged
    member.start()
    try:
        await eventually(lambda: woken.rescans >= 1, 5, "a rescan")
    finally:
        await member.stop()
    assert health[:2] == [True, False] and not any(health[1:])
