"""Faults: a full disk, a receiver that is down for a while."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from relay import config as cfgmod
from tests.helpers import FakeClock
from tests.postgres import scratch_database
from tests.receiver import Receiver
from tests.serving import eventually, free_port, running


async def test_disk_full_answers_503_writes_nothing_and_recovers(
    make_config: Callable[..., cfgmod.Loaded],
) -> None:
    async with Receiver() as rx:
        cfg = make_config(endpoints=[{"id": "e", "url": f"{rx.url}/e"}])
        async with running(cfg) as r:
            assert (await r.send(data={"n": 0})).status_code == 202
            await rx.wait_for(1, "/e")
            # A full disk, as SQLite reports it (SQLITE_FULL): the database may not grow.
            # Only the page limit is simulated; the error path is the real one.
            store = r.relay.store
            [(pages,)] = await store.pragma("page_count")
            await store.pragma(f"max_page_count={pages}")
            big = {"blob": "x" * 100_000}
            refused = await r.send(data=big)
            assert refused.status_code == 503, refused.text
            error = refused.json()["error"]
            assert error["code"] == "storage_unavailable"
            assert "full" in error["message"]
            assert (await r.client.get("/readyz")).status_code == 503
            counts = await r.relay.store.counts()
            assert counts == {"succeeded": 1}  # nothing half-written
            # Space returns: the next event is stored and delivered.
            await store.pragma("max_page_count=1073741823")
            accepted = await r.send(data=big)
            assert accepted.status_code == 202
            await rx.wait_for(2, "/e")
            assert (await r.client.get("/readyz")).status_code == 200


@pytest.mark.slow
async def test_receiver_down_then_back_gets_everything(
    make_config: Callable[..., cfgmod.Loaded],
) -> None:
    """The retries' waits pass on relay's clocks, moved by hand (`until_retried`)."""
    port = free_port()  # nothing listens here yet: connections are refused
    cfg = make_config(
        endpoints=[{"id": "e", "url": f"http://127.0.0.1:{port}/back"}],
        delivery={"retry_schedule": ["100ms", "200ms", "400ms", "800ms", "1600ms"]},
    )
    clock, monotonic = FakeClock(time.time()), FakeClock(time.monotonic())
    async with running(cfg, clock=clock, monotonic=monotonic) as r:
        ids = [(await r.send(data={"n": i})).json()["id"] for i in range(20)]

        async def until_retried(check: Callable[[], Awaitable[bool]], what: str) -> None:
            """Until `check` holds, move both clocks on to the next retry due and wake
            the scheduler, once it has nothing left to do before."""
            async with asyncio.timeout(10):
                while not await check():
                    due = await r.relay.scheduler.wait_idle(10)
                    if due is None:  # nothing left to do: `check` holds now, or never
                        assert await check(), f"no retry left before {what}"
                        return
                    monotonic.now += max(0.0, due - clock.now)
                    clock.now = max(clock.now, due)
                    r.relay.scheduler.wake()

        async def failed_once() -> bool:
            deliveries = [d for i in ids for d in await r.relay.store.deliveries_of(i)]
            return all(d.attempts >= 2 for d in deliveries)

        await until_retried(failed_once, "two refused attempts each")
        async with Receiver(port=port) as rx:
            async def all_received() -> bool:
                return len(rx.received("/back")) >= 20

            await until_retried(all_received, "the 20 deliveries")
            got = await rx.wait_for(20, "/back", timeout=15)
            assert sorted(g.headers["webhook-id"] for g in got) == sorted(ids)
        [d] = await r.relay.store.deliveries_of(ids[0])
        attempts = await r.relay.store.attempts_of(d.id)
        assert attempts[0].status is None and "refused" in (attempts[0].error or "")
        assert attempts[-1].status == 200


async def test_read_only_database_answers_503_and_recovers(
    make_config: Callable[..., cfgmod.Loaded],
) -> None:
    async with Receiver() as rx:
        cfg = make_config(endpoints=[{"id": "e", "url": f"{rx.url}/e"}])
        async with running(cfg) as r:
            # The database refuses writes, as SQLite reports a read-only file
            # (SQLITE_READONLY); as root, file permissions would not stop the writer.
            store = r.relay.store
            await store.pragma("query_only=1")
            refused = await r.send()
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["code"] == "storage_unavailable"
            assert "readonly" in refused.json()["error"]["message"]
            assert await r.relay.store.counts() == {}
            await store.pragma("query_only=0")
            assert (await r.send()).status_code == 202
            await rx.wait_for(1, "/e")


async def test_little_free_space_warns_in_readyz_metrics_and_the_log(
    make_config: Callable[..., cfgmod.Loaded], caplog: pytest.LogCaptureFixture,
) -> None:
    """More free space asked for than any disk has: still ready (writes succeed), with a
    warning; the free bytes in /metrics; one log line. The real full disk is
    tests/acceptance/test_disk_full.py."""
    caplog.set_level("INFO", logger="relay")
    cfg = make_config(storage={"min_free_space": "1000000GB"})
    async with running(cfg) as r:
        ready = await r.client.get("/readyz")
        assert ready.status_code == 200
        [warning] = ready.json()["warnings"]
        assert "under [storage] min_free_space" in warning
        folder = str(Path(cfg.config.storage.path).absolute().parent)
        metrics = (await r.client.get("/metrics")).text
        assert f'relay_storage_free_bytes{{path="{folder}"}}' in metrics
        assert (await r.send()).status_code == 202
    lows = [rec for rec in caplog.records if rec.msg == "storage_space_low"]
    assert len(lows) == 1 and lows[0].levelname == "WARNING"


@pytest.mark.postgres  # makes its own database
async def test_enough_free_space_and_postgresql_show_no_warning(
    make_config: Callable[..., cfgmod.Loaded],
) -> None:
    async with running(make_config()) as r:
        ready = await r.client.get("/readyz")
        assert ready.json() == {"status": "ready"}
        assert "relay_storage_free_bytes{" in (await r.client.get("/metrics")).text
    async for url in scratch_database():
        cfg = cfgmod.validate({"storage": {"url": url, "min_free_space": "1000000GB"}}, {})
        async with running(cfg) as r:
            assert (await r.client.get("/readyz")).json() == {"status": "ready"}
            assert "relay_storage_free_bytes{" not in (await r.client.get("/metrics")).text


async def test_an_outcome_that_failed_to_commit_is_recorded_once_writes_work(
    make_config: Callable[..., cfgmod.Loaded],
) -> None:
    """The receiver answers while the database refuses writes: the outcome's record fails,
    and the store tries it again, so once writes work the delivery is `succeeded`, not
    left `delivering` until its lease expires and the minute's housekeeping."""
    async with Receiver() as rx:
        cfg = make_config(endpoints=[{"id": "e", "url": f"{rx.url}/slow/0.5"}])
        async with running(cfg) as r:
            event_id = (await r.send()).json()["id"]
            await rx.wait_for(1, "/slow/0.5")  # claimed and in flight: the answer comes
            store = r.relay.store
            await store.pragma("query_only=1")  # in 0.5 s, to a database refusing writes
            await eventually(lambda: not store.healthy, 10, "the outcome's record to fail")
            [delivery] = await store.deliveries_of(event_id)
            assert delivery.state == "delivering"
            await store.pragma("query_only=0")

            async def succeeded() -> bool:
                [delivery] = await store.deliveries_of(event_id)
                return delivery.state == "succeeded"

            await eventually(succeeded, 5, "the delivery to be recorded as succeeded")
            assert len(rx.received("/slow/0.5")) == 1  # not sent again
