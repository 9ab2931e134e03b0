"""Shared pieces of the scenarios: processes (receiver, relay), HTTP probes, payloads, rows.

The orchestrating process stays synchronous and light (blocking http.client, 50 ms polls) so
it takes next to no CPU from the processes being measured.
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import IO, Any

PYTHON = sys.executable
CONCURRENCY = 64  # senders in flight, the same for every candidate
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYq="
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def progress(message: str) -> None:
    """One progress line on stderr (stdout carries the table)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Row:
    """One measured figure: `rate` in `unit`, `ratio` against the scenario's reference."""

    scenario: str
    name: str
    rate: float
    unit: str = "req/s"
    ratio: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Context:
    """What a scenario gets: the size of the run and a scratch directory of its own."""

    quick: bool
    events: int
    workdir: Path
    options: dict[str, Any] = field(default_factory=dict)


# --- payloads ---------------------------------------------------------------------------


def event_data(i: int) -> dict[str, Any]:
    """The `data` of event i: sized so relay's envelope around it is about 300 bytes."""
    return {"lead_id": f"lead_{i:08d}", "score": 0.87, "campaign_id": "camp_spring_homes",
            "source": "benchmark", "note": "x" * 96}


def envelope(i: int) -> bytes:
    """The body relay would send for event i (same shape and size), for the baselines."""
    env = {"id": f"evt_{i:026d}", "type": "bench.event", "timestamp": "2025-01-01T00:00:00Z",
           "tenant_id": "default", "data": event_data(i)}
    return json.dumps(env, separators=(",", ":")).encode()


def percentiles(values: list[float], points: tuple[int, ...] = (50, 99)) -> dict[str, float]:
    """Nearest-rank percentiles plus max and count (p99 of 100 values is the 99th smallest)."""
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    out: dict[str, float] = {"n": len(ordered)}
    for p in points:
        rank = max(1, -(-p * len(ordered) // 100))  # ceil(p/100 * n)
        out[f"p{p}"] = round(ordered[rank - 1], 2)
    out["max"] = round(ordered[-1], 2)
    return out


# --- processes and probes -----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, all threads (Linux /proc)."""
    return cpu_seconds_of(Path(f"/proc/{pid}/stat"))


def thread_cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU time so far of a process's main thread and of all its other threads together:
    says whether the event loop itself (one core at most) is the limit."""
    main = other = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            seconds = cpu_seconds_of(task / "stat")
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        if task.name == str(pid):
            main = seconds
        else:
            other += seconds
    return main, other


def cpu_seconds_of(stat: Path) -> float:
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


class Http:
    """A keep-alive connection to one local server, reconnecting after errors."""

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self.port = port
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"content-type": "application/json"} if data is not None else {}
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                                        timeout=self.timeout)
            try:
                self._conn.request(method, path, body=data, headers=headers)
                resp = self._conn.getresponse()
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def post_raw(self, path: str, data: bytes) -> tuple[int, bytes]:
        """POST ready-made JSON bytes (no encoding per call); the status and raw answer."""
        if self._conn is None:
            self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            self._conn.request("POST", path, body=data,
                               headers={"content-type": "application/json"})
            resp = self._conn.getresponse()
            return resp.status, resp.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise

    def text(self, path: str) -> str:
        """GET a non-JSON resource (e.g. /metrics) as text."""
        if self._conn is None:
            self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            self._conn.request("GET", path)
            return self._conn.getresponse().read().decode()
        except (OSError, http.client.HTTPException):
            self.close()
            raise

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def wait_until_up(port: int, path: str, proc: subprocess.Popen[bytes], what: str,
                  timeout: float = 30.0) -> None:
    """Poll until `path` answers 200; fail early if the process died."""
    http = Http(port, timeout=2.0)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited with code {proc.returncode} while starting")
            try:
                if http.request("GET", path)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
    finally:
        http.close()
    raise RuntimeError(f"{what} did not answer {path} within {timeout:g}s")


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak since start or since reset_peak_rss), in KiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux: `5` to clear_refs), so a later phase's peak can
    be read on its own. False when the kernel refuses (then VmHWM spans every phase)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def stop(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> int:
    """SIGTERM, wait; SIGKILL if it does not go. Returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


class Receiver:
    """The counting receiver (bench.receiver) in its own process."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int) -> None:
        self.proc = proc
        self.port = port
        self.url = f"http://127.0.0.1:{port}/hooks"
        self._http = Http(port)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def url_for(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def count(self) -> int:
        return int(self._http.request("GET", "/count")[1]["count"])

    def counts(self) -> dict[str, int]:
        """Requests answered 200 (`count`), 500 (`failed`, /fail...), held (`hanging`)."""
        return dict(self._http.request("GET", "/count")[1])

    def latencies(self) -> dict[str, list[float]]:
        """Ingest-to-arrival milliseconds of every POST /lat/NAME since the last reset."""
        return dict(self._http.request("GET", "/latencies")[1])

    def reset(self) -> None:
        self._http.request("POST", "/reset")

    def wait_for(self, n: int, timeout: float, every: float = 0.05) -> float:
        """Poll the count every `every` s until it reaches n; the monotonic time it did."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.count() >= n:
                return time.monotonic()
            time.sleep(every)
        raise TimeoutError(f"receiver count {self.count()} < {n} after {timeout:g}s")


@contextmanager
def receiver() -> Iterator[Receiver]:
    port = free_port()
    proc = subprocess.Popen([PYTHON, "-m", "bench.receiver", "--port", str(port)])
    try:
        wait_until_up(port, "/count", proc, "receiver")
        rec = Receiver(proc, port)
        yield rec
        rec._http.close()
    finally:
        stop(proc)


# --- relay serve ----------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):  # an inline table; keys quoted ("data.score", "$gte")
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}"
                                for k, v in value.items()) + " }"
    raise TypeError(f"no TOML for {value!r}")


