"""INGEST: POST /v1/events at 32 concurrent connections (wrk), relay vs the bare stack.

Target: relay >= 0.5x the baseline's events/s, and relay's p99 <= 20 ms. The baseline
(bench.ingest_baseline) is the same HTTP stack (Starlette on uvicorn, httptools, uvloop, one
process) running relay's own body reading and pydantic validation, answering 202 without
storage. relay runs with one endpoint held (`enabled = false`), so each request also matches
the endpoint and commits the event plus one `held` delivery row before its 202.

wrk is closed loop: 32 connections, each sending its next request when the previous answer
arrives, so the rate is the server's capacity and the latency is at that load. Each server
gets a 1 s warm-up run first (not counted). With --repeat N the two alternate N times and
the median pair ratio is reported (this VM's speed drifts between runs).
"""

from __future__ import annotations

from typing import Any

from bench.harness import (
    SECRET,
    Context,
    CpuPressure,
    Row,
    cpu_seconds,
    free_port,
    process,
    progress,
    relay_server,
    run_wrk,
)
from bench.registry import scenario

NAME = "ingest"
CONNECTIONS = 32
TARGET_RATIO = 0.5
TARGET_P99_MS = 20.0
WARMUP_S = 1.0


def measure(pid: int, port: int, seconds: float) -> dict[str, Any]:
    """A warm-up wrk run, then the measured one, with the server's CPU over the latter."""
    run_wrk(port, WARMUP_S, CONNECTIONS)
    cpu0 = cpu_seconds(pid)
    pressure = CpuPressure()
    report = run_wrk(port, seconds, CONNECTIONS)
    report["server_cpu_pct"] = round(100 * (cpu_seconds(pid) - cpu0) / seconds)
    report["cpu_pressure_pct"] = pressure.percent()
    bad = sum(report["errors"].values())
    if bad > report["requests"] // 1000:
        raise RuntimeError(f"wrk saw {report['errors']} errors in {report['requests']} requests")
    return report


def _row(label: str, report: dict[str, Any]) -> Row:
    lat = report["latency_ms"]
    return Row(NAME, label, report["rate"], unit="events/s", extra={
        "p50_ms": lat["p50"], "p90_ms": lat["p90"], "p99_ms": lat["p99"], "max_ms": lat["max"],
        "requests": report["requests"], "wrk_errors": report["errors"],
        "server_cpu_pct": report["server_cpu_pct"], "cpu_pressure_pct": report["cpu_pressure_pct"],
        "notes": f"p50 {lat['p50']} ms, p99 {lat['p99']} ms, cpu {report['server_cpu_pct']}%, "
        f"cpu pressure {report['cpu_pressure_pct']}%"})


def _baseline(seconds: float) -> Row:
    port = free_port()
    progress(f"{NAME}: baseline (Starlette + relay's validation, no storage), "
             f"wrk {CONNECTIONS} connections, {seconds:g} s")
    with process(["-m", "bench.ingest_baseline", "--port", str(port)], port, "/healthz",
                 "ingest baseline") as pid:
        return _row("baseline (no storage)", measure(pid, port, seconds))


def _relay(ctx: Context, seconds: float, i: int) -> Row:
    progress(f"{NAME}: relay serve (one held endpoint), wrk {CONNECTIONS} connections, "
             f"{seconds:g} s")
    endpoint = {"id": "held", "url": "http://127.0.0.1:9/hooks", "events": ["*"],
                "secret": SECRET, "enabled": False}
    delivery = {"allow_http": True, "allow_private_networks": True}
    workdir = ctx.workdir / f"relay-{i}"
    sync = ctx.options.get("sync") if ctx.options.get("sync") in ("full", "normal") else "full"
    with relay_server(workdir, delivery, [endpoint], workdir / "relay.log",
                      storage={"sync": sync}) as srv:
        return _row("relay (1 held endpoint)", measure(srv.pid, srv.port, seconds))


@scenario(NAME, help="POST /v1/events at 32 connections (wrk) vs Starlette without storage "
          "(target >= 0.5x, p99 <= 20 ms); events = seconds of wrk per run",
          events=10, quick_events=3)
def run(ctx: Context) -> list[Row]:
    seconds = float(ctx.events)
    repeat = max(1, int(ctx.options.get("repeat", 1)))
    pairs = []
    for i in range(repeat):
        if repeat > 1:
            progress(f"{NAME}: round {i + 1} of {repeat}")
        pairs.append((_baseline(seconds), _relay(ctx, seconds, i)))
    ratios = sorted(r.rate / b.rate for b, r in pairs)
    median = ratios[len(ratios) // 2]
    base = sorted((b for b, _ in pairs), key=lambda r: r.rate)[len(pairs) // 2]
    relay = sorted((r for _, r in pairs), key=lambda r: r.rate)[len(pairs) // 2]
    base.ratio = 1.0
    relay.ratio = median
    p99 = relay.extra["p99_ms"]
    relay.extra.update({
        "pair_ratios": [round(r, 3) for r in ratios], "target_ratio": TARGET_RATIO,
        "target": f">= {TARGET_RATIO}x, p99 <= {TARGET_P99_MS:g} ms",
        "met": median >= TARGET_RATIO and p99 <= TARGET_P99_MS})
    if repeat > 1:
        for row, group in ((base, [b for b, _ in pairs]), (relay, [r for _, r in pairs])):
            row.extra["rates"] = [round(r.rate) for r in group]
            row.extra["p99s_ms"] = [r.extra["p99_ms"] for r in group]
    return [base, relay]
