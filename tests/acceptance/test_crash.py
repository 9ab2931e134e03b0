"""`kill -9` of a real `relay serve`, during ingest and during delivery, then restart:
every acknowledged event is delivered, with both `[storage] sync` modes (a kill -9 takes
the process, not the operating system: "normal" commits, handed to the OS, survive it)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from pathlib import Path

import httpx
import pytest

from tests.receiver import Receiver
from tests.serving import ServeProcess, eventually, free_port, serve_toml

KILLS = 3
CONCURRENCY = 64  # [delivery] concurrency, and the one endpoint's endpoint_concurrency
ENDPOINT_CONCURRENCY = 64
# A crash's duplicates are the deliveries that reached the receiver during that run of
# relay and were not committed when it was killed: each holds a slot until its outcome is
# committed, so there are at most the endpoint's in-flight cap of them. Anything more
# (outcomes waiting for a commit after their slot was freed, recovery sending succeeded
# deliveries again) breaks this bound: a run acknowledges many more events than the cap.
MAX_DUPLICATES_PER_CRASH = min(CONCURRENCY, ENDPOINT_CONCURRENCY)
SYNC_MODES = pytest.mark.parametrize("sync", ["full", "normal"])


def write_config(tmp_path: Path, receiver_url: str, port: int, timeout: str = "5s",
                 sync: str = "full", enabled: bool = True) -> Path:
    path = tmp_path / "relay.toml"
    path.write_text(serve_toml(
        port, f'retry_schedule = ["100ms", "200ms", "500ms", "1s", "1s"]\ntimeout = "{timeout}"'
        f"\nconcurrency = {CONCURRENCY}\nendpoint_concurrency = {ENDPOINT_CONCURRENCY}",
        f'[storage]\npath = "{tmp_path / "relay.db"}"\nsync = "{sync}"\n'
        f'[[endpoints]]\nid = "a"\nurl = "{receiver_url}"\nenabled = {str(enabled).lower()}\n',
    ))
    return path


def duplicates_per_crash(ids: list[str], ends: list[int]) -> list[int]:
    """Crash k's duplicates: ids the receiver got during run k (up to `ends[k]` requests
    in all) and again after it, i.e. run k's sends whose outcomes were not committed when
    it was killed. Every repeat must be one of a crash's."""
    per_crash = [len(set(ids[start:end]) & set(ids[end:]))
                 for start, end in zip([0, *ends], ends, strict=False)]
    duplicates = len(ids) - len(set(ids))
    print(f"received {len(ids)}, duplicates {duplicates} ({duplicates / len(ids):.1%}), "
          f"per crash {per_crash} (bound {MAX_DUPLICATES_PER_CRASH})")
    assert duplicates <= sum(per_crash)
    return per_crash


async def ingest_until_killed(url: str, acked: list[str], stop: asyncio.Event) -> None:
    """Post events until the server dies; remember only what was acknowledged."""
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                response = await client.post("/v1/events", json={
                    "type": "order.created", "data": {"n": n}})
            except httpx.HTTPError:
                return
            if response.status_code == 202:
                acked.append(response.json()["id"])


async def crash_and_recover(tmp_path: Path, receiver: Receiver, path: str, sync: str) -> None:
    port = free_port()
    config = write_config(tmp_path, f"{receiver.url}{path}", port, sync=sync)
    relay = ServeProcess(config, port, tmp_path)
    acked: list[str] = []
    ends: list[int] = []  # how many requests the receiver had when each run was over
    for _round in range(KILLS):
        await relay.start()
        stop = asyncio.Event()
        clients = [asyncio.create_task(ingest_until_killed(relay.url, acked, stop))
                   for _ in range(8)]
        target = len(acked) + random.randint(50, 250)  # a random moment
        await eventually(lambda t=target: len(acked) >= t, 20, "acknowledged events")
        relay.kill()
        stop.set()
        for task in clients:
            with contextlib.suppress(Exception):
                await task
        ends.append(len(receiver.received(path)))  # the dead process sends nothing more
    await relay.start()
    try:
        def delivered() -> set[str]:
            return {r.headers["webhook-id"] for r in receiver.received(path)}

        await eventually(lambda: set(acked) <= delivered(), 60,
                         "every acknowledged event to arrive")
        ids = [r.headers["webhook-id"] for r in receiver.received(path)]
        assert max(duplicates_per_crash(ids, ends)) <= MAX_DUPLICATES_PER_CRASH
        for r in receiver.received(path)[:5]:
            assert json.loads(r.body)["id"] == r.headers["webhook-id"]
    finally:
        relay.terminate()