def toml(sections: dict[str, dict[str, Any]], endpoints: list[dict[str, Any]],
         event_types: Sequence[dict[str, Any]] = ()) -> str:
    """A relay config: plain tables plus [[event_types]] and [[endpoints]] (only the value
    types we use)."""
    lines: list[str] = []
    for name, table in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
        lines.append("")
    for array, items in (("event_types", event_types), ("endpoints", endpoints)):
        for item in items:
            lines.append(f"[[{array}]]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in item.items()]
            lines.append("")
    return "\n".join(lines)


# `python -m bench --storage postgres`: every relay serve gets a scratch database on the
# server at STORAGE["postgres"] (created at start, dropped at stop) instead of a SQLite file.
STORAGE: dict[str, str] = {"kind": "sqlite", "postgres": ""}


def _admin_sql(statement: str) -> None:
    import asyncio

    import asyncpg

    async def run() -> None:
        con = await asyncpg.connect(STORAGE["postgres"])
        try:
            await con.execute(statement)
        finally:
            await con.close()

    asyncio.run(run())


@contextmanager
def scratch_postgres() -> Iterator[str]:
    """A new PostgreSQL database's URL on the bench server; dropped afterwards."""
    from urllib.parse import urlsplit, urlunsplit

    name = f"relay_bench_{os.urandom(4).hex()}"
    _admin_sql(f"CREATE DATABASE {name}")
    try:
        yield urlunsplit(urlsplit(STORAGE["postgres"])._replace(path="/" + name))
    finally:
        _admin_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


class RelayServer:
    """`relay serve` in its own process, on a fresh database in `workdir` (or, with
    `--storage postgres`, a scratch PostgreSQL database; `database_url` shares one).

    Its stderr (one log line per attempt) goes to `log_path`, or /dev/null when None.
    """

    def __init__(self, workdir: Path, delivery: dict[str, Any], endpoints: list[dict[str, Any]],
                 log_path: Path | None, log_format: str = "text",
                 event_types: list[dict[str, Any]] | None = None,
                 storage: dict[str, Any] | None = None,
                 database_url: str | None = None) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.port = free_port()
        self.config_path = workdir / "relay.toml"
        self.log_path = log_path
        self._scratch: Any = None
        if database_url is None and STORAGE["kind"] == "postgres":
            self._scratch = scratch_postgres()
            database_url = self._scratch.__enter__()
        base_storage = {"path": str(workdir / "relay.db")} if database_url is None \
            else {"url": database_url}
        self.sections: dict[str, dict[str, Any]] = {
            "server": {"listen": f"127.0.0.1:{self.port}", "log_format": log_format},
            "storage": {**base_storage, **(storage or {})},
            "delivery": delivery,
        }
        self.endpoints = endpoints
        self.event_types = event_types or []
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.http = Http(self.port, timeout=120.0)

    def write_config(self) -> None:
        """Write atomically (rename), so the file watcher never reads half a file."""
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(toml(self.sections, self.endpoints, self.event_types))
        tmp.replace(self.config_path)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        self.write_config()
        self._log = open(self.log_path or os.devnull, "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "relay", "serve", "--config", str(self.config_path)],
            stdout=subprocess.DEVNULL, stderr=self._log, cwd=self.workdir,
        )
        wait_until_up(self.port, "/readyz", self.proc, "relay serve")

    def ingest(self, events: list[dict[str, Any]], batch: int = 500) -> None:
        for at in range(0, len(events), batch):
            status, body = self.http.request("POST", "/v1/events/batch",
                                             {"events": events[at:at + batch]})
            if status != 202:
                raise RuntimeError(f"ingest answered {status}: {body}")

    def reload(self) -> None:
        """Rewrite the config and send SIGHUP: applies at once (the watcher would also
        notice the file, but only after its 200 ms debounce; that second reload is a no-op)."""
        self.write_config()
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)

    def stop(self) -> int:
        self.http.close()
        code = stop(self.proc) if self.proc is not None else 0
        if self._log is not None:
            self._log.close()
        if self._scratch is not None:
            self._scratch.__exit__(None, None, None)
            self._scratch = None
        return code


