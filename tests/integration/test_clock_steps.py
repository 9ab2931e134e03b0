"""Steps of the wall clock, on every backend (a real SQLite file, a real PostgreSQL
database): the store operation that moves stored times, and relay itself, in-process,
with an injected wall clock stepped back and forward against the real monotonic clock,
delivering to a real loopback receiver.

The store test's leases lie ahead of the real clock (NOW): a store's PostgreSQL heartbeat
reads the real clock and returns the leases that expired by it. relay itself gives the
heartbeat its injected wall clock."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from relay import config as cfgmod
from relay.delivery import clocksteps
from relay.delivery.retry import JITTER
from relay.storage.base import Store
from tests.helpers import NOW, event, result
from tests.postgres import scratch_database
from tests.receiver import Receiver
from tests.serving import Running, config_data, eventually, running

HOUR = 3600.0
DAY = 86_400.0


async def test_shift_times_moves_what_the_plan_names(store: Store) -> None:
    """A step back of an hour noticed at NOW (the old clock read NOW + 1 h): pending
    deliveries due after NOW move back an hour, to NOW at the earliest; those due
    already, held ones and leases held elsewhere stay; the leases held here and
    failing_since move by the step."""
    await store.ingest([event(n, endpoints=("a",), at=NOW - 20) for n in (1, 2)])
    ours, theirs = (await store.claim({"a": 2}, NOW, NOW + 60))[0]
    await store.ingest([event(n, endpoints=("a",), at=at) for n, at in (
        (3, NOW - 10), (4, NOW + 10), (5, NOW + HOUR + 600))])
    await store.ingest([event(6, endpoints=("a",), state="held", at=NOW + 50)])
    await store.ingest([event(7, endpoints=("b",), at=NOW - 200)])
    [failed] = (await store.claim({"b": 1}, NOW, NOW + 30))[0]
    await store.record([result(failed.id, "b", 1, "pending", next_at=NOW + 3 * HOUR,
                               started_at=NOW - 100)], NOW - 100, 5 * DAY)

    moved = await store.shift_times(clocksteps.plan(-HOUR, NOW, {ours.id}))

    assert moved == 3
    due = {d.event_id: (d.state, d.next_at) for n in range(3, 8)
           for d in await store.deliveries_of(f"evt_{n:04d}")}
    assert due == {
        "evt_0003": ("pending", NOW - 10),  # due already: stays
        "evt_0004": ("pending", NOW),  # overdue by the old clock: due now, not in an hour
        "evt_0005": ("pending", NOW + 600),  # 10 min after the old now: 10 min after NOW
        "evt_0006": ("held", NOW + 50),
        "evt_0007": ("pending", NOW + 2 * HOUR),  # its retry, 3 h after the old now - 1 h
    }
    # The lease held here now ends an hour earlier, the other one where it was.
    assert await store.reclaim_expired(NOW + 61 - HOUR) == 1
    assert [(d.id, d.state) for n in (1, 2) for d in await store.deliveries_of(
        f"evt_{n:04d}")] == [(ours.id, "pending"), (theirs.id, "delivering")]
    rows = {r.id: r for r in await store.list_endpoints()}
    assert rows["b"].failing_since == NOW - 100 - HOUR
    assert rows["b"].consecutive_failures == 1 and rows["a"].failing_since is None
    # A step forward moves no due time; failing_since follows it (to now at most).
    assert await store.shift_times(clocksteps.plan(6 * DAY, NOW, set())) == 0
    rows = {r.id: r for r in await store.list_endpoints()}
    assert rows["b"].failing_since == NOW
    assert [d.next_at for d in await store.deliveries_of("evt_0005")] == [NOW + 600]


# --- relay itself ------------------------------------------------------------------------


class SteppedClock:
    """A clock that runs with a real one (the wall clock unless told), `offset` ahead,
    and steps when told."""

    def __init__(self, offset: float, real: Callable[[], float] = time.time) -> None:
        self.offset = offset
        self.real = real

    def __call__(self) -> float:
        return self.real() + self.offset


@asynccontextmanager
async def relay_on(backend: str, tmp_path: Path, clock: SteppedClock,
                   monotonic: Callable[[], float] = time.monotonic,
                   **sections: Any) -> AsyncIterator[Running]:
    """relay in-process on `backend` with the wall clock `clock` (and the monotonic clock
    `monotonic`, the real one unless given)."""
    data = config_data(tmp_path, **sections)
    if backend == "sqlite":
        async with running(cfgmod.validate(data, {}), clock=clock, monotonic=monotonic) as r:
            yield r
        return
    async for url in scratch_database():
        data["storage"] = {"url": url}
        async with running(cfgmod.validate(data, {}), clock=clock, monotonic=monotonic) as r:
            yield r


BACKENDS = pytest.mark.parametrize("backend", ["sqlite", "postgres"])


async def _state(r: Running, event_id: str) -> tuple[str, int]:
    [d] = await r.relay.store.deliveries_of(event_id)
    return d.state, d.attempts


@pytest.mark.slow
@BACKENDS
async def test_a_backward_step_holds_no_retry(
    backend: str, tmp_path: Path) -> None:
    """NTP steps the clock back an hour while a retry waits 2 s: it still goes about 2 s
    after the failure (it used to wait an hour). Both clocks pass those 2 s at once."""
    clock, monotonic = SteppedClock(2 * HOUR), SteppedClock(0.0, time.monotonic)
    async with Receiver() as rx, relay_on(
            backend, tmp_path, clock, monotonic,
            endpoints=[{"id": "e", "url": f"{rx.url}/e"}],
            delivery={"retry_schedule": ["2s"]}) as r:
        rx.respond("/e", 500)
        sent = (await r.send()).json()["id"]
        await eventually(lambda: _is(r, sent, ("pending", 1)), 5, "the first attempt failed")
        clock.offset -= HOUR
        for moved in (clock, monotonic):  # the retry's wait, its jitter included
            moved.offset += 2 * (1 + JITTER)
        r.relay.scheduler.wake()
        await rx.wait_for(2, "/e", timeout=8)
        await eventually(lambda: _is(r, sent, ("succeeded", 2)), 5, "the retry recorded")


@pytest.mark.slow
@BACKENDS
async def test_a_forward_step_sends_overdue_work_at_once(
    backend: str, tmp_path: Path) -> None:
    """A step forward of an hour makes a retry due in 10 minutes overdue: it goes within
    a couple of seconds, not at the next minute's rescan (nor in 10 minutes)."""
    clock = SteppedClock(HOUR)
    async with Receiver() as rx, relay_on(
            backend, tmp_path, clock,
            endpoints=[{"id": "e", "url": f"{rx.url}/e"}],
            delivery={"retry_schedule": ["10m"]}) as r:
        rx.respond("/e", 500)
        sent = (await r.send()).json()["id"]
        await eventually(lambda: _is(r, sent, ("pending", 1)), 5, "the first attempt failed")
        clock.offset += HOUR
        await rx.wait_for(2, "/e", timeout=5)
        await eventually(lambda: _is(r, sent, ("succeeded", 2)), 5, "the retry recorded")


