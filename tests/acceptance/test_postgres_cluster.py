"""Several real `relay serve` processes on one PostgreSQL database, delivering to loopback
receivers: one queue, no duplicate, none missing, caps held by the cluster, crashes and a
database outage survived.

The outage is made by refusing and cutting the connections of this test's own database
(ALTER DATABASE ... ALLOW_CONNECTIONS false, pg_terminate_backend), not by restarting the
server, which other tests share.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from tests.helpers import FlakyReceiver, assert_in_order
from tests.postgres import terminate
from tests.receiver import Receiver
from tests.serving import ServeProcess, eventually, free_port, serve_toml


class CountingReceiver(Receiver):
    """A receiver that also counts the requests it is answering at once."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.inflight = 0
        self.peak = 0

    async def _app(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.inflight += 1
        self.peak = max(self.peak, self.inflight)
        try:
            await super()._app(scope, receive, send)
        finally:
            self.inflight -= 1

    def ids(self) -> list[str]:
        return [r.headers["webhook-id"] for r in self.requests]


@pytest.fixture
async def receiver() -> AsyncIterator[CountingReceiver]:
    async with CountingReceiver() as rx:
        yield rx


def start_relays(tmp_path: Path, url: str, target: str, count: int = 2,
                 endpoint: str = "", delivery: str = "") -> list[ServeProcess]:
    relays = []
    for n in range(count):
        port = free_port()
        home = tmp_path / f"relay{n}"
        home.mkdir()
        config = home / "relay.toml"
        config.write_text(serve_toml(
            port, 'retry_schedule = ["100ms", "200ms", "500ms", "1s", "1s"]\n' + delivery,
            f'[storage]\nurl = "{url}"\n'
            f'[[endpoints]]\nid = "a"\nurl = "{target}"\n{endpoint}\n',
        ))
        relays.append(ServeProcess(config, port, home))
    return relays


async def post_events(url: str, count: int, prefix: str, clients: int = 8) -> list[str]:
    """Post `count` events over `clients` connections; the acknowledged ids."""
    acked: list[str] = []

    async def client(share: range) -> None:
        # 30 s: a peer stopped mid-transaction holds its locks until the database's 5 s
        # idle-in-transaction timeout ends its session, and CI's 2 cores are busy.
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            for n in share:
                response = await http.post("/v1/events", json={
                    "type": "order.created", "data": {"n": n}, "id": f"{prefix}-{n}"})
                assert response.status_code == 202, response.text
                acked.append(response.json()["id"])

    await asyncio.gather(*(client(range(i, count, clients)) for i in range(clients)))
    return acked


async def post_batches(url: str, count: int, prefix: str, size: int = 100) -> list[str]:
    """Post `count` events in batches of `size`, four batches at a time; the ids."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        async def batch(start: int) -> list[str]:
            response = await http.post("/v1/events/batch", json={"events": [
                {"type": "order.created", "data": {"n": n}, "id": f"{prefix}-{n}"}
                for n in range(start, min(start + size, count))]})
            assert response.status_code == 202, response.text
            return [e["id"] for e in response.json()["events"]]

        acked: list[str] = []
        starts = list(range(0, count, size))
        for i in range(0, len(starts), 4):
            for ids in await asyncio.gather(*(batch(s) for s in starts[i:i + 4])):
                acked += ids
        return acked


async def stop_all(relays: list[ServeProcess]) -> None:
    for relay in relays:
        if relay.proc is not None and relay.proc.poll() is None:
            relay.terminate()


async def test_two_processes_deliver_every_event_once_within_the_cap(
        tmp_path: Path, pg_url: str, receiver: CountingReceiver) -> None:
    relays = start_relays(tmp_path, pg_url, f"{receiver.url}/slow/0.005",
                          endpoint="endpoint_concurrency = 4")
    try:
        await asyncio.gather(*(r.start() for r in relays))
        acked = await asyncio.gather(*(post_batches(r.url, 1000, f"p{i}")
                                       for i, r in enumerate(relays)))
        expected = {eid for ids in acked for eid in ids}
        assert len(expected) == 2000
        await receiver.wait_for(2000, timeout=90)
        ids = receiver.ids()
        assert len(ids) == len(set(ids)) == 2000 and set(ids) == expected
        assert receiver.peak <= 4, f"{receiver.peak} requests in flight at once"
        # Not asserted: that both took part. On one endpoint capped at 4, the process
        # whose request just finished claims the freed slot first (its unrecorded outcomes
        # leave its own count, not the other's), and one CI run saw the other send none
        # of the 2,000: a fairness gap, not a loss (issue 12).
    finally:
        await stop_all(relays)


async def test_two_processes_keep_a_fifo_endpoint_in_order(tmp_path: Path, pg_url: str) -> None:
    async with FlakyReceiver(fail_every=5, failures=2) as rx:
        relays = start_relays(tmp_path, pg_url, rx.url, endpoint='ordering = "fifo"')
        try:
            await asyncio.gather(*(r.start() for r in relays))
            async with httpx.AsyncClient(timeout=30) as http:
                for n in range(100):  # one sequence, taken in turn by both processes
                    response = await http.post(f"{relays[n % 2].url}/v1/events", json={
                        "type": "order.created", "data": {"n": n}})
                    assert response.status_code == 202, response.text
            await eventually(lambda: len(rx.succeeded) == 100, 60, "all 100 delivered")
            assert_in_order(rx, 100)
            assert rx.max_in_flight == 1
            # Both took part.
            logs = [(r.cwd / "relay.log").read_text().count("action=attempt") for r in relays]
            assert all(n > 0 for n in logs), logs
        finally:
            await stop_all(relays)


async def test_kill_9_mid_delivery_the_other_delivers_after_the_lease(
        tmp_path: Path, pg_url: str, receiver: CountingReceiver) -> None:
    first, second = start_relays(tmp_path, pg_url, f"{receiver.url}/slow/1",
                                 endpoint="endpoint_concurrency = 2", delivery='timeout = "2s"')
    con = await asyncpg.connect(pg_url)
    try:
        await asyncio.gather(first.start(), second.start())
        assert second.proc is not None
        second.proc.send_signal(signal.SIGSTOP)  # so the first takes the claims
        acked = await post_events(first.url, 6, "k", clients=2)
        await eventually(lambda: receiver.inflight == 2, 10, "the first to use both slots")
        first.kill()
        killed_at = time.monotonic()
        held = {r[0] for r in await con.fetch(
            "SELECT event_id FROM deliveries WHERE state = 'delivering'")}
        assert len(held) == 2
        second.proc.send_signal(signal.SIGCONT)
        await eventually(lambda: _count(con, "succeeded", 6), 60, "every delivery to succeed")
        assert set(receiver.ids()) == set(acked)
        # What the dead process held went out again only once its lease (2 s + 10 s from
        # the claim or the last renewal, at most 2 s before the kill) ran out.
        for event_id in held:
            resent = [r.at for r in receiver.requests if r.headers["webhook-id"] == event_id]
            assert len(resent) == 2 and resent[1] > killed_at + 9, (resent, killed_at)
    finally:
        if second.proc is not None:
            second.proc.send_signal(signal.SIGCONT)
        await con.close()
        await stop_all([first, second])


async def test_a_slow_request_keeps_its_lease_and_gets_no_duplicate(
        tmp_path: Path, pg_url: str, receiver: CountingReceiver) -> None:
    relays = start_relays(tmp_path, pg_url, f"{receiver.url}/slow/5",
                          endpoint="endpoint_concurrency = 1", delivery='timeout = "8s"')
    con = await asyncpg.connect(pg_url)
    try:
        await asyncio.gather(*(r.start() for r in relays))
        [acked] = await post_events(relays[0].url, 1, "s", clients=1)
        await receiver.wait_for(1, timeout=10)

        async def lease() -> float:
            return float(await con.fetchval(
                "SELECT lease_until FROM deliveries WHERE state = 'delivering'") or 0)

        first = await lease()
        await eventually(lambda: _later(lease, first), 10, "the lease to be renewed")
        # A takeover as of the first lease's end finds nothing to take: it was renewed.
        assert await con.fetchval(
            "SELECT count(*) FROM deliveries WHERE state = 'delivering' AND lease_until < $1",
            first + 0.1) == 0
        await eventually(lambda: _count(con, "succeeded"), 20, "the delivery to succeed")
        assert receiver.ids() == [acked]
    finally:
        await con.close()
        await stop_all(relays)


async def _later(lease: Any, than: float) -> bool:
    return bool(await lease() > than)


async def _count(con: asyncpg.Connection[asyncpg.Record], state: str, least: int = 1) -> bool:
    """At least `least` deliveries in `state`."""
    n = await con.fetchval("SELECT count(*) FROM deliveries WHERE state = $1", state)
    return int(n) >= least


async def test_database_outage_both_recover_on_their_own(
        tmp_path: Path, pg_url: str, receiver: CountingReceiver) -> None:
    relays = start_relays(tmp_path, pg_url, f"{receiver.url}/ok")
    database = urlsplit(pg_url).path.strip("/")
    admin = await asyncpg.connect(pg_url.rsplit("/", 1)[0] + "/postgres")
    try:
        await asyncio.gather(*(r.start() for r in relays))
        before = await post_events(relays[0].url, 50, "b")
        await admin.execute(f"ALTER DATABASE {database} WITH ALLOW_CONNECTIONS false")
        await terminate(database)

        async def readyz(relay: ServeProcess) -> int:
            async with httpx.AsyncClient() as http:
                return (await http.get(f"{relay.url}/readyz", timeout=5)).status_code

        for relay in relays:
            await eventually(lambda r=relay: _is(readyz(r), 503), 15, "503 while away")
        async with httpx.AsyncClient() as http:
            refused = await http.post(f"{relays[1].url}/v1/events", timeout=15,
                                      json={"type": "order.created", "data": {}})
        assert refused.status_code == 503
        await admin.execute(f"ALTER DATABASE {database} WITH ALLOW_CONNECTIONS true")
        for relay in relays:
            await eventually(lambda r=relay: _is(readyz(r), 200), 15, "ready again")
        after = await post_events(relays[1].url, 50, "a")
        await eventually(lambda: set(before + after) <= set(receiver.ids()), 30,
                         "every acknowledged event delivered")
    finally:
        await admin.execute(f"ALTER DATABASE {database} WITH ALLOW_CONNECTIONS true")
        await admin.close()
        await stop_all(relays)


async def _is(status: Any, expected: int) -> bool:
    try:
        return bool(await status == expected)
    except httpx.HTTPError:
        return False


async def test_an_api_endpoint_created_on_one_is_used_by_the_other_within_a_second(
        tmp_path: Path, pg_url: str, receiver: CountingReceiver) -> None:
    relays = start_relays(tmp_path, pg_url, f"{receiver.url}/ok")
    try:
        await asyncio.gather(*(r.start() for r in relays))
        async with httpx.AsyncClient() as http:
            created = await http.post(f"{relays[0].url}/v1/webhooks", json={
                "name": "api", "url": f"{receiver.url}/api", "events": ["api.*"]})
            assert created.status_code == 201, created.text
            made = time.monotonic()

            async def matched() -> bool:
                answer = await http.post(f"{relays[1].url}/v1/events",
                                         json={"type": "api.ping", "data": {}})
                return bool(answer.json()["deliveries"] == 2)  # "a" and the new one

            await eventually(matched, 5, "the other process to see the endpoint")
            assert time.monotonic() - made < 1.5
        got = await receiver.wait_for(1, "/api", timeout=10)
        assert {json.loads(r.body)["type"] for r in got} == {"api.ping"}
        # relay status lists both processes (each once its heartbeat has written its row,
        # which a loaded machine may delay); their config files agree.
        pids = {str(r.proc.pid) for r in relays if r.proc is not None}
        out = ""

        async def both_listed() -> bool:
            nonlocal out
            status = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "relay", "status", "--config",
                str(relays[0].config_path),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
            out = (await status.communicate())[0].decode()
            assert status.returncode == 0, out
            rows = [line.split() for line in out.splitlines() if line.startswith("relay:")]
            return {row[2] for row in rows} == pids

        deadline = time.monotonic() + 15
        while not await both_listed():
            assert time.monotonic() < deadline, f"relay status never listed both: {out}"
        assert "DIFFERS" not in out
    finally:
        await stop_all(relays)
