"""The scheduler driven by clocks the test moves by hand: nothing here waits on the wall
clock for a delay to pass. A real SQLite store on a temporary file and a real sender
posting to loopback receivers; `wait_idle` says when the scheduler next has work, the
test moves the clocks there (wall and monotonic together) and wakes it, or steps the
wall clock alone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from relay import config as cfgmod
from relay.delivery.endpoints import config_endpoints, resolve
from relay.delivery.headers import USER_AGENT
from relay.delivery.scheduler import Scheduler
from relay.delivery.sender import Sender
from relay.delivery.signing import generate_secret
from relay.metrics import Metrics
from relay.storage.sqlite import SQLiteStore
from relay.types import NewEvent
from tests.helpers import FakeClock, endpoint
from tests.receiver import Receive, Receiver, Scope, Send, serve_asgi
from tests.serving import eventually

T0 = 1_000_000.0  # the fake clock's start (exact enough for sub-millisecond steps)


@dataclass
class Harness:
    store: SQLiteStore
    scheduler: Scheduler
    clock: FakeClock
    monotonic: FakeClock
    defaults: cfgmod.DeliveryConfig
    events: int = 0

    async def ingest(self, count: int, endpoint_ids: tuple[str, ...] = ("e",),
                     at: float | None = None, notify: bool = True) -> None:
        """`count` events due at `at` (default now) to each endpoint, then the hint."""
        when = self.clock() if at is None else at
        first, self.events = self.events, self.events + count
        await self.store.ingest([
            NewEvent(id=f"evt_{n:05d}", tenant="default", type="t.x", idem_key=None,
                     digest="", created_at=when, payload=b'{"n":%d}' % n,
                     deliveries=tuple((e, "pending") for e in endpoint_ids))
            for n in range(first, self.events)
        ])
        for endpoint_id in endpoint_ids if notify else ():
            self.scheduler.notify(endpoint_id, when)

    async def step(self, to: float) -> float | None:
        """Move the clock to `to`, wake the scheduler, and wait until it is idle again;
        returns when it next has work."""
        self.monotonic.now += to - self.clock.now
        self.clock.now = to
        self.scheduler.wake()
        return await self.scheduler.wait_idle(5)


@asynccontextmanager
async def scheduled(make_config: Callable[..., cfgmod.Loaded], endpoints: list[dict[str, Any]],
                    concurrency: int = 16, **delivery: Any) -> AsyncIterator[Harness]:
    """A scheduler over `endpoints` (config form) on its own store, not yet given work."""
    loaded = make_config(endpoints=endpoints, delivery={"concurrency": concurrency, **delivery})
    clock, monotonic = FakeClock(T0), FakeClock(T0)
    store = SQLiteStore(loaded.config.storage.path)
    await store.open()
    sender = Sender(user_agent=USER_AGENT)
    await sender.start()
    scheduler = Scheduler(store, sender, Metrics(), concurrency=concurrency,
                          disable_after=lambda: loaded.config.delivery.disable_after,
                          on_disabled=lambda disabled: None, clock=clock,
                          monotonic=monotonic)
    try:
        rows = await store.sync_config_endpoints(config_endpoints(loaded), T0,
                                                 generate_secret)
        scheduler.set_endpoints({r.id: resolve(r, loaded.config.delivery, T0) for r in rows})
        scheduler.start()
        yield Harness(store, scheduler, clock, monotonic, loaded.config.delivery)
    finally:
        await scheduler.stop(grace=1.0)
        await sender.close()
        await store.close()


@pytest.mark.parametrize(("rate", "burst", "spacing"), [(10, 10, 0.1), (0.5, 1, 2.0)])
async def test_rate_limit_spaces_sends_by_the_clock(
    make_config: Callable[..., cfgmod.Loaded], rate: float, burst: int, spacing: float,
) -> None:
    async with Receiver() as rx, scheduled(make_config, [endpoint(
            "e", f"{rx.url}/e", rate_limit=rate, endpoint_concurrency=20)]) as h:
        await h.ingest(burst + 4)
        # A full bucket's worth goes at once; then one per token, 1/rate apart.
        next_at = await h.scheduler.wait_idle(5)
        assert len(rx.received("/e")) == burst
        for n in range(1, 5):
            assert next_at is not None and next_at == pytest.approx(T0 + n * spacing)
            next_at = await h.step(next_at - spacing / 10)  # not yet
            assert next_at is not None and next_at == pytest.approx(T0 + n * spacing)
            assert len(rx.received("/e")) == burst + n - 1
            next_at = await h.step(next_at)
            assert len(rx.received("/e")) == burst + n
        # A claim that used its whole token may have left more: one more look finds none.
        assert next_at is not None and await h.step(next_at) is None
        assert await h.store.counts() == {"succeeded": burst + 4}


async def test_retry_waits_for_its_next_at(make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with Receiver() as rx, scheduled(make_config, [endpoint("e", f"{rx.url}/e")],
                                           retry_schedule=["10s", "1m"]) as h:
        rx.respond("/e", 500, 503)
        await h.ingest(1)
        next_at = await h.scheduler.wait_idle(5)
        # Attempt 1 failed at T0: the next is due 10 s later, +-10% jitter, as stored.
        assert next_at is not None and T0 + 9 <= next_at <= T0 + 11
        [delivery] = await h.store.deliveries_of("evt_00000")
        assert (delivery.state, delivery.next_at, delivery.attempts) == ("pending", next_at, 1)
        assert await h.step(next_at - 0.5) == next_at  # not yet
        assert len(rx.received("/e")) == 1
        # Attempt 2 at next_at fails too: the schedule's second delay, from then.
        second = await h.step(next_at)
        assert len(rx.received("/e")) == 2
        assert second is not None and next_at + 54 <= second <= next_at + 66
        assert await h.step(second) is None
        [delivery] = await h.store.deliveries_of("evt_00000")
        assert (delivery.state, delivery.attempts) == ("succeeded", 3)
        attempts = await h.store.attempts_of(delivery.id)
        assert [(a.started_at, a.status) for a in attempts] == [
            (T0, 500), (next_at, 503), (second, 200)]


async def test_work_found_later_by_a_claim_wakes_the_scheduler(
    make_config: Callable[..., cfgmod.Loaded],
) -> None:
    """A rescan (at start, and each minute) looks at every endpoint; one whose only
    delivery is due later must get a wake-up for it, not wait for the next rescan."""
    async with Receiver() as rx, scheduled(make_config, [endpoint("e", f"{rx.url}/e")]) as h:
        assert await h.scheduler.wait_idle(5) is None
        await h.ingest(1, at=T0 + 30, notify=False)  # as left by an earlier run
        h.scheduler.rescan()
        assert await h.scheduler.wait_idle(5) == T0 + 30
        assert rx.received() == []
        assert await h.step(T0 + 30) is None
        assert len(rx.received("/e")) == 1


async def test_notify_wakes_an_idle_scheduler(make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with Receiver() as rx, scheduled(make_config, [endpoint("e", f"{rx.url}/e")]) as h:
        assert await h.scheduler.wait_idle(5) is None
        await h.ingest(3)  # notify: due now
        assert await h.scheduler.wait_idle(5) is None
        assert len(rx.received("/e")) == 3


class Gate:
    """A receiver that holds every request until opened, counting those in flight."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.inflight: dict[str, int] = {}
        self.most: dict[str, int] = {}
        self.most_total = 0
        self.answered = 0

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        self.inflight[path] = self.inflight.get(path, 0) + 1
        self.most[path] = max(self.most.get(path, 0), self.inflight[path])
        self.most_total = max(self.most_total, sum(self.inflight.values()))
        try:
            while (message := await receive())["type"] == "http.request" \
                    and message.get("more_body"):
                pass  # read the whole body
            await self.open.wait()
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            self.answered += 1
        finally:
            self.inflight[path] -= 1


