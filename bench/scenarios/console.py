"""CONSOLE: what the web console's pages cost with a long history in the database.

Target: the endpoint page and the delivery page each render in under 100 ms (median)
with 100,000 deliveries in the database.

`relay serve` (no API keys, so the console is open on loopback) starts once on an empty
database to create the schema and its one config endpoint, and stops. Then `n` events,
one delivery each to that endpoint, and two attempts per delivery (a 500, then a 200)
are written straight into the SQLite file (one transaction: the point is a large
history, not how fast it was made), with attempt times spread over the last hour so the
overview's chart has every minute to count. relay starts again on that file, and each
page is fetched `requests` times over one keep-alive connection, timing the whole HTTP
exchange (render included): the endpoint page (its settings, health and pending count,
and the first page of its 100,000 deliveries, newest first), a delivery page from the
middle of the history with both attempts, and, for the record, the overview (queue
depth by state, and the last hour's attempts per minute: every attempt of the run).
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from bench.harness import Context, Http, Row, percentiles, progress, relay_server
from bench.registry import scenario

NAME = "console"
TARGET_MS = 100.0
ENDPOINT = "bench"
DELIVERY = {"allow_http": True, "allow_private_networks": True}
ENDPOINTS = [{"id": ENDPOINT, "url": "http://127.0.0.1:9/hook", "events": ["*"]}]
HEADERS = json.dumps({"content-type": "application/json", "user-agent": "relay/bench",
                      "webhook-id": "evt_x", "webhook-timestamp": "1700000000",
                      "webhook-signature": "v1," + "A" * 43})


def fill(db: Path, n: int, now: float) -> None:
    """n events, n deliveries (succeeded after two attempts), 2n attempts, in the last hour."""
    conn = sqlite3.connect(db)
    try:
        with conn:
            payload = json.dumps({"id": "evt", "type": "bench.event", "data": {"i": 0}}).encode()
            events, deliveries, attempts = [], [], []
            for i in range(1, n + 1):
                at = now - 3600 + 3590 * i / n
                eid = f"evt_bench{i:021d}"
                events.append((i, eid, "default", "bench.event", None, "", at, 1, payload))
                deliveries.append((i, eid, ENDPOINT, "succeeded", 2, at, None, at, at + 1, 200,
                                   None))
                attempts.append((2 * i - 1, i, 1, at, 12.5, HEADERS, 500, "{}", b"oops",
                                 "HTTP 500"))
                attempts.append((2 * i, i, 2, at + 1, 8.5, HEADERS, 200, "{}", b"{}", None))
            conn.executemany(
                "INSERT INTO events (seq, id, tenant, type, idem_key, digest, created_at, "
                "n_deliveries, payload) VALUES (?,?,?,?,?,?,?,?,?)", events)
            conn.executemany(
                "INSERT INTO deliveries (id, event_id, endpoint_id, state, attempts, next_at, "
                "lease_until, created_at, updated_at, last_status, last_error) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?)", deliveries)
            conn.executemany(
                "INSERT INTO attempts (id, delivery_id, n, started_at, duration_ms, "
                "request_headers, status, response_headers, response_body, error) "
                "VALUES (?,?,?,?,?,?,?,?,?,?)", attempts)
    finally:
        conn.close()


def timed(http: Http, path: str, requests: int, must_contain: str) -> list[float]:
    first = http.text(path)
    if must_contain not in first:
        raise RuntimeError(f"{NAME}: GET {path} did not render ({first[:200]!r})")
    took = []
    for _ in range(requests):
        started = time.perf_counter()
        http.text(path)
        took.append((time.perf_counter() - started) * 1000)
    return took


@scenario(NAME, help="console pages with 100,000 deliveries in the database (< 100 ms each)",
          events=100_000, quick_events=10_000)
def run(ctx: Context) -> list[Row]:
    n = ctx.events
    requests = 20 if ctx.quick else 100
    work = ctx.workdir / NAME
    with relay_server(work, DELIVERY, ENDPOINTS, work / "relay.log"):
        pass  # schema and the config endpoint
    progress(f"{NAME}: writing {n:,} events, deliveries and {2 * n:,} attempts")
    fill(work / "relay.db", n, time.time())
    middle = f"dlv_{n // 2}"
    pages = {
        "endpoint page": (f"/ui/t/default/endpoints/{ENDPOINT}", f"dlv_{n}"),
        "delivery page": (f"/ui/t/default/deliveries/{middle}", "Attempt 2"),
        "overview": ("/ui/", "Attempts per minute"),
    }
    rows = []
    with relay_server(work, DELIVERY, ENDPOINTS, work / "relay.log") as srv:
        http = Http(srv.port)
        for name, (path, marker) in pages.items():
            progress(f"{NAME}: GET {path} x {requests}")
            stats = percentiles(timed(http, path, requests, marker))
            target = name != "overview"
            rows.append(Row(NAME, name, stats["p50"], unit="ms", extra={
                **stats, "deliveries": n, "path": path,
                **({"target": f"< {TARGET_MS:g} ms", "met": stats["p50"] < TARGET_MS}
                   if target else {}),
                "notes": f"p99 {stats['p99']} ms, {n:,} deliveries"}))
        http.close()
    return rows
