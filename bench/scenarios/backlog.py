"""BACKLOG: 1,000,000 waiting deliveries: relay's peak RSS, ingest rate vs an empty queue,
and the time to drain them.

Targets: peak RSS <= 150 MB; ingest with the backlog >= 0.9x the empty-queue rate.

Two `relay serve` processes run side by side, each with one endpoint held (`enabled =
false`): A stays (nearly) empty, B gets the backlog through POST /v1/events/batch (500 events
per batch, one ready-made body posted over 2 keep-alive connections). Then the ingest rate
is measured the same way on both, alternately (A, B, A, B...), with wrk at 32 connections on
POST /v1/events for `seconds` each (after a 1 s warm-up): the ratio is B / A per pair, the
median reported. The alternation keeps the VM's drift out of the ratio. Finally B's
endpoint is released (config rewrite + SIGHUP) and the clock runs until the receiver has
counted every event B accepted. RSS is VmHWM from /proc: once for ingest (start to the
release), then reset (clear_refs) and read again after the drain.

The backlog is `held` while ingest is compared: held rows are not in the claim index (a
partial index on pending rows), so this measures a large database and table, not a large
claim queue; the drain then runs the full claim queue. Caps: concurrency 64,
endpoint_concurrency 64, as in the delivery scenario; stderr to a file.
"""

from __future__ import annotations

import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.harness import (
    CONCURRENCY,
    SECRET,
    Context,
    Http,
    Receiver,
    RelayServer,
    Row,
    cpu_seconds,
    event_data,
    ingested,
    memory_kib,
    progress,
    receiver,
    relay_server,
    reset_peak_rss,
)
from bench.registry import scenario
from bench.scenarios.ingest import CONNECTIONS, measure

NAME = "backlog"
BATCH = 500
LOADERS = 2  # connections posting batches at once
TARGET_RSS_MB = 150.0
TARGET_INGEST_RATIO = 0.9
DELIVERY = {"allow_http": True, "allow_private_networks": True,
            "concurrency": CONCURRENCY, "endpoint_concurrency": CONCURRENCY}


def _mb(kib: int) -> float:
    return round(kib / 1024, 1)


