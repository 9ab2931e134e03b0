"""FANOUT: events to 100 endpoints; deliveries/s, vs the same deliveries to one endpoint.

100 endpoints (`fan000`..`fan099`, every event type) point at the counting receiver, each at
its own path. Two measurements in one `relay serve`:

1. Burst: `events` events are ingested while every endpoint is held (`enabled = false`),
   100 deliveries each; then all are released at once (config rewrite + SIGHUP) and the
   clock runs until the receiver has counted every delivery. The baseline (same run, own
   relay) is the same number of deliveries to a single endpoint, released the same way, so
   the ratio is what spreading the work over 100 endpoints (100 lanes, 100 claim queries,
   rotation) costs.
2. Single event: with all endpoints enabled, one event is POSTed and timed until all 100
   deliveries arrived, five times; the median.

Both relays use the delivery scenario's caps: concurrency 64, endpoint_concurrency 64.
"""

from __future__ import annotations

import time
from typing import Any

from bench.harness import (
    CONCURRENCY,
    SECRET,
    Context,
    Receiver,
    Row,
    cpu_seconds,
    event_data,
    progress,
    receiver,
    relay_server,
)
from bench.registry import scenario

NAME = "fanout"
ENDPOINTS = 100
SINGLE_EVENT_RUNS = 5
STALL_S = 60.0  # a drain not finished by then is reported as stalled
DELIVERY = {"allow_http": True, "allow_private_networks": True,
            "concurrency": CONCURRENCY, "endpoint_concurrency": CONCURRENCY}


def burst(ctx: Context, rec: Receiver, endpoints: list[dict[str, Any]], events: int,
          label: str) -> tuple[Row, list[float]]:
    """Ingest `events` held, release every endpoint, time the drain; then (with every
    endpoint now enabled) time single events to all of them."""
    total = events * len(endpoints)
    workdir = ctx.workdir / label.split()[0]
    rec.reset()
    singles: list[float] = []
    with relay_server(workdir, DELIVERY, endpoints, workdir / "relay.log") as srv:
        progress(f"{NAME}: {label}: ingesting {events} events held ({total} deliveries)")
        batch = [{"type": "bench.event", "data": event_data(i)} for i in range(events)]
        t0 = time.monotonic()
        srv.ingest(batch, batch=max(1, min(500, 5_000 // len(endpoints))))
        ingest_s = time.monotonic() - t0
        progress(f"{NAME}: {label}: releasing, draining")
        for ep in endpoints:
            ep["enabled"] = True
        cpu0 = cpu_seconds(srv.pid)
        released = time.monotonic()
        srv.reload()
        try:
            done = rec.wait_for(total, timeout=max(STALL_S, total / 500))
        except TimeoutError:  # a relay bug seen here: report it rather than lose the run
            got = rec.count()
            progress(f"{NAME}: {label}: STALLED at {got}/{total} deliveries; see relay.log")
            elapsed = time.monotonic() - released
            return Row(NAME, label, got / elapsed, unit="deliveries/s", extra={
                "deliveries": total, "delivered": got, "stalled": True,
                "elapsed_s": round(elapsed, 3), "log": str(workdir / "relay.log"),
                "notes": f"STALLED: {got}/{total} delivered in {elapsed:.0f} s"}), []
        elapsed = done - released
        cpu = cpu_seconds(srv.pid) - cpu0
        if len(endpoints) > 1:
            for i in range(SINGLE_EVENT_RUNS):
                before = rec.count()
                t0 = time.monotonic()
                status, body = srv.http.request("POST", "/v1/events", {
                    "type": "bench.event", "data": event_data(i)})
                if status != 202:
                    raise RuntimeError(f"ingest answered {status}: {body}")
                singles.append(rec.wait_for(before + len(endpoints), timeout=30.0,
                                            every=0.002) - t0)
        time.sleep(0.5)
        expected = total + len(singles) * len(endpoints)
        if (got := rec.count()) != expected:
            raise RuntimeError(f"{label}: receiver counted {got}, expected {expected}")
    row = Row(NAME, label, total / elapsed, unit="deliveries/s", extra={
        "deliveries": total, "elapsed_s": round(elapsed, 3),
        "ingest_events_per_s": round(events / ingest_s),
        "ingest_deliveries_per_s": round(total / ingest_s),
        "relay_cpu_pct": round(100 * cpu / elapsed)})
    return row, singles


@scenario(NAME, help="one event to 100 endpoints: deliveries/s vs one endpoint",
          events=200, quick_events=50)
def run(ctx: Context) -> list[Row]:
    events = ctx.events
    with receiver() as rec:
        one = [{"id": "single", "url": rec.url_for("/fan/single"), "events": ["*"],
                "secret": SECRET, "enabled": False}]
        base, _ = burst(ctx, rec, one, events * ENDPOINTS, "one endpoint (baseline)")
        fan = [{"id": f"fan{k:03d}", "url": rec.url_for(f"/fan/{k:03d}"), "events": ["*"],
                "secret": SECRET, "enabled": False} for k in range(ENDPOINTS)]
        row, singles = burst(ctx, rec, fan, events, f"{ENDPOINTS} endpoints")
    base.ratio = 1.0
    base.extra["notes"] = f"ingest {base.extra['ingest_events_per_s']:,} events/s"
    row.ratio = row.rate / base.rate
    if not singles:  # stalled
        return [base, row]
    ordered = sorted(singles)
    median = ordered[len(ordered) // 2]
    row.extra.update({"single_event_s": [round(s, 4) for s in singles],
                      "notes": f"ingest {row.extra['ingest_events_per_s']:,} events/s; "
                      f"1 event -> {ENDPOINTS}: {median * 1000:.0f} ms median"})
    single = Row(NAME, f"1 event -> {ENDPOINTS} endpoints", ENDPOINTS / median,
                 unit="deliveries/s", extra={
                     "median_s": round(median, 4), "runs_s": [round(s, 4) for s in singles],
                     "notes": f"all {ENDPOINTS} arrived {median * 1000:.0f} ms after the POST "
                     f"(median of {len(singles)})"})
    return [base, row, single]