async def test_caps_hold_and_claims_run_ahead_within_the_budget(
    make_config: Callable[..., cfgmod.Loaded],
) -> None:
    gate = Gate()
    async with serve_asgi(gate.app) as url, scheduled(
        make_config, [endpoint("a", f"{url}/a"), endpoint("b", f"{url}/b")],
        concurrency=3, endpoint_concurrency=2,
    ) as h:
        await h.ingest(10, ("a", "b"))
        # 3 in flight in all; 3 more claimed ahead: 2 x concurrency loaded, no more.
        await eventually(lambda: sum(gate.inflight.values()) == 3, message="3 in flight")
        assert await eventually(_delivering(h, 6), message="6 claimed")
        assert h.scheduler.inflight == 3
        gate.open.set()
        assert await h.scheduler.wait_idle(10) is None
        assert gate.answered == 20
        assert await h.store.counts() == {"succeeded": 20}
    assert gate.most_total == 3
    assert set(gate.most) == {"/a", "/b"} and max(gate.most.values()) <= 2


def _delivering(h: Harness, count: int) -> Callable[[], Any]:
    async def check() -> bool:
        return (await h.store.counts()).get("delivering") == count
    return check


async def test_claimed_but_unsent_deliveries_go_back_when_paused(
    make_config: Callable[..., cfgmod.Loaded],
) -> None:
    gate = Gate()
    async with serve_asgi(gate.app) as url, scheduled(
        make_config, [endpoint("e", f"{url}/e", endpoint_concurrency=1)],
    ) as h:
        await h.ingest(3)
        # One in flight, one claimed ahead of it; the third waits in the queue.
        await eventually(lambda: gate.inflight.get("/e") == 1, message="1 in flight")
        assert await eventually(_delivering(h, 2), message="2 claimed")
        row = await h.store.update_endpoint("e", {"is_paused": True}, T0)
        h.scheduler.set_endpoints({"e": resolve(row, h.defaults, T0)})
        # The unsent one goes back held (the endpoint no longer accepts), uncounted.
        assert await eventually(_delivering(h, 1), message="1 given back")
        states = {d.event_id: (d.state, d.attempts)
                  for n in range(3) for d in await h.store.deliveries_of(f"evt_{n:05d}")}
        assert sorted(states.values()) == [("delivering", 1), ("held", 0), ("pending", 0)]
        gate.open.set()
        assert await h.scheduler.wait_idle(5) is None
        assert gate.answered == 1
        assert await h.store.counts() == {"succeeded": 1, "held": 1, "pending": 1}


