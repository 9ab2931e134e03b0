"""Log lines: text and JSON, single and batched, one line per entry."""

from __future__ import annotations

import json
import logging
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
