"""A real HTTP receiver on a loopback port, served by uvicorn inside the test's event loop.

Tests point deliveries at it and assert on what arrived. Built-in routes (every request is
recorded first, whatever its path):

    any path           200 {"ok": true}
    /status/<code>     that status
    /slow/<seconds>    waits, then 200 (answers 503 at once when the receiver stops)
    /redirect          302 Location: /ok
    /hang              never answers (until the receiver stops: 503)

`respond(path, ...)` scripts the next answers on a path; built-in behaviour resumes after.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# A scripted answer: a status, or (status, headers), or (status, headers, body).
Scripted = int | tuple[int, dict[str, str]] | tuple[int, dict[str, str], bytes]

_OK_BODY = b'{"ok":true}'
_JSON = (b"content-type", b"application/json")


class _Server(uvicorn.Server):
    """uvicorn without signal handlers (the test runner owns signals), with prompt start
    and stop notifications instead of uvicorn's 0.1 s polling ticks."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()
        self._exit = asyncio.Event()

    def install_signal_handlers(self) -> None:  # older uvicorn
        pass

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()

    def request_exit(self) -> None:
        self.should_exit = True
        self._exit.set()

    async def main_loop(self) -> None:
        # on_tick(0) refreshes the Date header; once a second is what uvicorn does too.
        while not await self.on_tick(0):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exit.wait(), 1.0)

    async def shutdown(self, sockets: Any = None) -> None:
        """uvicorn's shutdown minus its fixed 0.1 s sleeps: stop listening, close idle
        connections, give in-flight requests a moment (the app answers hanging ones at
        once), then cancel what is left."""
        for server in self.servers:
            server.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.timeout_graceful_shutdown
        state = self.server_state
        while (state.connections or state.tasks) and loop.time() < deadline:
            await asyncio.sleep(0.005)  # shutdown only; never used to synchronise a test
        for task in list(state.tasks):
            task.cancel()
        for server in self.servers:
            await server.wait_closed()
        await self.lifespan.shutdown()


@asynccontextmanager
async def serve_asgi(app: ASGIApp, *, graceful: float = 2.0, port: int = 0,
                     sock: socket.socket | None = None) -> AsyncIterator[str]:
    """Serve an ASGI app on 127.0.0.1 (`port`, default a free one; or the listening
    socket `sock`) in this event loop; yields its base URL and stops cleanly on exit."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", log_config=None,
        access_log=False, lifespan="off", ws="none", interface="asgi3", proxy_headers=False,
        timeout_graceful_shutdown=graceful,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=None if sock is None else [sock]),
                               name="receiver-uvicorn")
    ready = asyncio.create_task(server.ready.wait())
    try:
        await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        ready.cancel()
    if not server.ready.is_set():
        await task  # raises what uvicorn raised (e.g. SystemExit on a startup failure)
        raise RuntimeError("uvicorn stopped before it started")
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.request_exit()
        await task


@dataclass
class Received:
    """One request as the receiver saw it."""

    path: str
    headers: dict[str, str]  # lowercased names; repeated headers joined with ", "
    body: bytes
    at: float  # time.monotonic() when it was recorded
    method: str = "POST"
    query: str = ""

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """The receiver; `async with Receiver() as rx:` then point deliveries at `rx.url`."""

    url: str = ""
    requests: list[Received] = field(default_factory=list)
    port: int = 0  # 0: a free port

    def __post_init__(self) -> None:
        self._scripts: dict[str, deque[Scripted]] = {}
        self._changed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._serving: contextlib.AbstractAsyncContextManager[str] | None = None

    async def __aenter__(self) -> Receiver:
        self._serving = serve_asgi(self._app, port=self.port)
        self.url = await self._serving.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stopping.set()  # hanging and slow handlers answer now, so uvicorn can stop
        assert self._serving is not None
        await self._serving.__aexit__(None, None, None)

    # --- assertions -------------------------------------------------------------------

    def received(self, path: str | None = None) -> list[Received]:
        """Requests so far (on `path` only, if given), oldest first."""
        if path is None:
            return list(self.requests)
        return [r for r in self.requests if r.path == path]

    async def wait_for(self, count: int, path: str | None = None,
                       timeout: float = 10.0) -> list[Received]:
        """Wait until at least `count` requests (on `path`) arrived; return them all."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(got := self.received(path)) < count:
            changed = self._changed
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(self._timeout_message(count, path, timeout, got))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)
        return got

    def _timeout_message(self, count: int, path: str | None, timeout: float,
                         got: list[Received]) -> str:
        where = f"on {path}" if path else "in total"
        paths: dict[str, int] = {}
        for r in self.requests:
            paths[r.path] = paths.get(r.path, 0) + 1
        return (f"receiver: expected {count} request(s) {where} within {timeout}s, got "
                f"{len(got)}; all requests by path: {paths or 'none'}")

    def respond(self, path: str, *statuses: Scripted) -> None:
        """Script the next answers on `path`, in order (after any already scripted)."""
        self._scripts.setdefault(path, deque()).extend(statuses)

    # --- the ASGI app -----------------------------------------------------------------

    def _record(self, scope: Scope, body: bytes) -> None:
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope["headers"]:
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        self.requests.append(Received(
            path=scope["path"], headers=headers, body=body, at=time.monotonic(),
            method=scope["method"], query=scope["query_string"].decode("latin-1"),
        ))
        # Wake every waiter; each re-checks its own condition against a fresh event.
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        path: str = scope["path"]
        self._record(scope, b"".join(chunks))

        script = self._scripts.get(path)
        if script:
            answer = script.popleft()
            if isinstance(answer, int):
                await _answer(send, answer)
            elif len(answer) == 2:
                await _answer(send, answer[0], answer[1])
            else:
                await _answer(send, answer[0], answer[1], answer[2])
        elif path.startswith("/status/"):
            code = path.removeprefix("/status/")
            if code.isdigit() and 200 <= int(code) <= 599:
                await _answer(send, int(code))
            else:
                await _answer(send, 400, body=b'{"error":"status must be 200..599"}')
        elif path.startswith("/slow/"):
            try:
                seconds = float(path.removeprefix("/slow/"))
            except ValueError:
                await _answer(send, 400, body=b'{"error":"seconds must be a number"}')
                return
            try:
                async with asyncio.timeout(seconds):
                    await self._stopping.wait()
            except TimeoutError:
                await _answer(send, 200)
            else:
                await _answer(send, 503)
        elif path == "/redirect":
            await _answer(send, 302, {"Location": "/ok"})
        elif path == "/hang":
            await self._stopping.wait()
            await _answer(send, 503)
        else:
            await _answer(send, 200)


async def _answer(send: Send, status: int, headers: dict[str, str] | None = None,
                  body: bytes | None = None) -> None:
    if body is None:
        body = _OK_BODY if 200 <= status < 300 else b'{"status":%d}' % status
    if status in (204, 304):
        body = b""
    raw = [_JSON, (b"content-length", str(len(body)).encode())]
    if headers:
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()
               if k.lower() != "content-length"] + raw
        if any(k.lower() == "content-type" for k in headers):
            raw.remove(_JSON)
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
