"""Bare HTTP clients, the baselines relay's delivery path is compared with.

`python -m bench.clients {aiohttp,httpx} --url URL --requests N --concurrency C` POSTs N
signed envelopes with C concurrent workers on one keep-alive pool of C connections (uvloop,
as relay uses), and prints a JSON report. Bodies are built before the clock starts (relay
reads them ready-made from its database); the signature is computed per request, as relay
does, since its timestamp is the send time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import uvloop

from bench.harness import envelope
from relay.delivery.signing import sign

Post = Callable[[str, dict[str, str], bytes], Awaitable[int]]


def _headers(secret: str, i: int, body: bytes) -> dict[str, str]:
    msg_id = f"evt_{i:026d}"
    return {"content-type": "application/json", "user-agent": "bench",
            **sign("standard-webhooks", [secret], msg_id, int(time.time()), body)}


async def _drive(post: Post, url: str, bodies: list[bytes], concurrency: int,
                 secret: str) -> dict[str, Any]:
    """C workers take the next request index until all are sent; count non-2xx as errors."""
    nxt = iter(range(len(bodies)))
    errors = 0

    async def worker() -> None:
        nonlocal errors
        for i in nxt:
            body = bodies[i]
            status = await post(url, _headers(secret, i, body), body)
            if not 200 <= status < 300:
                errors += 1

    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {"requests": len(bodies), "errors": errors, "elapsed": elapsed, "cpu": cpu,
            "rate": len(bodies) / elapsed}


async def run_aiohttp(url: str, bodies: list[bytes], concurrency: int,
                      secret: str) -> dict[str, Any]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def post(url: str, headers: dict[str, str], body: bytes) -> int:
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
                return resp.status

        return await _drive(post, url, bodies, concurrency, secret)


async def run_httpx(url: str, bodies: list[bytes], concurrency: int,
                    secret: str) -> dict[str, Any]:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:
        async def post(url: str, headers: dict[str, str], body: bytes) -> int:
            resp = await client.post(url, content=body, headers=headers)
            return resp.status_code

        return await _drive(post, url, bodies, concurrency, secret)


CLIENTS = {"aiohttp": run_aiohttp, "httpx": run_httpx}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.clients", description=__doc__)
    parser.add_argument("client", choices=sorted(CLIENTS))
    parser.add_argument("--url", required=True)
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--secret", required=True)
    args = parser.parse_args()
    bodies = [envelope(i) for i in range(args.requests)]
    report = uvloop.run(CLIENTS[args.client](args.url, bodies, args.concurrency, args.secret))
    report["client"] = args.client
    report["body_bytes"] = len(bodies[0])
    print(json.dumps(report))


if __name__ == "__main__":
    main()
