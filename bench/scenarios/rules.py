"""SCHEMA and FILTERS: what event-type schemas and filter operators cost ingest.

Both run the ingest scenario's load (wrk, 32 connections, one ~200-byte event per POST)
against two `relay serve` configs that differ only in the feature, in alternating pairs
(A B, then B A, ...: this VM's speed drifts between runs), and report the median pair
ratio. `--repeat N` sets the number of pairs (at least 3); events = seconds of wrk per run.

- `schema`: the event type `bench.event` is declared in both, one held endpoint; the
  candidate gives it a JSON Schema the benchmark's events match (required keys, types,
  a pattern, bounds, an enum, additionalProperties false), so every POST is validated.
  Target: >= 0.9x the rate without the schema.
- `filters`: ten held endpoints subscribed to `*`; the candidate gives each an operator
  filter of four conditions ($gte, $in, $prefix, $exists, plus an $or) that the events
  match, so every POST evaluates all ten and stores the same ten deliveries as without
  filters. Target: >= 0.9x the rate without filters (filters cost less than 10%).
"""

from __future__ import annotations

from typing import Any

from bench.harness import SECRET, Context, Row, progress, relay_server
from bench.registry import scenario
from bench.scenarios.ingest import CONNECTIONS, measure

TARGET_RATIO = 0.9
MIN_PAIRS = 3
DELIVERY = {"allow_http": True, "allow_private_networks": True}
# Matches bench/wrk/post_event.lua's event (the shape of bench.harness.event_data).
SCHEMA = {
    "type": "object",
    "required": ["lead_id", "score", "campaign_id"],
    "additionalProperties": False,
    "properties": {
        "lead_id": {"type": "string", "pattern": "^lead_[0-9]{8}$"},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "campaign_id": {"type": "string", "minLength": 1, "maxLength": 64},
        "source": {"type": "string", "enum": ["benchmark", "web", "api"]},
        "note": {"type": "string", "maxLength": 256},
    },
}
FILTER = {
    "data.score": {"$gte": 0.5},
    "data.campaign_id": {"$in": ["camp_fall", "camp_spring_homes", "camp_winter"]},
    "data.lead_id": {"$prefix": "lead_"},
    "$or": [{"data.source": "benchmark"}, {"data.vip": {"$exists": True}}],
}


def _held(i: int, **extra: Any) -> dict[str, Any]:
    return {"id": f"held{i}", "url": "http://127.0.0.1:9/hooks", "events": ["*"],
            "secret": SECRET, "enabled": False, **extra}


Setup = tuple[list[dict[str, Any]], list[dict[str, Any]]]  # endpoints, event types
SETUPS: dict[str, dict[str, tuple[str, Setup]]] = {
    "schema": {
        "base": ("declared type, no schema",
                 ([_held(0)], [{"name": "bench.event"}])),
        "candidate": ("declared type with schema",
                      ([_held(0)], [{"name": "bench.event", "schema": SCHEMA,
                                     "sample": {"lead_id": "lead_00000001", "score": 0.5,
                                                "campaign_id": "camp_fall"}}])),
    },
    "filters": {
        "base": ("10 held endpoints, no filter", ([_held(i) for i in range(10)], [])),
        "candidate": ("10 held endpoints, filtered",
                      ([_held(i, filter=FILTER) for i in range(10)], [])),
    },
}


def _one(ctx: Context, name: str, which: str, seconds: float, i: int) -> Row:
    label, (endpoints, event_types) = SETUPS[name][which]
    progress(f"{name}: relay serve ({label}), wrk {CONNECTIONS} connections, {seconds:g} s")
    workdir = ctx.workdir / f"{which}-{i}"
    with relay_server(workdir, DELIVERY, endpoints, workdir / "relay.log",
                      event_types=event_types) as srv:
        report = measure(srv.pid, srv.port, seconds)
    if report["errors"]["status"]:
        raise RuntimeError(f"{name} ({label}): {report['errors']['status']} non-2xx answers")
    lat = report["latency_ms"]
    return Row(name, label, report["rate"], unit="events/s", extra={
        "p50_ms": lat["p50"], "p99_ms": lat["p99"], "requests": report["requests"],
        "server_cpu_pct": report["server_cpu_pct"],
        "notes": f"p50 {lat['p50']} ms, p99 {lat['p99']} ms"})


def _pairs(ctx: Context, name: str) -> list[Row]:
    seconds = float(ctx.events)
    pairs = max(MIN_PAIRS, int(ctx.options.get("repeat", 1)))
    got: list[tuple[Row, Row]] = []
    for i in range(pairs):
        progress(f"{name}: pair {i + 1} of {pairs}")
        order = ("base", "candidate") if i % 2 == 0 else ("candidate", "base")
        rows = {which: _one(ctx, name, which, seconds, i) for which in order}
        got.append((rows["base"], rows["candidate"]))
    ratios = sorted(c.rate / b.rate for b, c in got)
    median = ratios[len(ratios) // 2]
    base = sorted((b for b, _ in got), key=lambda r: r.rate)[len(got) // 2]
    cand = sorted((c for _, c in got), key=lambda r: r.rate)[len(got) // 2]
    base.ratio, cand.ratio = 1.0, median
    base.extra["rates"] = [round(b.rate) for b, _ in got]
    cand.extra.update({
        "rates": [round(c.rate) for _, c in got], "pair_ratios": [round(r, 3) for r in ratios],
        "target_ratio": TARGET_RATIO,
        "notes": f"{cand.extra['notes']}; median of {pairs} pairs: "
        + ", ".join(f"{r:.3f}" for r in ratios)})
    return [base, cand]


@scenario("schema", help="ingest with a JSON Schema on the event type vs without "
          "(target >= 0.9x); alternating pairs; events = seconds of wrk per run",
          events=10, quick_events=3)
def run_schema(ctx: Context) -> list[Row]:
    return _pairs(ctx, "schema")


@scenario("filters", help="ingest to 10 endpoints with operator filters vs without "
          "(target >= 0.9x); alternating pairs; events = seconds of wrk per run",
          events=10, quick_events=3)
def run_filters(ctx: Context) -> list[Row]:
    return _pairs(ctx, "filters")
