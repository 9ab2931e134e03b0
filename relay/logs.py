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

    def close(self) -> None:
        """Flush and close our duplicate of stderr (StreamHandler leaves streams open)."""
        try:
            self.flush()
            self.stream.close()
        finally:
            super().close()


def flush() -> None:
    """Write out buffered lines (relay calls this every FLUSH_EVERY and at exit)."""
    for handler in logger.handlers:
        handler.flush()


def formatter(fmt: str) -> logging.Formatter:
    """The line format of `server.log_format`."""
    return _JsonFormatter() if fmt == "json" else _TextFormatter()


def configure(fmt: str, level: int = logging.INFO) -> None:
    """Send relay's log lines to stderr in `fmt` ("text" or "json")."""
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False  # unused
    handler = _BufferedHandler()
    handler.setFormatter(formatter(fmt))
    for old in logger.handlers:
        old.close()
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
