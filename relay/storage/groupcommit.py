"""What both backends' group commit shares (sqlite/writer.py and
postgres/connection.py each say how theirs runs): its bounds, a queued write, and how a
caller is answered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

MAX_BATCH = 512  # operations per transaction: bounds a commit's latency
MAX_QUEUE = 20_000  # queued writes before ingest answers 429 instead of growing memory

Fn = TypeVar("Fn", bound=Callable[..., Any])  # a backend's WriteFn


@dataclass(slots=True)
class Op(Generic[Fn]):
    """A queued write: `fn(connection, [arg, ...])` with others of its kind, answered on
    `future` after the commit (`durable`: the commit is flushed to disk first)."""

    fn: Fn
    arg: Any
    durable: bool
    future: asyncio.Future[Any]
    single: bool = False  # atomic by itself, with others of its kind merged in (one statement)
    bare: bool = False  # run alone, outside a transaction (SQLite)
    alone: bool = False  # its own transaction: long work that must not hold others' commits


def settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    """Resolve a caller's future (on the loop), unless the caller gave up waiting."""
    if future.done():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)
