"""DELIVERY: relay's delivery path against bare HTTP clients, same receiver, same bodies.

Requirement: relay must deliver at least half as many requests per second as a bare aiohttp
client in the same run. Every candidate sends signed ~300-byte envelopes, 64 in flight, to
one counting receiver (bench.receiver) in its own process.

relay is measured end to end as an operator sees it: events are ingested while the endpoint
is `enabled = false` (deliveries held), then the endpoint is enabled (config rewrite +
SIGHUP) and the clock runs from that release until the receiver has counted every delivery.
That window includes the release UPDATE, claims, signing, sending, recording each outcome
in SQLite, and the log line per attempt (stderr to a file, as in production).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
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
    run_client,
    thread_cpu_seconds,
)
from bench.registry import scenario

NAME = "delivery"
TARGET = 0.5  # relay / bare aiohttp
_POLL = 0.05  # seconds between receiver count polls


def _baseline(rec: Receiver, kind: str, n: int) -> Row:
    rec.reset()
    progress(f"{NAME}: bare {kind}, {n} requests, {CONCURRENCY} concurrent")
    rcpu = cpu_seconds(rec.pid)
    report = run_client(kind, rec.url, n)
    rcpu = cpu_seconds(rec.pid) - rcpu
    got = rec.count()
    if got != n or report["errors"]:
        raise RuntimeError(f"bare {kind}: receiver counted {got}/{n}, {report['errors']} errors")
    return Row(NAME, f"bare {kind}", report["rate"], extra={
        "elapsed_s": round(report["elapsed"], 3), "sender_cpu_s": round(report["cpu"], 2),
        "receiver_cpu_s": round(rcpu, 2), "body_bytes": report["body_bytes"]})


def _drain(rec: Receiver, n: int, timeout: float) -> tuple[float, float]:
    """Poll the receiver until it has n requests: (time of the first one, time of the last)."""
    first = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        count = rec.count()
        now = time.monotonic()
        if first is None and count > 0:
            first = now
        if count >= n:
            return first or now, now
        time.sleep(_POLL)
    raise TimeoutError(f"receiver count {rec.count()} < {n} after {timeout:g}s")


def _relay(ctx: Context, rec: Receiver, n: int, label: str, log: bool,
           profile: Path | None = None) -> Row:
    """One `relay serve` run: ingest n held events, release them, time the drain."""
    workdir = ctx.workdir / label.replace(" ", "-").replace("/", "")
    log_path = workdir / "relay.log" if log else None
    endpoint: dict[str, Any] = {"id": "bench", "url": rec.url, "events": ["*"],
                                "secret": SECRET, "enabled": False}
    delivery = {"allow_http": True, "allow_private_networks": True,
                "concurrency": CONCURRENCY, "endpoint_concurrency": CONCURRENCY}
    rec.reset()
    extra: dict[str, Any] = {}
    with relay_server(workdir, delivery, [endpoint], log_path) as srv:
        progress(f"{NAME}: {label}: ingesting {n} events (held), batches of 500")
        events = [{"type": "bench.event", "data": event_data(i)} for i in range(n)]
        t0 = time.monotonic()
        srv.ingest(events)
        extra["ingest_events_per_s"] = round(n / (time.monotonic() - t0))
        if rec.count():
            raise RuntimeError("deliveries went out while the endpoint was disabled")
        spy = _start_profiler(srv.pid, profile) if profile else None
        progress(f"{NAME}: {label}: releasing (enabled = true, SIGHUP); draining")
        endpoint["enabled"] = True
        cpu0, rcpu0 = cpu_seconds(srv.pid), cpu_seconds(rec.pid)
        main0, other0 = thread_cpu_seconds(srv.pid)
        released = time.monotonic()
        srv.reload()
        first, done = _drain(rec, n, timeout=max(120.0, n / 50))
        cpu, rcpu = cpu_seconds(srv.pid) - cpu0, cpu_seconds(rec.pid) - rcpu0
        main, other = thread_cpu_seconds(srv.pid)
        main, other = main - main0, other - other0
        if spy is not None:
            _stop_profiler(spy)
        time.sleep(0.5)
        if (got := rec.count()) != n:
            raise RuntimeError(f"{label}: receiver counted {got} for {n} events (duplicates?)")
    elapsed = done - released
    extra.update({
        "elapsed_s": round(elapsed, 3), "release_to_first_s": round(first - released, 3),
        "steady_rate": round(n / (done - first)) if done > first else None,
        "relay_cpu_s": round(cpu, 2), "relay_cpu_pct": round(100 * cpu / elapsed),
        "relay_main_thread_cpu_pct": round(100 * main / elapsed),
        "relay_other_threads_cpu_pct": round(100 * other / elapsed),
        "receiver_cpu_s": round(rcpu, 2)})
    if log_path is not None:
        lines = sum(1 for _ in log_path.open("rb"))
        extra.update({"log_lines": lines, "log_bytes": log_path.stat().st_size})
    return Row(NAME, label, n / elapsed, unit="deliveries/s", extra=extra)


def _median(rows: list[Row]) -> Row:
    """The run with the median rate (all rates kept in extra when there are several)."""
    ordered = sorted(rows, key=lambda r: r.rate)
    row = ordered[len(ordered) // 2]
    if len(rows) > 1:
        row.extra["rates"] = [round(r.rate) for r in rows]
    return row


def _start_profiler(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy record (collapsed stacks, per thread) on the running relay, until stopped."""
    exe = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if exe is None:
        raise RuntimeError("--profile needs py-spy: .venv/bin/pip install py-spy")
    spy = subprocess.Popen([exe, "record", "--pid", str(pid), "--format", "raw", "--threads",
                            "--rate", "1000", "--nonblocking", "-o", str(out)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)  # py-spy needs a moment to attach
    if spy.poll() is not None:
        raise RuntimeError(f"py-spy failed: {spy.stderr.read().decode() if spy.stderr else ''}")
    return spy


def _stop_profiler(spy: subprocess.Popen[bytes]) -> None:
    spy.send_signal(2)  # SIGINT: py-spy writes its output and exits
    spy.wait(30)


# Frames above the event loop: in every sample, so their inclusive share says nothing.
_OUTER = ("<frozen runpy>", "click/", "relay/__main__.py", "serve (relay/cli/server.py)",
          "serve (relay/process.py)", "runners.py", "uvloop/__init__.py", "threading.py")
# Where a leaf frame's time goes, by the file it is in (first match wins).
_COMPONENTS = (
    ("sqlite (aiosqlite thread + sqlite3)", ("aiosqlite/", "sqlite3/")),
    ("logging", ("logging/", "relay/logs.py")),
    ("event loop (uvloop C: I/O, callbacks)", ("asyncio/runners.py",)),
    ("asyncio (tasks, futures, events)", ("asyncio/",)),
    ("aiohttp + yarl + multidict", ("aiohttp/", "yarl/", "multidict/")),
    ("signing (hmac, base64)", ("signing.py", "hmac.py", "base64.py")),
    ("metrics (prometheus_client)", ("prometheus_client/",)),
    ("relay code", ("relay/",)),
)


def summarize_profile(path: Path, top: int = 15) -> dict[str, Any]:
    """Shares of py-spy samples (collapsed stacks, one thread frame first): per thread, per
    component (by the leaf frame's file), per function self and inclusive."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    components: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        threads[frames[0].split(": ", 1)[-1]] += count
        funcs = [f.rsplit(":", 1)[0] + ")" if ":" in f else f for f in frames[1:]]
        total += count
        leaf = funcs[-1] if funcs else "?"
        own[leaf] += count
        components[next((name for name, keys in _COMPONENTS if any(k in leaf for k in keys)),
                        "other")] += count
        for func in set(funcs):
            if not any(key in func for key in _OUTER):
                inclusive[func] += count

    def share(c: Counter[str]) -> list[tuple[str, float]]:
        return [(k, round(100 * v / total, 1)) for k, v in c.most_common(top)]

    return {"samples": total, "threads": share(threads), "components": share(components),
            "self": share(own), "inclusive": share(inclusive)}


@scenario(NAME, help="relay's delivery path vs bare aiohttp/httpx (target >= 0.5x aiohttp)",
          events=20_000, quick_events=2_000)
def run(ctx: Context) -> list[Row]:
    n = ctx.events
    logs = ctx.options.get("logs", "both")
    rows: list[Row] = []
    repeat = max(1, int(ctx.options.get("repeat", 1)))
    with receiver() as rec:
        # httpx is ~20x slower: a tenth of the requests gives a stable rate in ~5 s.
        httpx_row = _baseline(rec, "httpx", max(n // 10, 500))
        pairs: list[tuple[Row, list[Row]]] = []
        for i in range(repeat):  # alternate, so drift in the VM's speed hits both alike
            if repeat > 1:
                progress(f"{NAME}: round {i + 1} of {repeat}")
            candidates = []
            base = _baseline(rec, "aiohttp", n)
            if logs in ("file", "both"):
                candidates.append(_relay(ctx, rec, n, "relay (log to file)", log=True))
            if logs in ("devnull", "both"):
                candidates.append(_relay(ctx, rec, n, "relay (log to /dev/null)", log=False))
            pairs.append((base, candidates))
        rows.append(_median([b for b, _ in pairs]))
        rows.append(httpx_row)
        for k in range(len(pairs[0][1])):
            row = _median([c[k] for _, c in pairs])
            ratios = sorted(c[k].rate / b.rate for b, c in pairs)
            row.extra["pair_ratios"] = [round(r, 3) for r in ratios]
            row.extra["median_pair_ratio"] = round(ratios[len(ratios) // 2], 3)
            rows.append(row)
        if ctx.options.get("profile"):
            out = ctx.options["profile"]
            progress(f"{NAME}: extra profiled run (py-spy, not in the figures) -> {out}")
            row = _relay(ctx, rec, n, "relay profiled", log=True, profile=out)
            ctx.options["profile_summary"] = summarize_profile(out)
            ctx.options["profile_rate"] = round(row.rate)
    reference = rows[0].rate
    for row in rows:
        row.ratio = row.extra.get("median_pair_ratio", row.rate / reference)
        if row.name.startswith("relay"):
            row.extra["target_ratio"] = TARGET
    return rows
