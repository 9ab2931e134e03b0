"""A fast webhook receiver for benchmarks: `python -m bench.receiver --port N`.

A bare ASGI callable (no framework, no routing library) on uvicorn with httptools and uvloop,
so the receiver costs as little CPU as possible and the sender under test is the bottleneck.
Every POST other than /reset is counted and answered 200 `{}`; GET /count returns
`{"count": N}`; POST /reset sets the count to 0.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_JSON = [(b"content-type", b"application/json")]
_count = 0


async def _respond(send: Send, body: bytes) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [*_JSON, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Count deliveries; answer /count and /reset. The body is read to its end (a real
    receiver would, and it keeps the connection reusable)."""
    global _count
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    method, path = scope["method"], scope["path"]
    if method == "GET" and path == "/count":
        await _respond(send, b'{"count":%d}' % _count)
    elif method == "POST" and path == "/reset":
        _count = 0
        await _respond(send, b"{}")
    else:
        _count += 1
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
