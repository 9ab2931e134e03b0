"""Log lines: one per attempt outcome, per config reload, per lifecycle step.

Each line has a stable `action` and the ids it concerns, as key=value text or one JSON
object. Callers pass only what may be shown: secrets and API keys are never fields.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import threading
import time
from functools import lru_cache
from typing import Any

import orjson

logger = logging.getLogger("relay")


def log(action: str, level: int = logging.INFO, **fields: Any) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, action, extra={"fields": fields})


def log_lines(action: str, lines: list[tuple[int, dict[str, Any]]]) -> None:
    """Several lines of one action, each with its level and fields, through a single log
    record: the attempts of a recorded batch cost one handler call, not one each."""
    lines = [line for line in lines if logger.isEnabledFor(line[0])]
    if lines:
        level = max(line[0] for line in lines)
        logger.log(level, action, extra={"lines": lines})


def entries(record: logging.LogRecord) -> list[tuple[int, dict[str, Any]]]:
    """The (level, fields) lines a record carries: one, or a batch from log_lines."""
    return getattr(record, "lines", None) or [(record.levelno, getattr(record, "fields", {}))]


_NEEDS_QUOTES = re.compile(r'[\s"=]|^$')


def _text_value(value: Any) -> str:
    """Values print bare unless they hold spaces, quotes or "=" (then JSON-quoted)."""
    if type(value) is int:
        return str(value)
    text = str(value)
    return json.dumps(text) if _NEEDS_QUOTES.search(text) else text


@lru_cache(maxsize=4)
def _second(epoch: int) -> str:
    """The formatted second, computed once per second: one line per attempt is hot."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch))


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        head = f"{_second(int(record.created))}.{int(record.msecs):03d}Z"
        out = []
        for level, fields in entries(record):
            parts = [head, logging.getLevelName(level), f"action={record.msg}"]
            parts.extend(f"{k}={_text_value(v)}" for k, v in fields.items() if v is not None)
            out.append(" ".join(parts))
        text = "\n".join(out)
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = f"{_second(int(record.created))}.{int(record.msecs):03d}Z"
        out = []
        for level, fields in entries(record):
            data: dict[str, Any] = {
                "ts": ts, "level": logging.getLevelName(level).lower(), "action": record.msg,
            }
            data.update({k: v for k, v in fields.items() if v is not None})
            if record.exc_info:
                data["traceback"] = self.formatException(record.exc_info)
            try:
                out.append(orjson.dumps(data, default=str).decode())
            except orjson.JSONEncodeError:  # lone surrogates, ints past 64 bits
                out.append(json.dumps(data, default=str))
        return "\n".join(out)


FLUSH_EVERY = 0.2  # seconds an info line may wait in the buffer
_FLUSH_BYTES = 1 << 16  # a buffer this large is written at once
_MAX_BUFFERED = 8 << 20  # past this (stderr not keeping up), info lines are dropped, counted


class _ThreadedHandler(logging.Handler):
    """stderr, written by a thread of its own. A line per attempt is thousands of lines a
    second: a write() per line cost a fifth of the delivery rate, so lines are buffered
    and written together, within FLUSH_EVERY (at once for warnings, errors and a full
    buffer). And a write() can block for hundreds of ms when the disk behind a redirected
    stderr is busy (seen beside a `dd`): on the event loop that would hold every request,
    so the loop only appends to a list and this thread does the writing. A kill -9 may
        lose the last fraction of a second of lines, never data. If stderr stops taking lines
    (a stalled pipe), info lines past _MAX_BUFFERED are dropped and counted in a
    `log_lines_dropped` warning rather than growing memory."""

    def __init__(self, fd: int | None = None) -> None:
        super().__init__()
        self._fd = os.dup(sys.stderr.fileno() if fd is None else fd)
        self._lines: list[str] = []
        self._size = 0
        self._dropped = 0
        self._pending = threading.Lock()  # guards _lines, _size, _dropped
        self._writing = threading.Lock()  # one writer at a time, so lines keep their order
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="relay-log", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        with self._pending:
            if self._size >= _MAX_BUFFERED and record.levelno < logging.WARNING:
                self._dropped += 1
                return
            self._lines.append(line)
            self._size += len(line)
            full = self._size >= _FLUSH_BYTES
        if full or record.levelno >= logging.WARNING:
            self._wake.set()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(FLUSH_EVERY)
            self._wake.clear()
            self.flush()

    def flush(self) -> None:
        """Write out every buffered line (the thread's job; also called at exit)."""
        with self._writing:
            with self._pending:
                lines, self._lines, self._size = self._lines, [], 0
                dropped, self._dropped = self._dropped, 0
            if dropped:
                notice = logging.LogRecord("relay", logging.WARNING, "", 0,
                                           "log_lines_dropped", None, None)
                notice.fields = {"count": dropped, "reason": "stderr was not keeping up"}
                lines.append(self.format(notice))
            if not lines:
                return
            data = ("\n".join(lines) + "\n").encode("utf-8", "backslashreplace")
            with contextlib.suppress(OSError):  # stderr gone: nothing to tell it
                while data:
                    data = data[os.write(self._fd, data):]

    def close(self) -> None:
        """Write what is left, stop the thread, close our duplicate of stderr."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        self._thread.join()
        self.flush()
        os.close(self._fd)
        super().close()


def flush() -> None:
    """Write out buffered lines now (relay calls this at exit)."""
    for handler in logger.handlers:
        handler.flush()


def formatter(fmt: str) -> logging.Formatter:
    """The line format of `server.log_format`."""
    return _JsonFormatter() if fmt == "json" else _TextFormatter()


def configure(fmt: str, level: int = logging.INFO) -> None:
    """Send relay's log lines to stderr in `fmt` ("text" or "json")."""
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False  # unused
    handler = _ThreadedHandler()
    handler.setFormatter(formatter(fmt))
    for old in logger.handlers:
        old.close()
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
