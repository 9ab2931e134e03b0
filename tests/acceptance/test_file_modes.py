"""Files relay creates hold signing secrets: readable by their owner only, whatever the
umask of whoever started relay."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServeProcess, free_port, serve_toml
from tests.helpers import relay


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