@pytest.mark.slow
@BACKENDS
async def test_a_brief_failure_across_days_of_suspend_disables_nothing(
    backend: str, tmp_path: Path) -> None:
    """Two quick failures, then the VM is suspended for 6 days (the wall clock steps past
    disable_after, the monotonic one does not), then a third failure: the endpoint failed
    for seconds, so it stays active and no relay.endpoint.disabled is emitted."""
    clock = SteppedClock(HOUR)
    async with Receiver() as rx, relay_on(
            backend, tmp_path, clock,
            endpoints=[{"id": "e", "url": f"{rx.url}/status/500"},
                       {"id": "ops", "url": f"{rx.url}/ops", "events": ["relay.*"]}],
            delivery={"retry_schedule": ["50ms", "3s", "10m"]}) as r:
        sent = (await r.send()).json()["id"]
        await eventually(lambda: _is(r, sent, ("pending", 2)), 5, "two failed attempts")
        clock.offset += 6 * DAY
        await eventually(lambda: _attempts(r, sent, 3), 8, "a third attempt recorded")
        [row] = [e for e in await r.relay.store.list_endpoints() if e.id == "e"]
        assert (row.is_active, row.disable_reason, row.consecutive_failures) == (True, None, 3)
        assert await _state(r, sent) == ("pending", 3)  # not held
        assert row.failing_since is not None and clock() - row.failing_since < HOUR
        # The operational event would be stored in the outcome's own transaction.
        events = await r.client.get("/v1/events", params={"type": "relay.endpoint.disabled"})
        assert events.status_code == 200 and events.json()["data"] == []


async def _is(r: Running, event_id: str, state: tuple[str, int]) -> bool:
    return await _state(r, event_id) == state


async def _succeeded(r: Running, event_id: str) -> bool:
    return (await _state(r, event_id))[0] == "succeeded"


async def _attempts(r: Running, event_id: str, attempts: int) -> bool:
    state, made = await _state(r, event_id)
    return state != "delivering" and made == attempts


@pytest.mark.slow
@BACKENDS
async def test_housekeeping_right_after_a_forward_step_takes_no_live_lease(
    backend: str, tmp_path: Path,
) -> None:
    """A step forward makes this process's own leases look expired until it has taken
    the step in: housekeeping at that moment must not return a delivery still being sent
    to the queue (it would be sent twice)."""
    clock = SteppedClock(HOUR)
    async with Receiver() as rx, relay_on(
            backend, tmp_path, clock, endpoints=[{"id": "e", "url": f"{rx.url}/slow/2"}],
            delivery={"timeout": "10s"}) as r:
        sent = (await r.send()).json()["id"]
        await rx.wait_for(1, "/slow/2")
        clock.offset += HOUR
        await r.relay.housekeep()
        await eventually(lambda: _succeeded(r, sent), 10, "the delivery recorded")
        assert await _state(r, sent) == ("succeeded", 1)
        assert len(rx.received("/slow/2")) == 1


@pytest.mark.postgres  # makes its own database
async def test_the_postgres_heartbeat_takes_no_live_lease_after_a_forward_step(
    tmp_path: Path,
) -> None:
    """PostgreSQL's heartbeat returns expired leases every half second by the wall clock:
    right after a step forward it must not take this process's own delivery, still being
    sent, back to the queue. (The heartbeat reads relay's injected wall clock, stepped
    here.)"""
    clock = SteppedClock(HOUR)
    async with Receiver() as rx, relay_on(
            "postgres", tmp_path, clock, endpoints=[{"id": "e", "url": f"{rx.url}/slow/2"}],
            delivery={"timeout": "10s"}) as r:
        sent = (await r.send()).json()["id"]
        await rx.wait_for(1, "/slow/2")
        clock.offset += HOUR
        await eventually(lambda: _succeeded(r, sent), 10, "the delivery recorded")
        assert await _state(r, sent) == ("succeeded", 1)
        assert len(rx.received("/slow/2")) == 1
