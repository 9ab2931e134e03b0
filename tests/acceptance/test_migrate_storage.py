"""`relay migrate-storage` round trip: a populated SQLite database moved into PostgreSQL,
then served from there: every pending and held delivery delivered, every secret still
verifying, the history copied whole; a second copy into the same database refused."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
from pathlib import Path

from standardwebhooks import Webhook

from relay import config as cfgmod
from tests.receiver import Receiver
from tests.serving import TEST_DELIVERY, eventually, running


def endpoints(receiver: Receiver, ok_b: bool) -> list[dict[str, object]]:
    return [
        {"id": "a", "url": f"{receiver.url}/ok", "events": ["a.*"]},
        {"id": "b", "url": f"{receiver.url}/{'ok' if ok_b else 'status/500'}/b",
         "events": ["b.*"], "retry_schedule": ["1m", "1m"]},
        {"id": "c", "url": f"{receiver.url}/status/500", "events": ["c.*"],
         "retry_schedule": []},
    ]


async def migrate(database: Path, url: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "relay", "migrate-storage", "--from", str(database), "--to", url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def test_sqlite_moved_to_postgres_and_served_from_there(tmp_path: Path,
                                                              pg_url: str) -> None:
    database = tmp_path / "relay.db"
    async with Receiver() as receiver:
        sqlite_config = cfgmod.validate({
            "storage": {"path": str(database)}, "delivery": TEST_DELIVERY,
            "endpoints": endpoints(receiver, ok_b=False)}, {})
        async with running(sqlite_config) as r:
            api = (await r.client.post("/v1/webhooks", json={
                "name": "api", "url": f"{receiver.url}/api", "events": ["d.*"]})).json()
            await r.client.patch(f"/v1/webhooks/{api['id']}", json={"is_paused": True})
            for n in range(3):
                for kind in "abcd":
                    assert (await r.send(f"{kind}.x", {"n": n})).status_code == 202
            await receiver.wait_for(3, "/ok", timeout=10)
            await receiver.wait_for(3, "/status/500/b", timeout=10)
            await receiver.wait_for(3, "/status/500", timeout=10)
            await r.relay.scheduler.wait_idle(10)
            secrets = {row.id: row.secret for row in await r.relay.store.list_endpoints()}
            states = await r.relay.store.counts()
        assert states == {"succeeded": 3, "pending": 3, "failed": 3, "held": 3}
        before = {t: sqlite3.connect(database).execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                  for t in ("endpoints", "events", "deliveries", "attempts")}

        code, out = await migrate(database, pg_url)
        assert code == 0, out
        assert ", ".join(f"{n} {t}" for t, n in before.items()) in out

        seen = len(receiver.requests)
        pg_config = cfgmod.validate({
            "storage": {"url": pg_url}, "delivery": TEST_DELIVERY,
            "endpoints": endpoints(receiver, ok_b=True)}, {})
        # Two minutes later (a clock ahead): b's retries are due.
        async with running(pg_config, clock=lambda: time.time() + 120) as r:
            moved = {row.id: row.secret for row in await r.relay.store.list_endpoints()}
            assert moved == secrets
            await r.client.patch(f"/v1/webhooks/{api['id']}", json={"is_paused": False})
            await eventually(lambda: _counts(r.relay.store, {"succeeded": 9, "failed": 3}),
                             20, "the pending and held deliveries to go out")
            after = receiver.requests[seen:]
            assert sorted(q.path for q in after) == ["/api"] * 3 + ["/ok/b"] * 3
            for request in after:
                endpoint = "b" if request.path == "/ok/b" else api["id"]
                Webhook(secrets[endpoint]).verify(request.body, request.headers)
            [failed] = [d for d in await r.relay.store.list_deliveries("c")][:1]
            assert len(await r.relay.store.attempts_of(failed.id)) == 1

        code, out = await migrate(database, pg_url)
        assert code == 1 and "already holds relay data" in out, out


async def _counts(store: object, expected: dict[str, int]) -> bool:
    counts = await store.counts()  # type: ignore[attr-defined]
    return bool(counts == expected)
