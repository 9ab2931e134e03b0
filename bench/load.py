"""An open-loop paced event sender: `python -m bench.load --url URL --rate R --seconds S`.

POSTs one event every 1/R s for S seconds (uvloop, aiohttp, one keep-alive pool), each in
its own task, so a slow answer never delays the next send: the offered rate stays steady
whatever the server does (a closed loop would slow down with it and hide its latency). Each
event's `data.sent` is the `time.time()` just before it is sent; the receiver subtracts it
from the arrival time. Prints a JSON report: sends, errors, answer latency percentiles, and
how late the pacing ran (to show the sender itself kept up).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import aiohttp
import uvloop

from bench.harness import event_data, percentiles


async def run(url: str, rate: float, seconds: float, connections: int) -> dict[str, Any]:
    n = int(rate * seconds)
    answers: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    lag_max = 0.0
    headers = {"content-type": "application/json"}
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def post(i: int) -> None:
            nonlocal errors
            data = {**event_data(i), "sent": time.time()}
            body = json.dumps({"type": "bench.event", "data": data}).encode()
            t0 = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    statuses[resp.status] = statuses.get(resp.status, 0) + 1
                    if not 200 <= resp.status < 300:
                        errors += 1
            except aiohttp.ClientError:
                errors += 1
                return
            answers.append((time.perf_counter() - t0) * 1000.0)

        loop = asyncio.get_running_loop()
        tasks: set[asyncio.Task[None]] = set()
        start = loop.time() + 0.1
        for i in range(n):
            due = start + i / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            lag_max = max(lag_max, loop.time() - due)
            task = asyncio.create_task(post(i))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        sent_for = loop.time() - start
        await asyncio.gather(*tasks)
    return {"sent": n, "errors": errors, "statuses": statuses,
            "offered_rate": round(n / sent_for, 1) if sent_for > 0 else None,
            "answer_ms": percentiles(answers), "pacing_lag_max_ms": round(lag_max * 1000, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--rate", type=float, required=True, help="events per second")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    report = uvloop.run(run(args.url, args.rate, args.seconds, args.connections))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