@contextmanager
def relay_server(*args: Any, **kwargs: Any) -> Iterator[RelayServer]:
    server = RelayServer(*args, **kwargs)
    try:
        server.start()
        yield server
    finally:
        code = server.stop()
        if code != 0:
            progress(f"relay serve exited with code {code} (expected 0 after SIGTERM)")


# --- clients ----------------------------------------------------------------------------


def run_client(kind: str, url: str, requests: int,
               concurrency: int = CONCURRENCY) -> dict[str, Any]:
    """Run a bare client (bench.clients) in its own process; its JSON report."""
    out = subprocess.run(
        [PYTHON, "-m", "bench.clients", kind, "--url", url, "--requests", str(requests),
         "--concurrency", str(concurrency), "--secret", SECRET],
        check=True, capture_output=True, text=True,
    )
    return dict(json.loads(out.stdout))


WRK_SCRIPT = Path(__file__).resolve().parent / "wrk" / "post_event.lua"


def run_wrk(port: int, seconds: float, connections: int = 32, threads: int = 1) -> dict[str, Any]:
    """wrk (Debian package) POSTing one event per request on `connections` keep-alive
    connections for `seconds`; the summary its Lua `done` prints, plus `rate` (responses/s,
    non-2xx included: check `errors.status`). One wrk thread: enough for these rates, and it
    leaves the second core to the server."""
    exe = shutil.which("wrk")
    if exe is None:
        raise RuntimeError("the ingest scenarios need wrk: apt-get install -y wrk")
    out = subprocess.run(
        [exe, "-t", str(threads), "-c", str(connections), "-d", f"{seconds:g}s",
         "--timeout", "10s", "-s", str(WRK_SCRIPT), f"http://127.0.0.1:{port}"],
        check=True, capture_output=True, text=True,
    )
    match = re.search(r"^BENCH-JSON (.*)$", out.stdout, re.M)
    if match is None:
        raise RuntimeError(f"no summary from wrk:\n{out.stdout}\n{out.stderr}")
    report: dict[str, Any] = json.loads(match.group(1))
    report["rate"] = report["requests"] / (report["duration_us"] / 1e6)
    report["latency_ms"] = {k: round(v / 1000, 2) for k, v in report.pop("latency_us").items()}
    return report


def run_load(url: str, rate: float, seconds: float) -> dict[str, Any]:
    """The open-loop paced sender (bench.load) in its own process; its JSON report."""
    out = subprocess.run(
        [PYTHON, "-m", "bench.load", "--url", url, "--rate", str(rate), "--seconds",
         str(seconds)], check=True, capture_output=True, text=True,
    )
    return dict(json.loads(out.stdout))


@contextmanager
def process(args: list[str], port: int, ready_path: str, what: str) -> Iterator[int]:
    """A server process (e.g. the ingest baseline) until the block ends; yields its pid."""
    proc = subprocess.Popen([PYTHON, *args], stdout=subprocess.DEVNULL)
    try:
        wait_until_up(port, ready_path, proc, what)
        yield proc.pid
    finally:
        stop(proc)


