"""LATENCY: ingest-to-arrival at a steady 500 events/s, relay vs posting straight to the receiver.

Target: relay p50 <= 5 ms, p99 <= 50 ms. An open-loop sender (bench.load) POSTs one event
every 2 ms to relay's /v1/events, each with `data.sent = time.time()`; relay delivers it to
the receiver's /lat/relay, which subtracts `sent` from its arrival time (same machine clock).
So the figure spans the ingest request, the durable commit (synchronous=FULL), the
scheduler's wake-up, the claim, signing, the delivery request and the receiver reading it.
The baseline is the same sender POSTing the same bodies straight to the receiver: the floor
that the sender, the loopback hop and the receiver add by themselves.

relay runs with its default delivery settings (concurrency 256, endpoint_concurrency 16)
and one enabled endpoint; stderr to a file. `events` is the number of events (at 500/s).
"""

from __future__ import annotations

from typing import Any

from bench.harness import (
    SECRET,
    Context,
    Receiver,
    Row,
    cpu_seconds,
    percentiles,
    progress,
    receiver,
    relay_server,
    run_load,
)
from bench.registry import scenario

NAME = "latency"
RATE = 500.0
TARGET_P50_MS = 5.0
TARGET_P99_MS = 50.0


def rows(label: str, lat: dict[str, float], load: dict[str, Any],
         extra: dict[str, Any] | None = None, scenario: str = NAME) -> list[Row]:
    """Two rows (p50, p99) for one candidate; the sender's own figures ride along."""
    common = {"latency_ms": lat, "sender": load, **(extra or {})}
    return [
        Row(scenario, f"{label}, p50", lat["p50"], unit="ms", extra={
            **common, "notes": f"{lat['n']} events at {load['offered_rate']}/s"}),
        Row(scenario, f"{label}, p99", lat["p99"], unit="ms", extra={
            **common, "notes": f"max {lat['max']} ms"}),
    ]


def paced(rec: Receiver, url: str, path: str, n: int, pid: int | None = None
          ) -> tuple[dict[str, float], dict[str, Any], dict[str, Any]]:
    """Send n events at RATE/s to url; wait for n arrivals at the receiver's `path`; the
    arrival latencies, the sender's report and the server's CPU share."""
    rec.reset()
    seconds = n / RATE
    cpu0 = cpu_seconds(pid) if pid else 0.0
    load = run_load(url, RATE, seconds)
    if load["errors"]:
        raise RuntimeError(f"{NAME}: sender saw {load['errors']} errors: {load['statuses']}")
    rec.wait_for(n, timeout=60.0)
    extra = {"server_cpu_pct": round(100 * (cpu_seconds(pid) - cpu0) / seconds)} if pid else {}
    return percentiles(rec.latencies().get(path, [])), load, extra


@scenario(NAME, help="ingest-to-arrival latency at a steady 500 events/s "
          "(target p50 <= 5 ms, p99 <= 50 ms)", events=5_000, quick_events=1_500)
def run(ctx: Context) -> list[Row]:
    n = ctx.events
    out: list[Row] = []
    with receiver() as rec:
        progress(f"{NAME}: baseline, {n} events at {RATE:g}/s straight to the receiver")
        lat, load, _ = paced(rec, rec.url_for("/lat/direct"), "/lat/direct", n)
        out += rows("direct to receiver", lat, load)
        endpoint = {"id": "lat", "url": rec.url_for("/lat/relay"), "events": ["*"],
                    "secret": SECRET}
        delivery = {"allow_http": True, "allow_private_networks": True}
        workdir = ctx.workdir / "relay"
        with relay_server(workdir, delivery, [endpoint], workdir / "relay.log") as srv:
            progress(f"{NAME}: relay, {n} events at {RATE:g}/s, ingest to arrival")
            url = f"http://127.0.0.1:{srv.port}/v1/events"
            lat, load, extra = paced(rec, url, "/lat/relay", n, srv.pid)
    p50, p99 = rows("relay", lat, load, extra)
    p50.extra.update({"target": f"<= {TARGET_P50_MS:g} ms", "met": lat["p50"] <= TARGET_P50_MS})
    p99.extra.update({"target": f"<= {TARGET_P99_MS:g} ms", "met": lat["p99"] <= TARGET_P99_MS})
    p50.ratio = lat["p50"] / out[0].rate if out[0].rate else None
    p99.ratio = lat["p99"] / out[1].rate if out[1].rate else None
    return [*out, p50, p99]
