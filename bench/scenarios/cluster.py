"""CLUSTER: one and two `relay serve` processes on one PostgreSQL database, same run.

Each run ingests n events (held: the endpoint is `enabled = false`) in batches of 500,
split between the processes and posted to them at once from two threads, then releases
the endpoint on every process (config rewrite + SIGHUP) and times the drain until the
counting receiver has every delivery, as the delivery scenario does. Two processes on
this 2-core machine share the cores with PostgreSQL and the receiver, so the figure to
read is the ratio against one process, with where the CPU went (relay processes and
the PostgreSQL server, from /proc).
"""

from __future__ import annotations

import subprocess
import threading
import time
from contextlib import ExitStack
from typing import Any

from bench.harness import (
    CONCURRENCY,
    SECRET,
    Context,
    Row,
    cpu_seconds,
    event_data,
    progress,
    receiver,
    relay_server,
    scratch_postgres,
)
from bench.registry import scenario
from bench.scenarios.delivery import _drain

NAME = "cluster"


def _postgres_cpu() -> float:
    """CPU seconds of every PostgreSQL server process (backends included) so far."""
    pids = subprocess.run(["pgrep", "-x", "postgres"], capture_output=True, text=True).stdout
    return sum(cpu_seconds(int(p)) for p in pids.split())


def _run(ctx: Context, processes: int, n: int) -> Row:
    endpoint: dict[str, Any] = {"id": "bench", "url": "", "events": ["*"], "secret": SECRET,
                                "enabled": False}
    delivery = {"allow_http": True, "allow_private_networks": True,
                "concurrency": CONCURRENCY, "endpoint_concurrency": CONCURRENCY}
    label = f"{processes} process{'es' if processes > 1 else ''}"
    with receiver() as rec, scratch_postgres() as url, ExitStack() as stack:
        endpoint["url"] = rec.url
        servers = [stack.enter_context(relay_server(
            ctx.workdir / f"{processes}-{i}", delivery, [dict(endpoint)],
            ctx.workdir / f"{processes}-{i}" / "relay.log", database_url=url))
            for i in range(processes)]
        progress(f"{NAME}: {label}: ingesting {n} events (held) across them")
        events = [{"type": "bench.event", "data": event_data(i)} for i in range(n)]
        shares = [events[i::processes] for i in range(processes)]
        threads = [threading.Thread(target=srv.ingest, args=(share,))
                   for srv, share in zip(servers, shares, strict=True)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ingest_rate = n / (time.monotonic() - t0)
        progress(f"{NAME}: {label}: releasing on every process; draining")
        cpu0 = [cpu_seconds(srv.pid) for srv in servers]
        pg0 = _postgres_cpu()
        released = time.monotonic()
        for srv in servers:
            srv.endpoints[0]["enabled"] = True
            srv.reload()
        _, done = _drain(rec, n, timeout=max(120.0, n / 50))
        elapsed = done - released
        cpu = [round(100 * (cpu_seconds(s.pid) - c) / elapsed) for s, c in zip(
            servers, cpu0, strict=True)]
        pg = round(100 * (_postgres_cpu() - pg0) / elapsed)
        time.sleep(0.5)
        if (got := rec.count()) != n:
            raise RuntimeError(f"{label}: receiver counted {got} for {n} events (duplicates?)")
    return Row(NAME, label, n / elapsed, unit="deliveries/s", extra={
        "elapsed_s": round(elapsed, 3), "ingest_events_per_s": round(ingest_rate),
        "relay_cpu_pct": sum(cpu), "per_process_cpu_pct": cpu, "postgres_cpu_pct": pg,
        "notes": f"ingest {round(ingest_rate):,}/s, postgres cpu {pg}%, "
                 f"per process {cpu}"})


@scenario(NAME, help="one vs two relay serve on one PostgreSQL database: ingest and "
          "delivery rates, CPU of each", events=20_000, quick_events=5_000)
def run(ctx: Context) -> list[Row]:
    one = _run(ctx, 1, ctx.events)
    two = _run(ctx, 2, ctx.events)
    two.ratio = two.rate / one.rate
    return [one, two]
