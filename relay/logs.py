"""Log lines: one per attempt outcome, per config reload, per lifecycle step.

Each line has a stable `action` and the ids it concerns, as key=value text or one JSON
object. Callers pass only what may be shown: secrets and API keys are never fields.
"""

from __future__ import annotations

import json
import logging
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


def configure(fmt: str, level: int = logging.INFO) -> None:
    """Send relay's log lines to stderr in `fmt` ("text" or "json")."""
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False  # unused
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _TextFormatter())
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
