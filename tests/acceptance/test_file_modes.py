"""Files relay creates hold signing secrets: readable by their owner only, whatever the
umask of whoever started relay."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import relay
from tests.serving import ServeProcess, eventually, free_port, serve_toml


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask of a login shell: new files 0644 unless their creator says else."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def modes(folder: Path) -> dict[str, str]:
    return {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in sorted(folder.iterdir())}


@pytest.mark.usefixtures("umask_022")
async def test_database_wal_lock_and_backup_are_0600(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    port = free_port()
    config = tmp_path / "relay.toml"
    config.write_text(serve_toml(port, rest=f"""
[storage]
path = "{data / 'relay.db'}"
[[endpoints]]
id = "e"
url = "http://127.0.0.1:9/e"
"""))
    serve = ServeProcess(config, port, tmp_path)
    await serve.start()
    try:
        async with httpx.AsyncClient(base_url=serve.url, timeout=10) as api:
            sent = await api.post("/v1/events", json={"type": "t.x", "data": {"n": 1}})
            assert sent.status_code == 202, sent.text
        backup = await asyncio.to_thread(
            relay, "backup", str(data / "backup.db"), "--config", str(config), cwd=tmp_path)
        assert backup.returncode == 0, backup.stderr
        found = modes(data)
        assert {"relay.db", "relay.db-wal", "relay.db-shm", "relay.db.lock",
                "backup.db"} <= set(found)
        assert found == dict.fromkeys(found, "0o600")
    finally:
        await asyncio.to_thread(serve.terminate)
    found = modes(data)
    assert found == dict.fromkeys(found, "0o600")


@pytest.mark.usefixtures("umask_022")
async def test_a_database_readable_by_others_is_warned_about(tmp_path: Path) -> None:
    """A database an older relay made 0644 keeps its mode (the operator may have chosen
    it), and relay says so at start."""
    database = tmp_path / "relay.db"
    sqlite3.connect(database).close()  # 0644 under this umask, as older relays made it
    port = free_port()
    config = tmp_path / "relay.toml"
    config.write_text(serve_toml(port, rest=f'[storage]\npath = "{database}"\n'))
    serve = ServeProcess(config, port, tmp_path)
    await serve.start()
    try:
        assert stat.S_IMODE(database.stat().st_mode) == 0o644

        def warned() -> list[str]:
            return [line for line in serve.log.read_text().splitlines()
                    if "database_readable_by_others" in line]

        [line] = await eventually(warned, 10, "the warning in the log")
        assert "mode=0644" in line and "chmod 600" in line
    finally:
        await asyncio.to_thread(serve.terminate)
