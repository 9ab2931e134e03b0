"""relay served for a test: its config on a real SQLite file, relay in this process on a
loopback port (`running`) or `relay serve` as a subprocess (`ServeProcess`), and the
waiter both use (`eventually`). Fixtures live in conftest.py; test modules import from
here and tests/helpers.py."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette

from relay import config as cfgmod
from relay.runtime import Relay
from relay.server import create_app
from tests.receiver import serve_asgi

# Test deliveries go to loopback receivers over plain http, with quick retries.
TEST_DELIVERY = {
    "allow_http": True,
    "allow_private_networks": True,
    "retry_schedule": ["50ms", "100ms"],
    "timeout": "2s",
}


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def config_data(tmp_path: Path, **sections: Any) -> dict[str, Any]:
    return merge({"storage": {"path": str(tmp_path / "relay.db")}, "delivery": TEST_DELIVERY},
                 sections)


@dataclass
class Running:
    relay: Relay
    url: str
    client: httpx.AsyncClient
    app: Starlette

    async def send(self, type_: str = "lead.qualified", data: dict[str, Any] | None = None,
                   **extra: Any) -> httpx.Response:
        return await self.client.post("/v1/events",
                                       json={"type": type_, "data": data or {}, **extra})


def on_port(loaded: cfgmod.Loaded, port: int) -> cfgmod.Loaded:
    """The config with `server.listen` moved to `port` (its host kept)."""
    server = loaded.config.server
    listen = f"{server.listen.rpartition(':')[0]}:{port}"
    moved = cfgmod.ServerConfig.model_validate({**server.model_dump(), "listen": listen})
    return dataclasses.replace(loaded, config=loaded.config.model_copy(
        update={"server": moved}))


@asynccontextmanager
async def running(loaded: cfgmod.Loaded, **kwargs: Any) -> AsyncIterator[Running]:
    """relay started as `relay serve` would, its HTTP side on a free loopback port that
    its config's `server.listen` names (so its default public_url is where it is)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        relay = Relay(on_port(loaded, sock.getsockname()[1]), **kwargs)
        await relay.start()
        try:
            app = create_app(relay)
            async with serve_asgi(app, sock=sock) as url, httpx.AsyncClient(
                base_url=url, timeout=10
            ) as client:
                yield Running(relay, url, client, app)
        finally:
            await relay.stop(grace=1.0)


async def eventually(check: Callable[[], Any], timeout: float = 10.0,
                     message: str = "condition") -> Any:
    """Poll an async or sync check until it returns a truthy value, with a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        await asyncio.sleep(0.02)


def serve_toml(port: int, delivery: str = "", rest: str = "") -> str:
    """A relay.toml for `relay serve` on a loopback port, delivering to loopback receivers
    over plain http; `delivery` adds [delivery] keys, `rest` further sections."""
    return (f'[server]\nlisten = "127.0.0.1:{port}"\n'
            f"[delivery]\nallow_http = true\nallow_private_networks = true\n{delivery}\n{rest}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServeProcess:
    """`relay serve` in a subprocess, for crash and signal tests."""

    def __init__(self, config_path: Path, port: int, cwd: Path) -> None:
        self.config_path = config_path
        self.url = f"http://127.0.0.1:{port}"
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = cwd / "relay.log"

    async def start(self, timeout: float = 20.0) -> None:
        """Start and wait until /readyz answers 200 (without blocking the event loop, so
        receivers in this process keep serving). One still not ready at the deadline is
        aborted, its faulthandler writing every thread's stack to the log, whose end the
        failure shows: a hang on a CI machine says where it was."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1"}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "relay", "serve", "--config", str(self.config_path)],
                cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT, env=env,
            )
        proc = self.proc

        async def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"relay serve exited: {self.log.read_text()}")
            try:
                async with httpx.AsyncClient() as client:
                    return (await client.get(f"{self.url}/readyz", timeout=1)).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            await eventually(ready, timeout, f"relay serve to be ready; log: {self.log}")
        except AssertionError:
            if proc.poll() is not None:
                raise  # it exited: the message has its log
            proc.send_signal(signal.SIGABRT)  # faulthandler: every thread's stack to the log
            proc.wait(10)
            tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-80:])
            raise AssertionError(f"relay serve not ready after {timeout}s; the end of "
                                 f"{self.log}, its threads' stacks last:\n{tail}") from None

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def terminate(self, timeout: float = 20.0) -> int:
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(timeout)
