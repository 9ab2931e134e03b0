"""SQLite's writer: one thread, one writing connection, group commit.

Every write is an operation queued to the writer. The writer takes every queued
operation (up to `MAX_BATCH`), runs them in one `BEGIN IMMEDIATE` transaction
(consecutive operations of one kind together) and commits once; each caller's future
resolves only after that commit. A batch of single-statement operations (ingest without
idempotency keys) is that statement alone, in SQLite's implicit transaction. If the
transaction fails, it is rolled back and each operation is re-run alone, so one bad
operation cannot fail its neighbours. With `[storage] sync = "full"`, commits that answer
a caller's request (ingest, API changes) use `synchronous=FULL` (fsync: acknowledged means
on disk); with "normal" they use NORMAL (acknowledged means handed to the OS). Claims and
outcomes always use NORMAL, since losing one only repeats a delivery (at-least-once).

Threads: the only writing connection lives on a thread of its own, which takes the
queued operations itself and runs each transaction whole: no hop back to the event loop
per statement, and the next transaction starts while the loop answers the last one's
callers. Between transactions it does what the checkpointer (checkpoint.py, a thread
with a connection of its own) asks of the writing connection. Reads (store.py) go
through aiosqlite on a read-only connection: one query, one hop.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from relay.errors import RelayError, StorageError, Unprocessable
from relay.storage.base import Observer
from relay.storage.groupcommit import MAX_BATCH, Op, settle
from relay.storage.sqlite.checkpoint import Checkpointer
from relay.storage.sqlite.connection import connect

Sync = Literal["full", "normal"]

WriteFn = Callable[[sqlite3.Connection, list[Any]], list[Any]]
_Op = Op[WriteFn]  # for annotations: built as Op (a generic alias's call costs more)


_Settled = tuple[_Op, Any, BaseException | None]  # an operation, its result, its error


def _run_bare(db: sqlite3.Connection, op: _Op) -> _Settled:
    """An operation run alone, outside a transaction (Store.pragma)."""
    try:
        [result] = op.fn(db, [op.arg])
    except Exception as exc:
        return op, None, _write_error(exc)
    return op, result, None


def _write_error(exc: Exception) -> Exception:
    """What a caller gets for a failed write: SQLite's errors as StorageError (503), an
    operation's own errors (Conflict, NotFound, ...) as they are, and SQLite's refusal of
    the operation's data (DataError: a string or blob too big) as that request's 422."""
    if isinstance(exc, sqlite3.DataError):
        return Unprocessable(f"the database cannot store a value of this request: {exc}")
    return StorageError(f"database write failed: {exc}") if isinstance(exc, sqlite3.Error) \
        else exc


def _database_failed(exc: Exception) -> bool:
    """Whether a failed write says the database itself fails (health, /readyz)."""
    return isinstance(exc, sqlite3.Error) and not isinstance(exc, sqlite3.DataError)


class Writer:
    """The writer thread with group commit and the checkpointer thread beside it, on one
    database file (see the module docstring). `on_health` hears, on the loop, whether
    writes succeed; `min_free` and `on_space` are the checkpointer's (free space)."""

    def __init__(self, path: Path, *, sync: Sync, observer: Observer | None,
                 on_health: Callable[[bool], None], min_free: int = 0,
                 on_space: Callable[[bool, int], None] | None = None) -> None:
        self.path = path
        self._durable_full = sync == "full"  # durable commits fsync ([storage] sync)
        self._observer = observer
        self._on_health = on_health
        self._checkpoints = Checkpointer(path, observer=observer, min_free=min_free,
                                         on_space=on_space)
        self._ops: queue.SimpleQueue[_Op | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Future[None] | None = None  # resolved when the thread ends
        self._closing = False  # set on the loop before the sentinel: nothing queued after it
        self._sync_full = False  # the writer thread's PRAGMA synchronous

    async def open(self) -> None:
        """Start the writer thread (it opens and migrates the database), then the
        checkpointer. Raises what opening raised; the caller closes."""
        self._closing = False
        loop = asyncio.get_running_loop()
        opened: asyncio.Future[None] = loop.create_future()
        self._stopped = loop.create_future()
        thread = threading.Thread(
            target=self._write_loop, args=(loop, opened, self._stopped),
            name="relay-sqlite-writer", daemon=True,
        )
        thread.start()
        self._thread = thread  # only once started: close() waits for it to stop
        await opened
        self._checkpoints.start(loop)

    async def close(self) -> None:
        """Finish queued writes, then stop both threads. Safe to call twice, even at once."""
        if self._thread is not None:
            assert self._stopped is not None
            if not self._closing:
                self._closing = True
                self._ops.put(None)
            await asyncio.shield(self._stopped)  # a cancelled close() can be repeated
            self._thread = None
        await self._checkpoints.stop()

    @property
    def free(self) -> int | None:
        """Bytes free on the database's filesystem at the checkpointer's last look."""
        return self._checkpoints.free

    async def submit(self, fn: WriteFn, arg: Any, *, durable: bool = False,
                     bare: bool = False, alone: bool = False, single: bool = False) -> Any:
        if not self.running():
            raise StorageError("the store is closed")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._ops.put(Op(fn, arg, durable, future, single, bare, alone))
        return await future

    def queued(self) -> int:
        return self._ops.qsize()

    def running(self) -> bool:
        """Taking writes: open, not closing, its thread alive."""
        return self._thread is not None and not self._closing and self._thread.is_alive()

    def _write_loop(self, loop: asyncio.AbstractEventLoop, opened: asyncio.Future[None],
                    stopped: asyncio.Future[None]) -> None:
        """The writer thread: open the database, then run queued operations, a batch per
        transaction, until the None sentinel. Results go back to the loop without waiting
        for it: the next transaction starts while the loop answers the last one's callers."""
        try:
            try:
                db = connect(self.path)
                try:
                    self._checkpoints.opened(db)
                except BaseException:
                    db.close()
                    raise
            except BaseException as exc:
                loop.call_soon_threadsafe(settle, opened, None, exc)
                return
            loop.call_soon_threadsafe(settle, opened, None, None)
            try:
                stop = False
                pending: _Op | None = None  # a bare operation met while filling a batch
                while not stop:
                    op = pending if pending is not None else self._ops.get()
                    pending = None
                    if op is None:
                        break
                    if op.bare:
                        loop.call_soon_threadsafe(self._settle_all, [_run_bare(db, op)], None)
                        continue
                    batch = [op]
                    while not op.alone and len(batch) < MAX_BATCH and not self._ops.empty():
                        nxt = self._ops.get_nowait()
                        if nxt is None:
                            stop = True
                            break
                        if nxt.bare or nxt.alone:
                            pending = nxt
                            break
                        batch.append(nxt)
                    self._checkpoints.tend(db)
                    if db.in_transaction:  # left by a failed COMMIT and ROLLBACK (full disk)
                        with contextlib.suppress(sqlite3.Error):  # else BEGIN says why
                            db.execute("ROLLBACK")
                    parts = self._parts(batch)
                    for i, part in enumerate(parts):
                        try:
                            settled, healthy = self._run(db, part, retry_singly=len(part) > 1)
                        except BaseException as exc:  # a bug: answer the batch, then stop
                            failed: list[_Settled] = [
                                (op, None, exc) for later in parts[i:] for op in later]
                            loop.call_soon_threadsafe(self._settle_all, failed, False)
                            raise
                        loop.call_soon_threadsafe(self._settle_all, settled, healthy)
            finally:
                db.close()
        finally:
            if not self._closing:  # the thread died: writes fail from now on
                loop.call_soon_threadsafe(self._on_health, False)
            closed = StorageError("the store is closed")
            while not self._ops.empty():  # submitted while closing: never run
                if (late := self._ops.get_nowait()) is not None:
                    loop.call_soon_threadsafe(settle, late.future, None, closed)
            loop.call_soon_threadsafe(settle, stopped, None, None)

    def _parts(self, batch: list[_Op]) -> list[list[_Op]]:
        """The transactions a batch runs as. With sync = "full", the operations that need
        no fsync (claims, outcomes) commit first on their own, so a claim never waits for
        the durable group queued beside it: its caller has it while that group's fsync
        runs. Operations submitted together have no order between them to keep."""
        if not self._durable_full:
            return [batch]
        quick = [op for op in batch if not op.durable]
        if not quick or len(quick) == len(batch):
            return [batch]
        return [quick, [op for op in batch if op.durable]]

    def _settle_all(self, settled: list[_Settled], healthy: bool | None) -> None:
        """On the loop: resolve the callers' futures; record whether writes succeed (None:
        no write was tried)."""
        if healthy is not None:
            self._on_health(healthy)
        for op, result, error in settled:
            settle(op.future, result, error)

    def _run(self, db: sqlite3.Connection, batch: list[_Op], *,
             retry_singly: bool) -> tuple[list[_Settled], bool]:
        """Each operation's result or error, and whether the database took its writes
        (false after any SQLite error; an operation refusing its input, such as an id
        conflict, says nothing about the database). A failed batch is re-run one
        operation at a time, so one bad operation cannot fail its neighbours."""
        try:
            results = self._transaction(db, batch)
        except Exception as exc:
            if retry_singly:
                settled: list[_Settled] = []
                healthy = True
                for op in batch:
                    one, ok = self._run(db, [op], retry_singly=False)
                    settled += one
                    healthy = healthy and ok
                return settled, healthy
            error = _write_error(exc)
            return [(op, None, error) for op in batch], not _database_failed(exc)
        return [(op, result, result if isinstance(result, RelayError) else None)
                for op, result in zip(batch, results, strict=True)], True

    def _transaction(self, db: sqlite3.Connection, batch: list[_Op]) -> list[Any]:
        """One transaction for the whole batch, rolled back on any error. The COMMIT's
        time goes to the observer: with sync = "full" a durable one includes the fsync.
        A batch of single-statement operations of one kind (ingest without idempotency
        keys: the usual case) is that one statement in SQLite's implicit transaction,
        without BEGIN and COMMIT: every statement gives up the GIL, and taking it back
        from the busy event loop was most of a commit's time. Its observed commit time is
        then the statement's."""
        durable = any(op.durable for op in batch)
        full = durable and self._durable_full
        if full != self._sync_full:
            db.execute(f"PRAGMA synchronous={'FULL' if full else 'NORMAL'}")
            self._sync_full = full
        if not db.in_transaction and all(op.single and op.fn is batch[0].fn for op in batch):
            began = time.perf_counter()
            merged = batch[0].fn(db, [op.arg for op in batch])
            self._committed(durable, time.perf_counter() - began)
            return merged
        results: list[Any] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            for fn, ops in itertools.groupby(batch, key=lambda op: op.fn):
                results.extend(fn(db, [op.arg for op in ops]))
            began = time.perf_counter()
            db.execute("COMMIT")
            self._committed(durable, time.perf_counter() - began)
        except BaseException:
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            raise
        return results

    def _committed(self, durable: bool, seconds: float) -> None:
        """A commit took `seconds`: counted for the checkpointer, timed for the observer."""
        self._checkpoints.committed()
        if self._observer is not None:
            self._observer.commit("durable" if durable else "other", seconds)