def fill(srv: RelayServer, n: int) -> dict[str, Any]:
    """POST n events in batches of BATCH over LOADERS connections; 429s are waited out."""
    body = json.dumps({"events": [{"type": "bench.event", "data": event_data(i)}
                                  for i in range(BATCH)]}).encode()
    batches = n // BATCH
    counter = iter(range(batches))
    throttled = 0

    def loader() -> None:
        nonlocal throttled
        conn = Http(srv.port, timeout=120.0)
        try:
            for k in counter:
                while True:
                    status, raw = conn.post_raw("/v1/events/batch", body)
                    if status == 202:
                        break
                    if status != 429:
                        raise RuntimeError(f"batch ingest answered {status}: {raw[:200]!r}")
                    throttled += 1
                    time.sleep(0.05)
                if (k + 1) % (100_000 // BATCH) == 0:
                    progress(f"{NAME}: {(k + 1) * BATCH:,} events in")
        finally:
            conn.close()

    t0 = time.monotonic()
    with ThreadPoolExecutor(LOADERS) as pool:
        for future in [pool.submit(loader) for _ in range(LOADERS)]:
            future.result()
    elapsed = time.monotonic() - t0
    return {"events": batches * BATCH, "elapsed_s": round(elapsed, 1),
            "events_per_s": round(batches * BATCH / elapsed), "answers_429": throttled}


def _db_mb(workdir: Path) -> float:
    return round(sum(p.stat().st_size for p in workdir.glob("relay.db*")) / 2**20, 1)


def drain(srv: RelayServer, rec: Receiver, expected: int) -> dict[str, Any]:
    """Release the endpoint and poll (every 0.5 s: light) until `expected` arrived."""
    srv.endpoints[0]["enabled"] = True
    cpu0 = cpu_seconds(srv.pid)
    rss_max = 0
    released = time.monotonic()
    srv.reload()
    deadline = released + expected / 500 + 120
    next_note = released + 30
    while (count := rec.count()) < expected:
        now = time.monotonic()
        if now > deadline:
            raise TimeoutError(f"{NAME}: drained {count}/{expected} by the deadline")
        rss_max = max(rss_max, memory_kib(srv.pid)["VmRSS"])
        if now >= next_note:
            progress(f"{NAME}: drained {count:,}/{expected:,} "
                     f"({count / (now - released):,.0f}/s)")
            next_note += 30
        time.sleep(0.5)
    elapsed = time.monotonic() - released
    return {"drain_s": round(elapsed, 1), "drain_rate": round(expected / elapsed),
            "drain_cpu_pct": round(100 * (cpu_seconds(srv.pid) - cpu0) / elapsed),
            "drain_rss_sampled_max_mb": _mb(rss_max)}


@scenario(NAME, help="1M held deliveries: peak RSS (<= 150 MB), ingest vs empty queue "
          "(>= 0.9x), drain time", events=1_000_000, quick_events=100_000)
def run(ctx: Context) -> list[Row]:
    n = ctx.events
    seconds, rounds = (3.0, 1) if ctx.quick else (5.0, 2)
    rounds = max(rounds, int(ctx.options.get("repeat", 1)))
    with receiver() as rec:
        def endpoint() -> dict[str, Any]:
            return {"id": "backlog", "url": rec.url, "events": ["*"], "secret": SECRET,
                    "enabled": False}

        wa, wb = ctx.workdir / "empty", ctx.workdir / "backlog"
        with relay_server(wa, DELIVERY, [endpoint()], wa / "relay.log") as empty, \
                relay_server(wb, DELIVERY, [endpoint()], wb / "relay.log") as full:
            start_rss = memory_kib(full.pid)["VmRSS"]
            progress(f"{NAME}: filling relay B with {n:,} held events "
                     f"(batches of {BATCH}, {LOADERS} connections)")
            filled = fill(full, n)
            after_fill = memory_kib(full.pid)
            progress(f"{NAME}: {filled['events_per_s']:,} events/s; RSS "
                     f"{_mb(after_fill['VmRSS'])} MB, peak {_mb(after_fill['VmHWM'])} MB; "
                     f"database {_db_mb(wb)} MB")
            pairs: list[tuple[dict[str, Any], dict[str, Any]]] = []
            for i in range(rounds):
                progress(f"{NAME}: ingest rate, round {i + 1} of {rounds}: wrk "
                         f"{CONNECTIONS} connections, {seconds:g} s on A (empty), then B")
                pairs.append((measure(empty.pid, empty.port, seconds),
                              measure(full.pid, full.port, seconds)))
            ingest_mem = memory_kib(full.pid)
            expected = ingested(full)
            db_mb = _db_mb(wb)
            reset = reset_peak_rss(full.pid)
            progress(f"{NAME}: releasing {expected:,} deliveries; draining")
            drained = drain(full, rec, expected)
            drain_mem = memory_kib(full.pid)
            time.sleep(0.5)
            if (got := rec.count()) != expected:
                raise RuntimeError(f"{NAME}: receiver counted {got}, expected {expected}")
    ratios = sorted(b["rate"] / a["rate"] for a, b in pairs)
    ratio = statistics.median(ratios)
    rate_a = statistics.median(a["rate"] for a, _ in pairs)
    rate_b = statistics.median(b["rate"] for _, b in pairs)
    peak_ingest, peak_drain = _mb(ingest_mem["VmHWM"]), _mb(drain_mem["VmHWM"])
    peak = max(peak_ingest, peak_drain)
    wrk = {"empty": [{"rate": round(a["rate"]), "p99_ms": a["latency_ms"]["p99"]}
                     for a, _ in pairs],
           "backlog": [{"rate": round(b["rate"]), "p99_ms": b["latency_ms"]["p99"]}
                       for _, b in pairs]}
    common = {"backlog": n, "fill": filled, "database_mb": db_mb}
    return [
        Row(NAME, "ingest, empty queue", rate_a, unit="events/s", ratio=1.0, extra={
            **common, "wrk": wrk["empty"],
            "notes": f"p99 {statistics.median(a['latency_ms']['p99'] for a, _ in pairs)} ms"}),
        Row(NAME, f"ingest, {n:,} waiting", rate_b, unit="events/s", ratio=ratio, extra={
            **common, "wrk": wrk["backlog"], "pair_ratios": [round(r, 3) for r in ratios],
            "target_ratio": TARGET_INGEST_RATIO, "target": f">= {TARGET_INGEST_RATIO}x",
            "met": ratio >= TARGET_INGEST_RATIO,
            "notes": f"p99 {statistics.median(b['latency_ms']['p99'] for _, b in pairs)} ms; "
                     f"database {db_mb:,} MB"}),
        Row(NAME, "peak RSS", peak, unit="MB", extra={
            "start_rss_mb": _mb(start_rss), "after_fill_rss_mb": _mb(after_fill["VmRSS"]),
            "peak_ingest_mb": peak_ingest, "peak_drain_mb": peak_drain,
            "peak_reset_between": reset, "drain_rss_sampled_max_mb":
                drained["drain_rss_sampled_max_mb"],
            "target": f"<= {TARGET_RSS_MB:g} MB", "met": peak <= TARGET_RSS_MB,
            "notes": f"ingest {peak_ingest} MB, drain {peak_drain} MB "
                     f"(start {_mb(start_rss)} MB)"}),
        Row(NAME, f"drain {expected:,}", drained["drain_rate"], unit="deliveries/s", extra={
            **drained, "deliveries": expected,
            "notes": f"{drained['drain_s']} s, relay cpu {drained['drain_cpu_pct']}%"}),
    ]
