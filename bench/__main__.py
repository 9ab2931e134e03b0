"""`python -m bench [scenario ...] [--quick]`: run scenarios, print a table, save JSON.

Results go to bench/results/ (gitignored), one file per invocation, with the machine
description, so runs on different hosts or commits can be compared later.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import STORAGE, Context, Row, machine_info, progress
from bench.registry import SCENARIOS
from bench.scenarios import ORDER  # importing the package registers the scenarios

RESULTS = Path(__file__).resolve().parent / "results"


def _met(row: Row) -> bool | None:
    """Whether a row meets its target: `met` when the scenario judged it, else the ratio
    against `target_ratio`; None for rows without a target."""
    if "met" in row.extra:
        return bool(row.extra["met"])
    target = row.extra.get("target_ratio")
    if target is None or row.ratio is None:
        return None
    return bool(row.ratio >= target)


def _table(rows: list[Row]) -> str:
    header = ("scenario", "candidate", "value", "unit", "ratio", "target", "notes")
    body = []
    for r in rows:
        ratio = "" if r.ratio is None else f"{r.ratio:.2f}x"
        met = _met(r)
        target = "" if met is None else (
            r.extra.get("target") or f">= {r.extra['target_ratio']}x") + (
            " ok" if met else " MISSED")
        cpu = r.extra.get("relay_cpu_pct")
        notes = [f"{r.extra['elapsed_s']}s"] if "elapsed_s" in r.extra else []
        if cpu is not None and "relay_main_thread_cpu_pct" in r.extra:
            notes.append(f"relay cpu {cpu}% (loop thread {r.extra['relay_main_thread_cpu_pct']}%)")
        elif cpu is not None:
            notes.append(f"relay cpu {cpu}%")
        if "notes" in r.extra:
            notes.append(str(r.extra["notes"]))
        value = f"{r.rate:,.1f}" if r.unit in ("ms", "MB") else f"{r.rate:,.0f}"
        body.append((r.scenario, r.name, value, r.unit, ratio, target, ", ".join(notes)))
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body, strict=True)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)).rstrip()
             for row in (header, *body)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("scenarios", nargs="*", metavar="scenario",
                        help=f"which to run (default: all): {', '.join(ORDER)}")
    parser.add_argument("--quick", action="store_true", help="fewer events, for a smoke run")
    parser.add_argument("--events", type=int, help="override the size of the run (events; "
                        "for ingest, seconds of wrk per server)")
    parser.add_argument("--logs", choices=("file", "devnull", "both"), default="both",
                        help="delivery: where relay's stderr goes (default: both, two runs)")
    parser.add_argument("--profile", action="store_true",
                        help="delivery: one more relay run under py-spy; top hot spots")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when a figure misses its target")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="delivery, ingest, backlog, schema, filters: alternate baseline "
                        "and relay N times (schema, filters: at least 3); medians (this VM's "
                        "speed drifts between runs); latency: N runs per sync mode")
    parser.add_argument("--rate", type=float, metavar="N",
                        help="latency: events per second (default 500)")
    parser.add_argument("--sync", choices=("full", "normal", "both"), default="full",
                        help="latency, ingest: relay's [storage] sync (both: latency "
                        "alternates the two run by run; default full)")
    parser.add_argument("--disk-writer", action="store_true",
                        help="latency: dd writes 2 GB with O_DIRECT in a loop beside the runs")
    parser.add_argument("--storage", choices=("sqlite", "postgres"), default="sqlite",
                        help="relay's backend in every scenario (postgres: a scratch "
                        "database per relay on --postgres)")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test",
                        metavar="URL", help="PostgreSQL server for --storage postgres and "
                        "the cluster scenario (scratch databases are created and dropped)")
    args = parser.parse_args(argv)
    STORAGE.update(kind=args.storage, postgres=args.postgres)

    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    names = args.scenarios or [*(n for n in ORDER if n in SCENARIOS),
                                *(n for n in SCENARIOS if n not in ORDER)]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    RESULTS.mkdir(exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="relay-bench-"))
    machine = machine_info()
    machine["storage"] = args.storage
    progress(f"{machine['nproc']} cpus, {machine['cpu']}, python {machine['python']}; "
             f"scratch {scratch}")
    rows: list[Row] = []
    failed: list[str] = []
    details: dict[str, Any] = {}
    try:
        for name in names:
            spec = SCENARIOS[name]
            options: dict[str, Any] = {"logs": args.logs, "repeat": args.repeat,
                                       "rate": args.rate, "sync": args.sync,
                                       "disk_writer": args.disk_writer}
            if args.profile:
                options["profile"] = RESULTS / f"{stamp}-{name}-profile.txt"
            ctx = Context(quick=args.quick,
                          events=args.events or (spec.quick_events if args.quick else spec.events),
                          workdir=scratch / name, options=options)
            try:
                rows += spec.run(ctx)
            except Exception as exc:  # one broken scenario must not lose the others' figures
                progress(f"{name}: FAILED: {exc!r}")
                ctx.options["error"] = repr(exc)
                failed.append(name)
            details[name] = {"events": ctx.events, **{
                k: str(v) if isinstance(v, Path) else v for k, v in ctx.options.items()}}
    finally:
        if args.keep:
            progress(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)

    print(_table(rows))
    for name, info in details.items():
        summary = info.get("profile_summary")
        if summary:
            print(f"\n{name}: py-spy profile of relay serve during the drain "
                  f"({summary['samples']} samples, run at {info['profile_rate']}/s)")
            for title in ("threads", "components", "self", "inclusive"):
                print(f"  {title}:")
                for func, pct in summary[title]:
                    print(f"    {pct:5.1f}%  {func}")
    out = RESULTS / f"{stamp}-{'-'.join(names)}.json"
    out.write_text(json.dumps({
        "started": stamp, "argv": sys.argv[1:], "quick": args.quick, "machine": machine,
        "scenarios": details, "rows": [dataclasses.asdict(r) for r in rows],
    }, indent=2))
    print(f"\nresults: {out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out}")
    missed = [r for r in rows if _met(r) is False]
    if failed:
        print(f"failed scenarios: {', '.join(failed)} (see the log above)")
        return 2
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
