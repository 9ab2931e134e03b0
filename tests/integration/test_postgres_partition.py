"""A PostgreSQL that stops answering (a network partition that drops packets: no reset,
no error, just silence) is noticed within [storage] timeout: /readyz turns 503 and
ingest answers 503 instead of hanging; once traffic flows again both recover within
seconds and what was acknowledged before is delivered."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from relay import config as cfgmod
from tests.postgres import scratch_database
from tests.receiver import Receiver
from tests.serving import TEST_DELIVERY, eventually, running

pytestmark = [pytest.mark.postgres, pytest.mark.slow]  # its own database; seconds of silence

TIMEOUT = 2.0  # [storage] timeout in this test, seconds
MARGIN = 5.0  # what the test allows beyond it (a heartbeat period, a loaded machine)


class SilentProxy:
    """A TCP proxy on loopback in front of `host:port`. `drop()` stops forwarding in
    both directions while every socket stays open, as a partition that drops packets
    looks to both ends; `flow()` forwards again (what was held arrives then, as TCP's
    retransmissions would deliver it)."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    async def __aenter__(self) -> SilentProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.flow()
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def drop(self) -> None:
        self._flowing.clear()

    def flow(self) -> None:
        self._flowing.set()

    async def _accept(self, client_r: asyncio.StreamReader,
                      client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*self._target)
        except OSError:
            client_w.close()
            return
        for reader, writer in ((client_r, server_w), (server_r, client_w)):
            task = asyncio.create_task(self._pump(reader, writer))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await self._flowing.wait()
                data = await reader.read(65536)
                if not data:
                    break
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def proxied_database() -> AsyncIterator[tuple[str, SilentProxy]]:
    """A scratch database's URL through a SilentProxy, and the proxy."""
    async for url in scratch_database():
        parts = urlsplit(url)
        async with SilentProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy:
            netloc = f"{parts.username}@127.0.0.1:{proxy.port}"
            yield urlunsplit(parts._replace(netloc=netloc)), proxy


async def test_partition_from_postgres_is_noticed_and_recovered(
    proxied_database: tuple[str, SilentProxy],
) -> None:
    url, proxy = proxied_database
    async with Receiver() as rx:
        rx.respond("/e", *[500] * 5)  # the first 5 events wait for a retry, partitioned
        cfg = cfgmod.validate({
            "storage": {"url": url, "timeout": f"{TIMEOUT}s"},
            "endpoints": [{"id": "e", "url": f"{rx.url}/e"}],
            "delivery": {**TEST_DELIVERY, "retry_schedule": ["2s", "1s", "1s"]},
        }, {})
        async with running(cfg) as r:
            before = []
            for n in range(5):
                sent = await r.send(data={"n": n})
                assert sent.status_code == 202, sent.text
                before.append(sent.json()["id"])
            await rx.wait_for(5, "/e")  # each refused once: their retries are due in 2 s

            proxy.drop()
            try:
                async def unready() -> bool:
                    ready = await r.client.get("/readyz")
                    return ready.status_code == 503

                await eventually(unready, TIMEOUT + MARGIN, "/readyz to answer 503")
                refused = await r.client.post("/v1/events", json={"type": "t.x", "data": {}},
                                              timeout=TIMEOUT + MARGIN)
                assert refused.status_code == 503, refused.text
                assert refused.json()["error"]["code"] == "storage_unavailable"
            finally:
                proxy.flow()

            async def ready() -> bool:
                return (await r.client.get("/readyz")).status_code == 200

            await eventually(ready, TIMEOUT + MARGIN, "/readyz to answer 200 again")

            async def accepted() -> bool:
                sent = await r.client.post("/v1/events", json={"type": "t.x", "data": {}},
                                           timeout=TIMEOUT + MARGIN)
                return sent.status_code == 202

            await eventually(accepted, TIMEOUT + MARGIN, "ingest to answer 202 again")
            got = await rx.wait_for(11, "/e", timeout=30)
            delivered = {g.headers["webhook-id"] for g in got[5:]}
            assert set(before) <= delivered
