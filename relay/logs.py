"""Log lines: one per attempt outcome, per config reload, per lifecycle step.

Each line has a stable `action` and the ids it concerns, as key=value text or one JSON
object. Callers pass only what may be shown: secrets and API keys are never fields.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from functools import lru_cache
from typing import Any

logger = logging.getLogger("relay")


def log(action: str, level: int = logging.INFO, **fields: Any) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, action, extra={"fields": fields})


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
        fields = getattr(record, "fields", {})
        stamp = f"{_second(int(record.created))}.{int(record.msecs):03d}Z"
        parts = [stamp, record.levelname, f"action={record.msg}"]
        parts.extend(f"{k}={_text_value(v)}" for k, v in fields.items() if v is not None)
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": f"{_second(int(record.created))}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "action": record.msg,
        }
        data.update({k: v for k, v in getattr(record, "fields", {}).items() if v is not None})
        if record.exc_info:
            data["traceback"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


FLUSH_EVERY = 0.2  # seconds an info line may wait in the buffer


class _BufferedHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """stderr through a 64 KiB buffer. A line per attempt is thousands of lines a second;
    a write() per line cost a fifth of the delivery rate. Warnings and errors are flushed
    at once; info lines within FLUSH_EVERY (`flush_soon`, and on the next line after it).
    A kill -9 may lose the last fraction of a second of info lines, never data."""

    def __init__(self) -> None:
        stream = open(  # noqa: SIM115 - lives as long as the process
            os.dup(sys.stderr.fileno()), "w", buffering=1 << 16, encoding="utf-8",
            errors="backslashreplace",
        )
        super().__init__(stream)
        self._flushed = time.monotonic()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + "\n")
            if record.levelno >= logging.WARNING or \
                    time.monotonic() - self._flushed >= FLUSH_EVERY:
                self.flush()
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        self._flushed = time.monotonic()
        super().flush()


def flush() -> None:
    """Write out buffered lines (relay calls this every FLUSH_EVERY and at exit)."""
    for handler in logger.handlers:
        handler.flush()


def configure(fmt: str, level: int = logging.INFO) -> None:
    """Send relay's log lines to stderr in `fmt` ("text" or "json")."""
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False  # unused
    handler = _BufferedHandler()
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _TextFormatter())
    for old in logger.handlers:
        old.close()
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