HOUR = 3600.0


async def test_a_backward_step_of_the_wall_clock_holds_no_retry(
    make_config: Callable[..., cfgmod.Loaded],
) -> None:
    """The wall clock steps back an hour (the monotonic one does not) while a retry waits
    10 s: the scheduler notices at its next wake-up, moves the retry back by the step,
    and sends it 10 s after the failure (it used to wait an hour more)."""
    async with Receiver() as rx, scheduled(make_config, [endpoint("e", f"{rx.url}/e")],
                                           retry_schedule=["10s"]) as h:
        rx.respond("/e", 500)
        await h.ingest(1)
        next_at = await h.scheduler.wait_idle(5)
        assert next_at is not None and T0 + 9 <= next_at <= T0 + 11
        h.clock.now -= HOUR
        h.scheduler.wake()
        moved = await h.scheduler.wait_idle(5)
        assert moved == pytest.approx(next_at - HOUR)
        [delivery] = await h.store.deliveries_of("evt_00000")
        assert delivery.next_at == pytest.approx(next_at - HOUR)
        assert await h.step(moved) is None
        assert len(rx.received("/e")) == 2
        assert await h.store.counts() == {"succeeded": 1}


async def test_a_forward_step_of_the_wall_clock_sends_overdue_work_at_once(
    make_config: Callable[..., cfgmod.Loaded],
) -> None:
    """The wall clock steps forward an hour while a retry waits 10 minutes; nothing wakes
    the scheduler, yet it notices within a second and sends the overdue retry (it used
    to sleep out the 10 minutes it had computed)."""
    async with Receiver() as rx, scheduled(make_config, [endpoint("e", f"{rx.url}/e")],
                                           retry_schedule=["10m"]) as h:
        rx.respond("/e", 500)
        await h.ingest(1)
        next_at = await h.scheduler.wait_idle(5)
        assert next_at is not None and next_at > T0 + 500
        h.clock.now += HOUR
        await rx.wait_for(2, "/e", timeout=5)
        assert await h.scheduler.wait_idle(5) is None
        [delivery] = await h.store.deliveries_of("evt_00000")
        assert delivery.next_at == next_at  # forward steps move no due time
        assert await h.store.counts() == {"succeeded": 1}
