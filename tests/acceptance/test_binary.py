"""The one-file executable: runs with no Python on PATH and delivers an event.

Slow to build, so it runs only where a binary was built: `deploy/build-binary.sh`, then
`RELAY_BINARY=dist/relay pytest tests/acceptance/test_binary.py` (.ci/run does both).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.receiver import Receiver
from tests.serving import eventually, free_port, serve_toml

BINARY = os.environ.get("RELAY_BINARY")
pytestmark = pytest.mark.skipif(not BINARY, reason="set RELAY_BINARY to a built dist/relay")


async def test_binary_serves_and_delivers_without_python(tmp_path: Path) -> None:
    assert BINARY is not None
    binary = tmp_path / "relay"
    shutil.copy(BINARY, binary)
    env = {"PATH": str(tmp_path / "no-such-dir"), "HOME": str(tmp_path)}
    started = time.monotonic()
    version = subprocess.run([str(binary), "--version"], env=env, capture_output=True,
                             text=True, timeout=60, cwd=tmp_path)
    print(f"binary {binary.stat().st_size / 1e6:.1f} MB, --version in "
          f"{time.monotonic() - started:.2f}s")
    assert version.returncode == 0 and "relay, version" in version.stdout
    async with Receiver() as rx:
        port = free_port()
        (tmp_path / "relay.toml").write_text(
            serve_toml(port, rest=f'[[endpoints]]\nid = "rx"\nurl = "{rx.url}/hook"\n'))
        log = (tmp_path / "relay.log").open("wb")
        proc = subprocess.Popen([str(binary), "serve"], env=env, cwd=tmp_path, stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            async def ready() -> bool:
                try:
                    async with httpx.AsyncClient() as client:
                        r = await client.get(f"http://127.0.0.1:{port}/readyz")
                        return r.status_code == 200
                except httpx.HTTPError:
                    return False

            await eventually(ready, 30, "the binary to be ready")
            print(f"ready {time.monotonic() - started:.2f}s after start")
            async with httpx.AsyncClient() as client:
                sent = await client.post(f"http://127.0.0.1:{port}/v1/events",
                                         json={"type": "binary.test", "data": {"ok": True}})
            assert sent.status_code == 202
            [got] = await rx.wait_for(1, "/hook")
            assert got.headers["webhook-id"] == sent.json()["id"]
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                page = await client.get("/ui/t/default/endpoints/rx")  # templates bundled
                assert page.status_code == 200 and sent.json()["id"] in page.text
                script = await client.get("/ui/static/htmx-2.0.4.min.js")  # static files
                assert script.status_code == 200 and b"htmx" in script.content
        finally:
            proc.terminate()
            assert await asyncio.to_thread(proc.wait, 20) == 0
            log.close()