@SYNC_MODES
async def test_kill_9_during_ingest(tmp_path: Path, sync: str) -> None:
    async with Receiver() as receiver:
        await crash_and_recover(tmp_path, receiver, "/fast", sync)


@SYNC_MODES
async def test_kill_9_during_delivery(tmp_path: Path, sync: str) -> None:
    async with Receiver() as receiver:
        # Slow answers keep many deliveries in flight at the moment of the kill.
        await crash_and_recover(tmp_path, receiver, "/slow/0.2", sync)


@SYNC_MODES
async def test_kill_9_while_draining_a_backlog(tmp_path: Path, sync: str) -> None:
    """A backlog sent to a fast receiver with every slot busy while events keep coming
    (the writer's durable commits beside the outcomes'), outcomes arriving faster than
    one commit each: a crash re-sends at most the in-flight cap."""
    async with Receiver() as receiver:
        port = free_port()
        config = write_config(tmp_path, f"{receiver.url}/fast", port, sync=sync,
                              enabled=False)
        relay = ServeProcess(config, port, tmp_path)
        await relay.start()
        acked: list[str] = []
        async with httpx.AsyncClient(base_url=relay.url, timeout=10) as client:
            for batch in range(30):  # held: the endpoint is disabled in the config
                response = await client.post("/v1/events/batch", json={"events": [
                    {"type": "order.created", "data": {"n": batch * 100 + n}}
                    for n in range(100)]})
                assert response.status_code == 202, response.text
                acked += [e["id"] for e in response.json()["events"]]
        relay.terminate()
        write_config(tmp_path, f"{receiver.url}/fast", port, sync=sync)
        ends: list[int] = []
        for _round in range(KILLS):
            await relay.start()  # the held backlog is released: all of it due now
            stop = asyncio.Event()
            clients = [asyncio.create_task(ingest_until_killed(relay.url, acked, stop))
                       for _ in range(8)]
            target = len(receiver.received()) + random.randint(200, 500)
            await eventually(lambda t=target: len(receiver.received()) >= t, 20,
                             "deliveries under way")
            relay.kill()
            stop.set()
            for task in clients:
                with contextlib.suppress(Exception):
                    await task
            ends.append(len(receiver.received()))
        await relay.start()
        try:
            await eventually(lambda: set(acked) <= {
                r.headers["webhook-id"] for r in receiver.received()}, 60,
                "every acknowledged event to arrive")
            ids = [r.headers["webhook-id"] for r in receiver.received()]
            assert max(duplicates_per_crash(ids, ends)) <= MAX_DUPLICATES_PER_CRASH
        finally:
            relay.terminate()


async def test_sigterm_past_the_grace_leaves_the_attempt_for_the_next_start(
    tmp_path: Path,
) -> None:
    async with Receiver() as receiver:
        port = free_port()
        # The attempt's timeout outlasts the 5 s shutdown grace.
        config = write_config(tmp_path, f"{receiver.url}/hang", port, timeout="60s")
        relay = ServeProcess(config, port, tmp_path)
        await relay.start()
        async with httpx.AsyncClient(base_url=relay.url) as client:
            sent = await client.post("/v1/events", json={"type": "a.b", "data": {}})
        event_id = sent.json()["id"]
        await receiver.wait_for(1, "/hang")  # in flight, and it will not answer
        assert await asyncio.to_thread(relay.terminate) == 0  # after the 5 s grace
        assert "abandoned=1" in relay.log.read_text()
        config.write_text(config.read_text().replace("/hang", "/fine"))
        await relay.start()
        try:
            [got] = await receiver.wait_for(1, "/fine")
            assert got.headers["webhook-id"] == event_id
        finally:
            relay.terminate()
