"""Log lines: text and JSON, single and batched, one line per entry."""

from __future__ import annotations

import json
import logging
import os
import re
import select
import threading
import time
from collections.abc import Iterator

import pytest

from relay import logs


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    logger = logging.getLogger("relay")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    keep = _Keep()
    logger.handlers[:] = [keep]
    logger.setLevel(logging.INFO)
    logs.log("config_reload", result="applied", path="a b.toml", count=2, gone=None)
    logs.log_lines("attempt", [
        (logging.INFO, {"delivery": "dlv_1", "status": 200, "error": None}),
        (logging.WARNING, {"delivery": "dlv_2", "status": None, "error": 'timeout "x"'}),
        (logging.DEBUG, {"delivery": "dlv_3"}),  # below the level: left out
    ])
    yield keep.records
    logger.handlers[:], level, logger.propagate = saved
    logger.setLevel(level)


def formatted(fmt: str, records: list[logging.LogRecord]) -> list[str]:
    formatter = logs.formatter(fmt)
    return "\n".join(formatter.format(r) for r in records).splitlines()


def test_text_lines(records: list[logging.LogRecord]) -> None:
    lines = formatted("text", records)
    assert len(lines) == 3
    assert lines[0].endswith('INFO action=config_reload result=applied path="a b.toml" count=2')
    assert lines[1].endswith("INFO action=attempt delivery=dlv_1 status=200")
    assert lines[2].endswith('WARNING action=attempt delivery=dlv_2 error="timeout \\"x\\""')
    assert records[1].levelno == logging.WARNING  # a batch is flushed like its worst line


def test_json_lines(records: list[logging.LogRecord]) -> None:
    lines = [json.loads(line) for line in formatted("json", records)]
    assert [(d["level"], d["action"]) for d in lines] == [
        ("info", "config_reload"), ("info", "attempt"), ("warning", "attempt")]
    assert lines[2] == {"ts": lines[2]["ts"], "level": "warning", "action": "attempt",
                        "delivery": "dlv_2", "error": 'timeout "x"'}
    assert lines[0]["ts"].endswith("Z")


@pytest.fixture
def stderr_pipe() -> Iterator[int]:
    """relay's logger writing to a pipe that stands in for stderr: its read end."""
    read, write = os.pipe()
    os.set_blocking(read, False)
    logger = logging.getLogger("relay")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    handler = logs._ThreadedHandler(write)
    handler.setFormatter(logs.formatter("text"))
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    yield read
    drainer = threading.Thread(target=lambda: drain(read, until_closed=True))
    drainer.start()  # close() writes what is left: keep reading until then
    handler.close()
    os.close(write)
    drainer.join()
    os.close(read)
    logger.handlers[:], level, logger.propagate = saved
    logger.setLevel(level)


def drain(fd: int, until_closed: bool = False) -> str:
    """What the pipe holds now (or, until_closed, until its write end closes)."""
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            if not until_closed:
                break
            select.select([fd], [], [], 1.0)
            continue
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode()


def read_until(fd: int, text: str, seconds: float = 5.0) -> str:
    got = ""
    deadline = time.monotonic() + seconds
    while text not in got:
        assert time.monotonic() < deadline, f"{text!r} not written; got {got!r}"
        got += drain(fd)
        time.sleep(0.01)
    return got


def test_lines_are_written_in_order_by_the_log_thread(
        stderr_pipe: int) -> None:
    read = stderr_pipe
    for n in range(100):
        logs.log("attempt", delivery=f"dlv_{n}")
    logs.log("endpoint_disabled", logging.WARNING, endpoint="ep")  # wakes the thread
    out = read_until(read, "endpoint_disabled")
    numbers = [int(m) for m in re.findall(r"delivery=dlv_(\d+)", out)]
    assert numbers == list(range(100))


def test_a_stalled_stderr_never_blocks_the_caller_and_drops_are_counted(
        stderr_pipe: int, monkeypatch: pytest.MonkeyPatch) -> None:
    read = stderr_pipe
    monkeypatch.setattr(logs, "_MAX_BUFFERED", 256 << 10)
    # Nobody reads the pipe: its 64 KiB fill and the log thread blocks in write(); the
    # caller goes on (this loop would hang if emit wrote), past the cap lines are dropped.
    for n in range(40_000):
        logs.log("attempt", delivery=f"dlv_{n}", status=200)
    # Read until every line is written or counted. Drops may be reported in several
    # notices: a flush on the FLUSH_EVERY timer can take the buffer (and the count so
    # far) while the loop above is still dropping lines.
    out = ""
    deadline = time.monotonic() + 10
    while True:
        out += drain(read)
        dropped = sum(int(n) for n in re.findall(r"log_lines_dropped count=(\d+)", out))
        written = len(re.findall(r"delivery=dlv_", out))
        if written + dropped >= 40_000:
            break
        assert time.monotonic() < deadline, f"{written} written, {dropped} dropped of 40,000"
        time.sleep(0.01)
    assert dropped > 0 and written + dropped == 40_000
