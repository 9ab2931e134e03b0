"""A fast webhook receiver for benchmarks: `python -m bench.receiver --port N`.

A bare ASGI callable (no framework, no routing library) on uvicorn with httptools and uvloop,
so the receiver costs as little CPU as possible and the sender under test is the bottleneck.

- Every POST to another path than those below is counted and answered 200 `{}`.
- POST /lat/NAME: counted too, and the body's `data.sent` (a `time.time()` the sender put
  there) is subtracted from the arrival time, so ingest-to-arrival latency is measured on
  one machine clock without any cooperation from relay.
- POST /fail...: answered 500 (counted apart as `failed`), for a receiver that always fails.
- POST /hang...: never answered; the request is held until the sender gives up and closes
  the connection (counted apart as `hanging`), for a receiver that hangs until the timeout.
- GET /count: `{"count", "failed", "hanging"}`; GET /latencies: `{path: [ms, ...]}`;
  POST /reset: everything back to zero.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_JSON = [(b"content-type", b"application/json")]
_HANG_LIMIT = 600.0  # seconds; a sender without a timeout still gets an answer eventually
_count = 0
_failed = 0
_hanging = 0
_latencies: dict[str, list[float]] = {}


async def _respond(send: Send, body: bytes, status: int = 200) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*_JSON, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _record_latency(path: str, body: bytes, arrived: float) -> None:
    try:
        sent = float(json.loads(body)["data"]["sent"])
    except (ValueError, KeyError, TypeError):
        return
    _latencies.setdefault(path, []).append((arrived - sent) * 1000.0)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Count deliveries; answer /count, /latencies and /reset. The body is read to its end
    (a real receiver would, and it keeps the connection reusable)."""
    global _count, _failed, _hanging
    if scope["type"] != "http":
        return
    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    arrived = time.time()
    method, path = scope["method"], scope["path"]
    if method == "GET" and path == "/count":
        await _respond(send, b'{"count":%d,"failed":%d,"hanging":%d}'
                       % (_count, _failed, _hanging))
    elif method == "GET" and path == "/latencies":
        await _respond(send, json.dumps(_latencies).encode())
    elif method == "POST" and path == "/reset":
        _count = _failed = _hanging = 0
        _latencies.clear()
        await _respond(send, b"{}")
    elif path.startswith("/fail"):
        _failed += 1
        await _respond(send, b'{"error":"failing on purpose"}', status=500)
    elif path.startswith("/hang"):
        _hanging += 1
        try:  # the next message is http.disconnect, when the sender times out
            await asyncio.wait_for(receive(), _HANG_LIMIT)
        except TimeoutError:
            await _respond(send, b"{}")
    else:
        _count += 1
        if path.startswith("/lat/"):
            _record_latency(path, b"".join(chunks), arrived)
        await _respond(send, b"{}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.receiver", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, loop="uvloop", http="httptools",
                lifespan="off", access_log=False, log_level="warning", backlog=2048)


if __name__ == "__main__":
    main()
