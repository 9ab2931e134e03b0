"""NOISY: a healthy endpoint's delivery latency while two others misbehave, vs alone.

Three endpoints get every event, sent at a steady 500 events/s (bench.load, open loop):
`healthy` (the receiver's /lat/healthy, answers at once), `hanging` (/hang: never answers,
so each attempt runs into its 5 s timeout and holds one of its slots meanwhile) and `failing`
(/fail: 500 every time, retried after 1 s, 2 s, 4 s, then `failed`). The figure is the
healthy endpoint's ingest-to-arrival p50/p99 (as in the latency scenario), against the same
relay config with the healthy endpoint alone (the baseline, same run). relay keeps its
default caps (concurrency 256, endpoint_concurrency 16). There is no numeric target in the
issue; the ratio says how much the neighbours cost.
"""

from __future__ import annotations

from typing import Any

from bench.harness import SECRET, Context, Row, progress, receiver, relay_server
from bench.registry import scenario
from bench.scenarios.latency import RATE, paced, rows

NAME = "noisy"


@scenario(NAME, help="healthy endpoint latency beside a hanging and a failing one, vs alone",
          events=5_000, quick_events=1_500)
def run(ctx: Context) -> list[Row]:
    n = ctx.events
    out: list[Row] = []
    with receiver() as rec:
        healthy = {"id": "healthy", "url": rec.url_for("/lat/healthy"), "events": ["*"],
                   "secret": SECRET}
        noisy: list[dict[str, Any]] = [
            {"id": "hanging", "url": rec.url_for("/hang"), "events": ["*"], "secret": SECRET,
             "timeout": "5s"},
            {"id": "failing", "url": rec.url_for("/fail"), "events": ["*"], "secret": SECRET,
             "retry_schedule": ["1s", "2s", "4s"]},
        ]
        delivery = {"allow_http": True, "allow_private_networks": True}
        for label, endpoints in (("healthy alone", [healthy]),
                                 ("healthy beside hanging + failing", [healthy, *noisy])):
            workdir = ctx.workdir / label.split()[-1]
            with relay_server(workdir, delivery, endpoints, workdir / "relay.log") as srv:
                progress(f"{NAME}: {label}: {n} events at {RATE:g}/s")
                url = f"http://127.0.0.1:{srv.port}/v1/events"
                lat, load, extra = paced(rec, url, "/lat/healthy", n, srv.pid)
                extra["receiver"] = rec.counts()
                progress(f"{NAME}: {label}: stopping relay (in-flight hangs get the 5 s grace)")
            out += rows(label, lat, load, extra, scenario=NAME)
    base_p50, base_p99 = out[0].rate, out[1].rate
    out[2].ratio = out[2].rate / base_p50 if base_p50 else None
    out[3].ratio = out[3].rate / base_p99 if base_p99 else None
    for row in out[2:]:
        counts = row.extra["receiver"]
        row.extra["notes"] += (f"; noisy attempts: {counts['failed']} failed, "
                               f"{counts['hanging']} hung")
    return out
