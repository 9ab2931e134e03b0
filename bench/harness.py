"""Shared pieces of the scenarios: processes (receiver, relay), HTTP probes, payloads, rows.

The orchestrating process stays synchronous and light (blocking http.client, 50 ms polls) so
it takes next to no CPU from the processes being measured.
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
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

    def count(self) -> int:
        return int(self._http.request("GET", "/count")[1]["count"])

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
    raise TypeError(f"no TOML for {value!r}")


def toml(sections: dict[str, dict[str, Any]], endpoints: list[dict[str, Any]]) -> str:
    """A relay config: plain tables plus [[endpoints]] (only the value types we use)."""
    lines: list[str] = []
    for name, table in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
        lines.append("")
    for ep in endpoints:
        lines.append("[[endpoints]]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in ep.items()]
        lines.append("")
    return "\n".join(lines)


class RelayServer:
    """`relay serve` in its own process, on a fresh database in `workdir`.

    Its stderr (one log line per attempt) goes to `log_path`, or /dev/null when None.
    """

    def __init__(self, workdir: Path, delivery: dict[str, Any], endpoints: list[dict[str, Any]],
                 log_path: Path | None, log_format: str = "text") -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.port = free_port()
        self.config_path = workdir / "relay.toml"
        self.log_path = log_path
        self.sections: dict[str, dict[str, Any]] = {
            "server": {"listen": f"127.0.0.1:{self.port}", "log_format": log_format},
            "storage": {"path": str(workdir / "relay.db")},
            "delivery": delivery,
        }
        self.endpoints = endpoints
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.http = Http(self.port, timeout=120.0)

    def write_config(self) -> None:
        """Write atomically (rename), so the file watcher never reads half a file."""
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(toml(self.sections, self.endpoints))
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
    for dist in ("aiohttp", "httpx", "uvicorn", "uvloop", "httptools", "starlette", "relay"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "platform": platform.platform(), "versions": versions}