def ingested(server: RelayServer) -> int:
    """relay's own count of accepted events (`relay_events_ingested_total` in /metrics)."""
    match = re.search(r"^relay_events_ingested_total ([0-9.e+]+)$",
                      server.http.text("/metrics"), re.M)
    if match is None:
        raise RuntimeError("relay_events_ingested_total not in /metrics")
    return int(float(match.group(1)))


# --- the machine's load ---------------------------------------------------------------


class CpuPressure:
    """How much of a stretch of time some runnable task waited for a CPU (Linux PSI,
    /proc/pressure/cpu "some"), in percent: says whether neighbours on a shared machine
    disturbed a run. None where the kernel does not report it."""

    def __init__(self) -> None:
        self._start = self._read()
        self._began = time.monotonic()

    @staticmethod
    def _read() -> int | None:
        try:
            line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        except (OSError, IndexError):
            return None
        return int(line.rsplit("total=", 1)[1])

    def percent(self) -> float | None:
        end = self._read()
        if end is None or self._start is None:
            return None
        elapsed_us = (time.monotonic() - self._began) * 1e6
        return round(100 * (end - self._start) / elapsed_us, 1) if elapsed_us else None


# --- the disk ---------------------------------------------------------------------------


class FsyncProbe:
    """What the disk itself takes for a durable write, measured beside relay in the same
    run: a thread appending 4 KiB and calling fdatasync (as SQLite does for a commit),
    `rate` times a second, on the filesystem of `directory`. fdatasync gives the GIL up,
    so the thread takes next to no CPU from this process.

    `percentiles` weighs each fdatasync once, so one 300 ms stall among 500 calls barely
    moves the p99; but every request that arrives during the stall waits for it. `waits`
    weighs by time instead: what a commit starting at a random instant would wait for
    (what is left of the fdatasync in progress, if any, then one median fdatasync of its
    own), the figure to set beside a group-committing writer's per-request tail."""

    def __init__(self, directory: Path, rate: float = 50.0) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "fsync-probe"
        self.every = 1.0 / rate
        self.samples: list[float] = []
        self._spans: list[tuple[float, float]] = []  # (start, end) of each fdatasync, s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fsync-probe", daemon=True)

    def _run(self) -> None:
        block = b"\0" * 4096
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            i = 0
            while not self._stop.wait(self.every):
                os.pwrite(fd, block, (i % 16384) * 4096)  # a 64 MB file, like a large WAL
                began = time.perf_counter()
                os.fdatasync(fd)
                ended = time.perf_counter()
                self.samples.append((ended - began) * 1000.0)
                self._spans.append((began, ended))
                i += 1
        finally:
            os.close(fd)
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> FsyncProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def percentiles(self) -> dict[str, float]:
        return percentiles(self.samples)

    def waits(self, step: float = 0.001) -> dict[str, float]:
        """Percentiles of the time-weighted wait (see the class), one arrival per `step` s
        over the probe's run."""
        if not self._spans:
            return {"n": 0}
        own = percentiles(self.samples)["p50"]
        out: list[float] = []
        t, end = self._spans[0][0], self._spans[-1][1]
        spans = iter(self._spans)
        span = next(spans, None)
        while t < end:
            while span is not None and span[1] <= t:
                span = next(spans, None)
            left = (span[1] - t) * 1000.0 if span is not None and span[0] <= t else 0.0
            out.append(left + own)
            t += step
        return percentiles(out)


@contextmanager
def disk_writer(directory: Path) -> Iterator[None]:
    """A noisy neighbour on the disk: `dd` writing 2 GB with O_DIRECT, in a loop, until
    the block ends (the file is removed)."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "dd-noise"
    proc = subprocess.Popen(
        ["sh", "-c", f"while :; do dd if=/dev/zero of={target} bs=1M count=2048 "
         "oflag=direct status=none; done"], start_new_session=True,
    )
    try:
        time.sleep(1.0)  # let it reach its steady pace before the measurement starts
        yield
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        target.unlink(missing_ok=True)


# --- the machine ----------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    """What the figures depend on: cores, CPU, Python, library versions."""
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for dist in ("aiohttp", "httpx", "uvicorn", "uvloop", "httptools", "starlette", "asyncpg",
                 "relay"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "platform": platform.platform(), "versions": versions}
