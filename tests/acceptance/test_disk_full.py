"""A full disk under load, then space again, with `relay serve` on a real small
filesystem (a tmpfs): the free-space warning comes first, ingest answers 503 while the
disk is full, and once space returns relay accepts and delivers again by itself, with
the load still coming, nothing acknowledged lost and nothing left `delivering`."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.receiver import Receiver
from tests.serving import ServeProcess, eventually, free_port, serve_toml

DISK = 8 << 20  # the tmpfs
MIN_FREE = 2 << 20  # [storage] min_free_space
RATE = 20  # events a second, each with PAYLOAD bytes of data
PAYLOAD = 3000
RECOVERED = 100  # consecutive 202s after space returns: recovered, and stays so


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MB tmpfs of its own (root only; skipped where mount is not permitted)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK}", "tmpfs", str(disk)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


@dataclass
class Load:
    """Events posted at RATE a second until stopped; every answer kept in order."""

    api: httpx.AsyncClient
    statuses: list[int] = field(default_factory=list)  # 0: no answer (timeout, reset)
    accepted: list[str] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            try:
                sent = await self.api.post("/v1/events", json={
                    "type": "t.x", "data": {"n": n, "pad": "x" * PAYLOAD}})
            except httpx.HTTPError:
                self.statuses.append(0)
            else:
                self.statuses.append(sent.status_code)
                if sent.status_code == 202:
                    self.accepted.append(sent.json()["id"])
            with contextlib.suppress(TimeoutError):  # pacing, not synchronisation
                await asyncio.wait_for(self.stop.wait(), 1 / RATE)


def fill(path: Path, leave: int = 0) -> None:
    """Write `path` until its filesystem has `leave` bytes free, or none (ENOSPC)."""
    chunk = b"\0" * (64 << 10)
    with open(path, "ab") as out:
        while True:
            vfs = os.statvfs(path)
            free = vfs.f_bavail * vfs.f_frsize
            if leave and free <= leave:
                return
            try:
                out.write(chunk[:max(4096, min(len(chunk), free - leave))] if leave else chunk)
                out.flush()
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                return


def gauge(metrics: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} (\S+)$", metrics, re.MULTILINE)
    assert found, f"{name} not in /metrics"
    return float(found.group(1))


async def test_full_disk_under_load_recovers_by_itself(small_disk: Path,
                                                       tmp_path: Path) -> None:
    async with Receiver() as rx:
        port = free_port()
        config = tmp_path / "relay.toml"
        config.write_text(serve_toml(port, 'retry_schedule = ["100ms", "200ms", "400ms"]', f"""
[storage]
path = "{small_disk / 'relay.db'}"
min_free_space = "{MIN_FREE}B"
[[endpoints]]
id = "e"
url = "{rx.url}/e"
"""))
        serve = ServeProcess(config, port, tmp_path)
        await serve.start()
        try:
            async with httpx.AsyncClient(base_url=serve.url, timeout=10) as api:
                load = Load(api)
                sender = asyncio.create_task(load.run())
                await eventually(lambda: len(load.accepted) >= 2 * RATE, 30, "load to run")

                # Little space left: warned in /readyz (still ready), /metrics and the log.
                await asyncio.to_thread(fill, small_disk / "filler-1", MIN_FREE - (1 << 20))

                async def warned() -> bool:
                    ready = await api.get("/readyz")
                    return ready.status_code == 200 and bool(ready.json().get("warnings"))

                await eventually(warned, 10, "the free-space warning in /readyz")
                free = gauge((await api.get("/metrics")).text,
                             f"relay_storage_free_bytes{{path=\"{small_disk}\"}}")
                assert free < MIN_FREE
                await eventually(lambda: "storage_space_low" in serve.log.read_text(), 10,
                                 "the free-space warning in the log")

                # The disk full: ingest refuses.
                await asyncio.to_thread(fill, small_disk / "filler-2")
                full_from = len(load.statuses)
                await eventually(lambda: 503 in load.statuses[full_from:], 30,
                                 "ingest to answer 503 on the full disk")
                refused_from = full_from + load.statuses[full_from:].index(503)
                await eventually(lambda: len(load.statuses) > refused_from + 2 * RATE, 30,
                                 "two more seconds of load on the full disk")
                assert set(load.statuses[refused_from:]) <= {202, 503}

                # Space again, load continuing: back to 202 by itself, and staying there.
                (small_disk / "filler-1").unlink()
                (small_disk / "filler-2").unlink()
                freed_at = len(load.statuses)
                await eventually(
                    lambda: load.statuses[freed_at:][-RECOVERED:] == [202] * RECOVERED,
                    60, f"{RECOVERED} accepted events in a row after space returned")
                load.stop.set()
                await sender

                got = await rx.wait_for(len(load.accepted), "/e", timeout=60)
                assert set(load.accepted) <= {r.headers["webhook-id"] for r in got}

                async def none_delivering() -> bool:
                    text = (await api.get("/metrics")).text
                    return gauge(text, 'relay_deliveries{state="delivering"}') == 0 \
                        and gauge(text, 'relay_deliveries{state="pending"}') == 0

                await eventually(none_delivering, 30, "no delivery left delivering")
                assert "storage_space_recovered" in serve.log.read_text()
        finally:
            await asyncio.to_thread(serve.terminate)
