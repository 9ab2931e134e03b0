"""The SQLite store: WAL, one writer with group commit, one reader.

Group commit: every write is an operation queued to one writer. The writer takes every
queued operation (up to `_MAX_BATCH`), runs them in one `BEGIN IMMEDIATE` transaction
(consecutive operations of one kind together) and commits once; each caller's future
resolves only after that commit. If the transaction fails, it is rolled back and each
operation is re-run alone, so one bad operation cannot fail its neighbours. With
`[storage] sync = "full"`, commits that answer a caller's request (ingest, API changes)
use `synchronous=FULL` (fsync: acknowledged means on disk); with "normal" they use NORMAL
(acknowledged means handed to the OS). Claims and outcomes always use NORMAL, since losing
one only repeats a delivery (at-least-once).

Checkpoints: the writer does not checkpoint after its commits (`wal_autocheckpoint=0`), so
no commit waits for the copy of the WAL into the database file and its two fsyncs. A
checkpointer thread with its own connection runs PASSIVE checkpoints (they never block
the writer) when the writer is idle or the WAL file passes `_WAL_CHECKPOINT_BYTES`; only
if steady writes kept the WAL from starting over past `_WAL_RESTART_BYTES` does the
writer run a RESTART between two transactions.

Threads: the only writing connection lives on a thread of its own, which takes the queued
operations itself and runs each transaction whole: no hop back to the event loop per
statement, and the next transaction starts while the loop answers the last one's callers.
Reads go through aiosqlite on a second, read-only connection: one query, one hop.

Crash safety: a kill -9 at any point leaves either the committed state or the previous
one, and nobody is answered before the commit. Deliveries caught `delivering` are
returned to `pending` at the next start (`recover_inflight`); a lock file proves no other
process holds them.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import aiosqlite
import orjson

from relay.delivery import health, opsevents
from relay.errors import Conflict, NotFound, RelayError, StorageError, TooManyRequests
from relay.storage.base import (
    AttemptResult,
    AttemptRow,
    Claimed,
    ConfigEndpoint,
    DeliveryRow,
    EndpointRow,
    EventRow,
    FailedAttempt,
    Ingested,
    Limits,
    MinuteOutcomes,
    NewEndpoint,
    NewEvent,
    NodeRow,
    Notice,
    Observer,
    Ops,
    Recorded,
    State,
    Watcher,
)

_MAX_BATCH = 512  # operations per transaction: bounds a commit's latency
_MAX_QUEUE = 20_000  # queued writes before ingest answers 429 instead of growing memory
_CHUNK = 400  # rows per IN (...) list, under SQLite's variable limit
_INTERRUPTED = "interrupted: relay stopped before the attempt finished"
# The WAL starts over (from its first byte) only after a checkpoint copied all of it, and
# the first commit after that fsyncs the WAL header, even with synchronous=NORMAL: with
# sync = "normal" the one fsync left on the commit path, holding every request that
# arrives meanwhile. So checkpoints run when the writer is idle (the fsync then falls on
# the first request after the pause), and under steady writes only once the WAL passes
# _WAL_CHECKPOINT_BYTES: every 10-20 s at a steady 500 single-event requests/s (each
# commit writes whole pages, tens of KB). The writer's journal_size_limit trims the file
# back to that size when it starts over, so the file's size says how much the WAL holds.
_WAL_CHECKPOINT_BYTES = 256 << 20
_WAL_RESTART_BYTES = 1 << 30  # past this, a RESTART: commits wait, the WAL stays bounded
_IDLE_SECONDS = 1.0  # no commit for this long: the writer is idle, checkpoint now
_CHECKPOINT_POLL = 0.1  # seconds between looks
_CATCH_UP_ROUNDS = 20  # PASSIVE checkpoints in a row, chasing the writer
_RESTART_WAIT_MS = 100  # how long a RESTART waits for readers to leave the WAL

Sync = Literal["full", "normal"]

_Writer = Callable[[sqlite3.Connection, list[Any]], list[Any]]


@dataclass(slots=True)
class _Op:
    fn: _Writer
    arg: Any
    durable: bool
    future: asyncio.Future[Any]
    bare: bool = False  # run alone, outside a transaction
    alone: bool = False  # its own transaction: long work that must not hold others' commits


def _migrations() -> list[tuple[int, str]]:
    folder = resources.files("relay.storage") / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text(encoding="utf-8")))
    return sorted(found)


SCHEMA_VERSION = _migrations()[-1][0]


_Settled = tuple[_Op, Any, BaseException | None]  # an operation, its result, its error


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    """Resolve a caller's future (on the loop), unless the caller gave up waiting."""
    if future.done():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


def _run_bare(db: sqlite3.Connection, op: _Op) -> _Settled:
    """An operation run alone, outside a transaction (Store.pragma)."""
    try:
        [result] = op.fn(db, [op.arg])
    except Exception as exc:
        return op, None, _write_error(exc)
    return op, result, None


def _write_error(exc: Exception) -> Exception:
    """What a caller gets for a failed write: SQLite's errors as StorageError (503), an
    operation's own errors (Conflict, NotFound, ...) as they are."""
    return StorageError(f"database write failed: {exc}") if isinstance(exc, sqlite3.Error) \
        else exc


def _where(*conditions: tuple[str, Any]) -> tuple[str, list[Any]]:
    """The AND of the `(sql, value)` conditions whose value is given (not None), and their
    parameters: the optional filters of the list queries."""
    used = [(sql, value) for sql, value in conditions if value is not None]
    return " AND ".join(sql for sql, _ in used), [value for _, value in used]


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _marks(n: int) -> str:
    return ",".join("?" * n)


def _insert(db: sqlite3.Connection, into: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert rows with one multi-row statement per chunk rather than `executemany`: less
    per-row work (an ingest of 16 events: 0.37 ms of CPU instead of 0.51)."""
    if not rows:
        return
    width = len(rows[0])
    per = db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // width
    row_marks = f"({_marks(width)})"
    for start in range(0, len(rows), per):
        chunk = rows[start:start + per]
        db.execute(f"INSERT INTO {into} VALUES {','.join([row_marks] * len(chunk))}",
                   [v for row in chunk for v in row])


_ENDPOINT_COLS = (
    "id, tenant, source, name, spec, secret, prev_secret, prev_secret_until, is_active, "
    "is_paused, disable_reason, created_at, last_delivery_at, last_delivery_status, "
    "consecutive_failures, failing_since"
)


_DELIVERY_COLS = (
    "id, event_id, endpoint_id, state, attempts, next_at, created_at, updated_at, "
    "last_status, last_error"
)
_FINISHED = ("succeeded", "failed", "cancelled")  # states an operator may send again
_EVENT_SELECT = (
    "SELECT id, tenant, type, created_at, payload, "
    "(SELECT COUNT(*) FROM deliveries d WHERE d.event_id = events.id) FROM events"
)


def _endpoint(row: Sequence[Any]) -> EndpointRow:
    return EndpointRow(
        id=row[0], tenant=row[1], source=row[2], name=row[3], spec=json.loads(row[4]),
        secret=row[5], prev_secret=row[6], prev_secret_until=row[7], is_active=bool(row[8]),
        is_paused=bool(row[9]), disable_reason=row[10], created_at=row[11],
        last_delivery_at=row[12], last_delivery_status=row[13], consecutive_failures=row[14],
        failing_since=row[15],
    )


class SQLiteStore:
    """The Store contract (relay.storage.base) on one SQLite file."""

    def __init__(self, path: str | Path, *, lock: bool = True, sync: Sync = "full",
                 observer: Observer | None = None) -> None:
        self.path = Path(path)
        self._lock = lock
        self._durable_full = sync == "full"  # durable commits fsync ([storage] sync)
        self._observer = observer
        self._checkpointer: threading.Thread | None = None
        self._checkpoints_stop = threading.Event()
        self._restart_due = False  # set by the checkpointer, cleared by the writer
        self._commits = 0  # commits so far, and the monotonic time of the last one: the
        self._last_commit = 0.0  # checkpointer's view of the writer (plain reads, GIL)
        self._lock_fd: int | None = None
        self._r: aiosqlite.Connection | None = None
        self._ops: queue.SimpleQueue[_Op | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Future[None] | None = None  # resolved when the thread ends
        self._closing = False  # set on the loop before the sentinel: nothing queued after it
        self._sync_full = False  # the writer thread's PRAGMA synchronous
        self.healthy = True  # false after a write failed, until one succeeds

    # --- lifecycle ------------------------------------------------------------------

    async def open(self) -> None:
        """Lock, open, migrate, start the writer. Raises StorageError with what to do."""
        if self._lock:
            self._take_lock()
        self._closing = False
        loop = asyncio.get_running_loop()
        opened: asyncio.Future[None] = loop.create_future()
        self._stopped = loop.create_future()
        self._thread = threading.Thread(
            target=self._write_loop, args=(loop, opened, self._stopped),
            name="relay-sqlite-writer", daemon=True,
        )
        self._thread.start()
        try:
            await opened
            self._checkpoints_stop.clear()
            self._restart_due = False
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop, name="relay-sqlite-checkpointer", daemon=True,
                args=(sqlite3.connect(self.path, isolation_level=None, check_same_thread=False),),
            )
            self._checkpointer.start()
            self._r = await aiosqlite.connect(self.path, isolation_level=None)
            await self._r.execute("PRAGMA query_only=1")
            await self._r.execute("PRAGMA busy_timeout=5000")
        except sqlite3.Error as exc:
            await self.close()
            raise StorageError(f"cannot open database {self.path}: {exc}") from exc
        except BaseException:
            await self.close()
            raise

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=5000")
            db.execute("PRAGMA wal_autocheckpoint=0")  # the checkpointer thread's job
            db.execute(f"PRAGMA journal_size_limit={_WAL_CHECKPOINT_BYTES}")
            self._migrate(db)
        except BaseException:
            db.close()
            raise
        return db

    def _take_lock(self) -> None:
        lock_path = f"{self.path}.lock"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StorageError(
                f"database {self.path} is in use by another relay process (pid {holder}); "
                "stop it first, or give this one another [storage] path"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def _migrate(self, db: sqlite3.Connection) -> None:
        current = int(db.execute("PRAGMA user_version").fetchone()[0])
        if current > SCHEMA_VERSION:
            raise StorageError(
                f"database {self.path} has schema version {current}, newer than this relay "
                f"supports ({SCHEMA_VERSION}); run the newer relay or restore a backup"
            )
        for version, sql in _migrations():
            if version <= current:
                continue
            db.execute("BEGIN IMMEDIATE")
            try:
                for statement in sql.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version={version}")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    async def close(self) -> None:
        """Finish queued writes, then close. Safe to call twice, even at once."""
        if self._thread is not None:
            assert self._stopped is not None
            if not self._closing:
                self._closing = True
                self._ops.put(None)
            await asyncio.shield(self._stopped)  # a cancelled close() can be repeated
            self._thread = None
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            self._checkpoints_stop.set()
            await asyncio.shield(asyncio.to_thread(checkpointer.join))
        reader, self._r = self._r, None  # taken first: a second close() skips it
        if reader is not None:
            await reader.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # --- the writer ------------------------------------------------------------------

    async def _submit(self, fn: _Writer, arg: Any, *, durable: bool = False,
                      bare: bool = False, alone: bool = False) -> Any:
        if self._thread is None or self._closing or not self._thread.is_alive():
            raise StorageError("the store is closed")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._ops.put(_Op(fn, arg, durable, future, bare, alone))
        return await future

    async def pragma(self, statement: str) -> list[Any]:
        """Run `PRAGMA statement` on the writing connection, outside any transaction (tests
        simulate a full disk or a read-only file this way)."""
        rows: list[Any] = await self._submit(_pragma, statement, bare=True)
        return rows

    def overloaded(self) -> bool:
        return self._ops.qsize() > _MAX_QUEUE

    def _write_loop(self, loop: asyncio.AbstractEventLoop, opened: asyncio.Future[None],
                    stopped: asyncio.Future[None]) -> None:
        """The writer thread: open the database, then run queued operations, a batch per
        transaction, until the None sentinel. Results go back to the loop without waiting
        for it: the next transaction starts while the loop answers the last one's callers."""
        try:
            try:
                db = self._connect()
            except BaseException as exc:
                loop.call_soon_threadsafe(_settle, opened, None, exc)
                return
            loop.call_soon_threadsafe(_settle, opened, None, None)
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
                    while not op.alone and len(batch) < _MAX_BATCH and not self._ops.empty():
                        nxt = self._ops.get_nowait()
                        if nxt is None:
                            stop = True
                            break
                        if nxt.bare or nxt.alone:
                            pending = nxt
                            break
                        batch.append(nxt)
                    if self._restart_due:
                        self._restart_due = False
                        self._restart_wal(db)
                    try:
                        settled, healthy = self._run(db, batch, retry_singly=len(batch) > 1)
                    except BaseException as exc:  # a bug: answer the batch, then stop
                        failed: list[_Settled] = [(op, None, exc) for op in batch]
                        loop.call_soon_threadsafe(self._settle_all, failed, False)
                        raise
                    loop.call_soon_threadsafe(self._settle_all, settled, healthy)
            finally:
                db.close()
        finally:
            if not self._closing:  # the thread died: writes fail from now on
                loop.call_soon_threadsafe(setattr, self, "healthy", False)
            closed = StorageError("the store is closed")
            while not self._ops.empty():  # submitted while closing: never run
                if (late := self._ops.get_nowait()) is not None:
                    loop.call_soon_threadsafe(_settle, late.future, None, closed)
            loop.call_soon_threadsafe(_settle, stopped, None, None)

    def _settle_all(self, settled: list[_Settled], healthy: bool | None) -> None:
        """On the loop: resolve the callers' futures; record whether writes succeed (None:
        no write was tried)."""
        if healthy is not None:
            self.healthy = healthy
        for op, result, error in settled:
            _settle(op.future, result, error)

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
            return [(op, None, error) for op in batch], not isinstance(exc, sqlite3.Error)
        return [(op, result, result if isinstance(result, RelayError) else None)
                for op, result in zip(batch, results, strict=True)], True

    def _transaction(self, db: sqlite3.Connection, batch: list[_Op]) -> list[Any]:
        """One transaction for the whole batch, rolled back on any error. The COMMIT's
        time goes to the observer: with sync = "full" a durable one includes the fsync."""
        durable = any(op.durable for op in batch)
        full = durable and self._durable_full
        if full != self._sync_full:
            db.execute(f"PRAGMA synchronous={'FULL' if full else 'NORMAL'}")
            self._sync_full = full
        results: list[Any] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            start = 0
            while start < len(batch):
                end = start
                while end < len(batch) and batch[end].fn is batch[start].fn:
                    end += 1
                results.extend(batch[start].fn(db, [op.arg for op in batch[start:end]]))
                start = end
            began = time.perf_counter()
            db.execute("COMMIT")
            ended = time.perf_counter()
            self._commits += 1
            self._last_commit = time.monotonic()
            if self._observer is not None:
                self._observer.commit("durable" if durable else "other", ended - began)
        except BaseException:
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            raise
        return results

    # --- the checkpointer -------------------------------------------------------------

    def _checkpoint_loop(self, db: sqlite3.Connection) -> None:
        """The checkpointer thread, on its own connection: copy the WAL into the database
        file off the writer's commit path, when the writer is idle or the WAL is large (see
        `_WAL_CHECKPOINT_BYTES`). A failed checkpoint is tried again at the next look; the
        WAL keeps every commit meanwhile."""
        wal = Path(f"{self.path}-wal")
        copied_at = self._commits  # the commit count at the start of the last catch-up
        try:
            db.execute("PRAGMA synchronous=NORMAL")  # fsync the WAL, then the database file
            page = int(db.execute("PRAGMA page_size").fetchone()[0])
            while not self._checkpoints_stop.wait(_CHECKPOINT_POLL):
                commits = self._commits
                idle = time.monotonic() - self._last_commit >= _IDLE_SECONDS
                try:
                    if (idle and commits != copied_at) or \
                            wal.stat().st_size > _WAL_CHECKPOINT_BYTES:
                        copied_at = commits
                        self._catch_up(db, page)
                except (OSError, sqlite3.Error):
                    continue
        finally:
            db.close()

    def _catch_up(self, db: sqlite3.Connection, page: int) -> None:
        """PASSIVE checkpoints back to back, each copying what was committed during the
        last one, until one copies everything with no commit meanwhile (the next commit
        then writes the WAL from its start) or the WAL started over. Writes that never
        pause that long keep the WAL growing: past `_WAL_RESTART_BYTES` the writer is asked
        for a RESTART between two transactions."""
        last = -1
        for _ in range(_CATCH_UP_ROUNDS):
            _busy, frames, copied = self._checkpoint(db, "PASSIVE")
            if frames < last or frames == last == copied:
                return
            last = frames
        if last * page > _WAL_RESTART_BYTES:
            self._restart_due = True

    def _restart_wal(self, db: sqlite3.Connection) -> None:
        """On the writer, between transactions: a RESTART checkpoint (it copies what the
        last PASSIVE left, little, and makes the next commit write the WAL from its
        start). Commits wait for it: the price of a bounded WAL, paid once per
        `_WAL_RESTART_BYTES` of writes that never paused. It waits for readers
        `_RESTART_WAIT_MS` at most; if they stay, the checkpointer asks again."""
        db.execute(f"PRAGMA busy_timeout={_RESTART_WAIT_MS}")
        try:
            self._checkpoint(db, "RESTART")
        except sqlite3.Error:
            pass  # the checkpointer asks again while the WAL stays large
        finally:
            db.execute("PRAGMA busy_timeout=5000")

    def _checkpoint(self, db: sqlite3.Connection, mode: str) -> tuple[int, int, int]:
        """One checkpoint: (busy, frames in the WAL, frames copied), its time observed."""
        began = time.perf_counter()
        busy, frames, copied = db.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        if self._observer is not None:
            self._observer.checkpoint(mode.lower(), time.perf_counter() - began)
        return int(busy), int(frames), int(copied)

    # --- ingest ----------------------------------------------------------------------

    async def ingest(self, events: list[NewEvent]) -> list[Ingested]:
        """Store events and their deliveries atomically; repeats of an idempotency key
        answer the original (Conflict if the key came with a different event)."""
        if self.overloaded():
            raise TooManyRequests("relay is receiving events faster than it can store them")
        result: list[Ingested] = await self._submit(_ingest, events, durable=True)
        return result

    # --- delivery --------------------------------------------------------------------

    async def claim(
        self, wanted: dict[str, int], now: float, lease_until: float,
        limits: Limits | None = None,
        ordered: frozenset[str] = frozenset(),
        finished: Collection[int] = (),
    ) -> tuple[list[Claimed], dict[str, float | None]]:
        """Mark up to `wanted[endpoint]` due deliveries per endpoint `delivering`, oldest
        first, counting the attempt now. Returns them and, for each endpoint that ran out of
        due work, when its next delivery is due (None: nothing pending). `limits` and
        `finished` (what the scheduler has sent and not yet recorded) are for backends
        shared by several processes: here the one scheduler holds the limits itself.

        An `ordered` endpoint gives only its head (its unfinished delivery with the lowest
        id), and only when the head is pending and due: while it is in flight or waiting for
        a retry nothing behind it goes. Its next due time is the head's (None while the head
        is in flight: the outcome's recording wakes the scheduler)."""
        result: tuple[list[Claimed], dict[str, float | None]] = await self._submit(
            _claim, (wanted, now, lease_until, ordered)
        )
        return result

    async def record(
        self, results: list[AttemptResult], now: float, disable_after: float,
        ops: Ops | None = None,
    ) -> Recorded:
        """Record attempts and the deliveries' next states, update endpoint health,
        disable endpoints that answered 410 or failed for `disable_after`; with `ops`,
        store the operational events this causes in the same transaction."""
        recorded: Recorded = await self._submit(_record, (results, now, disable_after, ops))
        return recorded

    async def renew(self, delivery_ids: list[int], lease_until: float) -> int:
        """Extend the leases of deliveries still being sent (a slow receiver)."""
        count: int = await self._submit(_renew, (delivery_ids, lease_until))
        return count

    async def watch(self, watcher: Watcher) -> None:
        """Nothing to watch: this process is the database's only user (the lock)."""

    async def nodes(self, now: float) -> list[NodeRow]:
        """One process only, so no list of them."""
        return []

    async def recover_inflight(self, now: float) -> int:
        """At start: every `delivering` row belongs to a dead process (we hold the lock)."""
        count: int = await self._submit(_recover, (now, None))
        return count

    async def reclaim_expired(self, now: float) -> int:
        """Leases that ran out without an outcome go back to pending."""
        count: int = await self._submit(_recover, (now, now))
        return count

    async def unclaim(self, delivery_ids: list[int], now: float) -> int:
        """Give back claimed deliveries that were never sent (stop, pause): `pending`
        again, or `held` if their endpoint stopped accepting, the attempt uncounted."""
        count: int = await self._submit(_unclaim, (delivery_ids, now))
        return count

    async def next_due(self, endpoint_id: str) -> float | None:
        rows = await self._read(
            "SELECT MIN(next_at) FROM deliveries WHERE state = 'pending' AND endpoint_id = ?",
            (endpoint_id,),
        )
        value = rows[0][0] if rows else None
        return None if value is None else float(value)

    async def set_accepting(self, endpoint_id: str, accepting: bool, now: float) -> int:
        """Hold an endpoint's pending deliveries, or release its held ones in order."""
        count: int = await self._submit(_set_accepting, (endpoint_id, accepting, now))
        return count

    # --- endpoints -------------------------------------------------------------------

    async def sync_config_endpoints(
        self, endpoints: list[ConfigEndpoint], now: float, new_secret: Callable[[], str]
    ) -> list[EndpointRow]:
        """Make the config endpoints in the store match the file: add, update, and mark
        removed ones deleted (their pending and held deliveries become cancelled)."""
        rows: list[EndpointRow] = await self._submit(
            _sync_config, (endpoints, now, new_secret), durable=True
        )
        return rows

    async def create_endpoint(
        self, endpoint: NewEndpoint, max_api_endpoints: int | None
    ) -> EndpointRow:
        """Add an API endpoint; TooManyRequests when its tenant already has
        `max_api_endpoints` of them (counted in the same transaction, so concurrent
        creations cannot overshoot)."""
        row: EndpointRow = await self._submit(
            _create_endpoint, (endpoint, max_api_endpoints), durable=True
        )
        return row

    async def update_endpoint(
        self, endpoint_id: str, changes: dict[str, Any], now: float
    ) -> EndpointRow:
        """Set endpoint columns (name, spec, is_active, is_paused, disable_reason, health);
        NotFound if it does not exist (or was deleted)."""
        row: EndpointRow = await self._submit(
            _update_endpoint, (endpoint_id, changes, now), durable=True
        )
        return row

    async def rotate_secret(
        self, endpoint_id: str, secret: str, previous_until: float | None, now: float
    ) -> EndpointRow:
        """Make `secret` current; the old one keeps signing until `previous_until` (None:
        it stops at once). Read and replaced in one statement, so two concurrent rotations
        cannot both keep the same old secret."""
        row: EndpointRow = await self._submit(
            _rotate_secret, (endpoint_id, secret, previous_until, now), durable=True
        )
        return row

    async def delete_endpoint(self, endpoint_id: str, now: float) -> int:
        """Remove an endpoint; its unfinished deliveries become cancelled (how many)."""
        count: int = await self._submit(_delete_endpoint, (endpoint_id, now), durable=True)
        return count

    async def list_endpoints(
        self, tenant: str | None = None, *, after: str | None = None, limit: int = -1
    ) -> list[EndpointRow]:
        """Live endpoints in creation order (of `tenant`, after the endpoint `after`)."""
        where, params = _where(
            ("tenant = ?", tenant),
            ("(created_at, id) > (SELECT created_at, id FROM endpoints WHERE id = ?)", after),
        )
        rows = await self._read(
            f"SELECT {_ENDPOINT_COLS} FROM endpoints WHERE deleted_at IS NULL"
            f"{' AND ' + where if where else ''} ORDER BY created_at, id LIMIT ?",
            (*params, limit),
        )
        return [_endpoint(row) for row in rows]

    async def get_endpoint(self, endpoint_id: str) -> EndpointRow | None:
        rows = await self._read(
            f"SELECT {_ENDPOINT_COLS} FROM endpoints WHERE id = ? AND deleted_at IS NULL",
            (endpoint_id,),
        )
        return _endpoint(rows[0]) if rows else None

    async def blocked_counts(self, endpoint_ids: list[str]) -> dict[str, int]:
        """Per ordered endpoint: the deliveries waiting behind a head that has failed (it
        waits for a retry or is being retried); 0 while the head is on its first attempt,
        or there is none."""
        counts = dict.fromkeys(endpoint_ids, 0)
        for endpoint_id in endpoint_ids:
            head = await self._read(_HEAD, (endpoint_id,))
            if not head or head[0][3] <= (1 if head[0][1] == "delivering" else 0):
                continue
            [(behind,)] = await self._read(
                "SELECT COUNT(*) FROM deliveries WHERE endpoint_id = ? AND id > ? "
                "AND state IN ('pending', 'delivering', 'held')",
                (endpoint_id, head[0][0]),
            )
            counts[endpoint_id] = int(behind)
        return counts

    async def pending_counts(self, endpoint_ids: list[str]) -> dict[str, int]:
        """Unfinished deliveries (pending, delivering, held) per endpoint; one query per
        state so each is answered from its partial index, not the endpoint's history.
        INDEXED BY: left to itself SQLite walks deliveries_endpoint, the whole history
        (330 ms for an endpoint with 100,000 finished deliveries; 0.2 ms this way)."""
        counts = dict.fromkeys(endpoint_ids, 0)
        rows: list[Any] = []
        for chunk in _chunks(endpoint_ids, _CHUNK // 2):
            marks = _marks(len(chunk))
            rows += await self._read(
                f"SELECT endpoint_id, COUNT(*) FROM deliveries INDEXED BY deliveries_due "
                f"WHERE state = 'pending' AND endpoint_id IN ({marks}) GROUP BY endpoint_id "
                f"UNION ALL SELECT endpoint_id, COUNT(*) FROM deliveries INDEXED BY "
                f"deliveries_held WHERE state = 'held' AND endpoint_id IN ({marks}) "
                "GROUP BY endpoint_id",
                (*chunk, *chunk),
            )
        rows += await self._read(  # few: at most `concurrency` are in flight
            "SELECT endpoint_id, COUNT(*) FROM deliveries INDEXED BY deliveries_inflight "
            "WHERE state = 'delivering' GROUP BY endpoint_id"
        )
        for endpoint_id, n in rows:
            if endpoint_id in counts:
                counts[endpoint_id] += n
        return counts

    # --- housekeeping and reads --------------------------------------------------------

    async def purge(self, before: float, limit: int) -> int:
        """Delete up to `limit` events older than `before` whose deliveries are all
        finished, with their deliveries and attempts. Returns how many events. Its own
        transaction: ingest commits never wait for a purge's work, only for its turn."""
        count: int = await self._submit(_purge, (before, limit), alone=True)
        return count

    async def counts(self) -> dict[str, int]:
        rows = await self._read("SELECT state, COUNT(*) FROM deliveries GROUP BY state")
        return {state: n for state, n in rows}

    async def deliveries_of(self, event_id: str) -> list[DeliveryRow]:
        rows = await self._read(
            f"SELECT {_DELIVERY_COLS} FROM deliveries WHERE event_id = ? ORDER BY id",
            (event_id,),
        )
        return [DeliveryRow(*row) for row in rows]

    async def list_deliveries(
        self, endpoint_id: str, *, state: State | None = None, before: int | None = None,
        limit: int = 50,
    ) -> list[DeliveryRow]:
        """An endpoint's deliveries, newest first, below the id `before`."""
        where, params = _where(
            ("endpoint_id = ?", endpoint_id), ("state = ?", state), ("id < ?", before),
        )
        rows = await self._read(
            f"SELECT {_DELIVERY_COLS} FROM deliveries WHERE {where} ORDER BY id DESC LIMIT ?",
            (*params, limit),
        )
        return [DeliveryRow(*row) for row in rows]

    async def get_delivery(self, delivery_id: int, tenant: str) -> DeliveryRow | None:
        """A delivery of one of `tenant`'s events (None for another tenant's)."""
        cols = ", ".join(f"d.{c}" for c in _DELIVERY_COLS.split(", "))
        rows = await self._read(
            f"SELECT {cols} FROM deliveries d JOIN events e ON e.id = d.event_id "
            "WHERE d.id = ? AND e.tenant = ?",
            (delivery_id, tenant),
        )
        return DeliveryRow(*rows[0]) if rows else None

    async def retry_delivery(self, delivery_id: int, state: State, now: float) -> DeliveryRow:
        """A finished delivery goes out again now (`state` pending, or held while its
        endpoint does not accept); Conflict while it is still unfinished."""
        row: DeliveryRow = await self._submit(
            _retry_delivery, (delivery_id, state, now), durable=True
        )
        return row

    async def cancel_delivery(self, delivery_id: int, now: float) -> DeliveryRow:
        """An unfinished delivery (pending, held, delivering) becomes cancelled; an attempt
        in flight is still recorded, the delivery stays cancelled. Conflict once finished."""
        row: DeliveryRow = await self._submit(_cancel_delivery, (delivery_id, now),
                                              durable=True)
        return row

    async def recover_failed(self, endpoint_id: str, since: float, state: State,
                             now: float) -> int:
        """Failed deliveries of an endpoint last updated at or after `since` go out again,
        all due now, so they are sent in creation order. Returns how many."""
        count: int = await self._submit(
            _recover_failed, (endpoint_id, since, state, now), durable=True
        )
        return count

    async def list_events(
        self, tenant: str, *, type: str | None = None, before: str | None = None,
        since: float | None = None, until: float | None = None, limit: int = 50,
    ) -> list[EventRow]:
        """A tenant's events, newest first, after the event `before` in that order;
        with `since` / `until`, only those accepted in [since, until).

        With a time bound the order is (created_at, seq) and the read walks
        events_created (INDEXED BY: left to itself SQLite walks events_tenant and sorts
        every match, 140-420 ms for 100,000 events; this way 0.02-0.2 ms), so no index is
        added to the ingest path. Its cost is the events in the range that are another
        tenant's or type's: a range holding none of this tenant's reads the whole range."""
        if since is None and until is None:
            where, params = _where(
                ("tenant = ?", tenant), ("type = ?", type),
                ("seq < (SELECT seq FROM events WHERE id = ?)", before),
            )
            sql = f"{_EVENT_SELECT} WHERE {where} ORDER BY seq DESC LIMIT ?"
        else:
            where, params = _where(
                ("tenant = ?", tenant), ("type = ?", type), ("created_at >= ?", since),
                ("created_at < ?", until),
                ("(created_at, seq) < (SELECT created_at, seq FROM events WHERE id = ?)",
                 before),
            )
            sql = (f"{_EVENT_SELECT} INDEXED BY events_created WHERE {where} "
                   "ORDER BY created_at DESC, seq DESC LIMIT ?")
        rows = await self._read(sql, (*params, limit))
        return [EventRow(*row) for row in rows]

    async def get_event(self, event_id: str, tenant: str) -> EventRow | None:
        rows = await self._read(f"{_EVENT_SELECT} WHERE id = ? AND tenant = ?",
                                (event_id, tenant))
        return EventRow(*rows[0]) if rows else None

    async def add_deliveries(
        self, event_id: str, deliveries: list[tuple[str, State]], now: float
    ) -> list[DeliveryRow]:
        """New deliveries of a stored event (a replay): (endpoint id, pending | held)."""
        rows: list[DeliveryRow] = await self._submit(
            _add_deliveries, (event_id, deliveries, now), durable=True
        )
        return rows

    async def attempts_of(self, delivery_id: int) -> list[AttemptRow]:
        rows = await self._read(
            "SELECT delivery_id, n, started_at, duration_ms, request_headers, status, "
            "response_headers, response_body, error FROM attempts WHERE delivery_id = ? "
            "ORDER BY id",
            (delivery_id,),
        )
        return [
            AttemptRow(
                r[0], r[1], r[2], r[3], json.loads(r[4] or "{}"), r[5],
                json.loads(r[6] or "{}"), r[7] or b"", r[8],
            )
            for r in rows
        ]

    async def _first_attempt_since(self, since: float) -> int | None:
        """The id of the first attempt started at or after `since`, by bisection over
        attempt ids (they grow with time, give or take one timeout): about 20 indexed
        reads instead of a scan of the history or an index on started_at, which every
        recorded attempt would pay for."""
        [(low, high)] = await self._read("SELECT MIN(id), MAX(id) FROM attempts")
        if high is None:
            return None
        while low < high:
            middle = (low + high) // 2
            [(started_at,)] = await self._read(
                "SELECT started_at FROM attempts WHERE id >= ? ORDER BY id LIMIT 1", (middle,))
            if started_at < since:
                low = middle + 1
            else:
                high = middle
        return int(low)

    async def outcomes_per_minute(self, since: float) -> list[MinuteOutcomes]:
        """Attempts started since `since`, counted per minute and outcome, oldest first;
        minutes without attempts are left out."""
        first = await self._first_attempt_since(since)
        if first is None:
            return []
        rows = await self._read(
            "SELECT CAST(started_at / 60 AS INTEGER) * 60 AS minute, "
            "SUM(status BETWEEN 200 AND 299), SUM(status IS NULL OR status NOT BETWEEN 200 "
            "AND 299) FROM attempts WHERE id >= ? AND started_at >= ? GROUP BY minute "
            "ORDER BY minute",
            (first, since),
        )
        return [MinuteOutcomes(float(m), int(ok), int(bad)) for m, ok, bad in rows]

    async def recent_failures(self, since: float, limit: int) -> list[FailedAttempt]:
        """The latest attempts since `since` that did not succeed, newest first."""
        first = await self._first_attempt_since(since)
        if first is None:
            return []
        rows = await self._read(
            "SELECT a.delivery_id, d.endpoint_id, e.tenant, a.started_at, a.status, a.error "
            "FROM attempts a JOIN deliveries d ON d.id = a.delivery_id "
            "JOIN events e ON e.id = d.event_id WHERE a.id >= ? AND a.started_at >= ? AND "
            "(a.status IS NULL OR a.status NOT BETWEEN 200 AND 299) ORDER BY a.id DESC LIMIT ?",
            (first, since, limit),
        )
        return [FailedAttempt(*row) for row in rows]

    async def secret_key(self, name: str, new: Callable[[], bytes]) -> bytes:
        """The key stored under `name`, made with `new()` and stored the first time;
        when two processes race, the first stored wins and both get it."""
        key: bytes = await self._submit(_secret_key, (name, new(), time.time()), durable=True)
        return key

    async def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        if self._r is None:
            raise StorageError("the store is closed")
        try:
            async with self._r.execute(sql, params) as cur:
                return list(await cur.fetchall())
        except sqlite3.Error as exc:
            raise StorageError(f"database read failed: {exc}") from exc


# --- write operations: each takes the writer connection and a list of arguments (one per
# queued operation) and returns one result per argument, inside the writer's transaction.


@dataclass(frozen=True, slots=True)
class _Prior:
    id: str
    type: str
    created_at: float
    digest: str
    n: int


def _pragma(db: sqlite3.Connection, statements: list[str]) -> list[Any]:
    return [db.execute(f"PRAGMA {statement}").fetchall() for statement in statements]


def _ingest(db: sqlite3.Connection, batches: list[list[NewEvent]]) -> list[Any]:
    keys = sorted({(e.tenant, e.idem_key) for b in batches for e in b if e.idem_key})
    known: dict[tuple[str, str], _Prior] = {}
    for chunk in _chunks(keys, _CHUNK // 2):
        sql = (
            "SELECT tenant, idem_key, id, type, created_at, digest, n_deliveries FROM events "
            f"WHERE (tenant, idem_key) IN (VALUES {','.join(['(?,?)'] * len(chunk))})"
        )
        cur = db.execute(sql, [v for key in chunk for v in key])
        for row in cur.fetchall():
            known[(row[0], row[1])] = _Prior(row[2], row[3], row[4], row[5], row[6])
    results: list[Any] = []
    event_rows: list[tuple[Any, ...]] = []
    delivery_rows: list[tuple[Any, ...]] = []
    for batch in batches:
        out: list[Ingested] = []
        local: dict[tuple[str, str], _Prior] = {}
        rows: list[tuple[Any, ...]] = []
        dels: list[tuple[Any, ...]] = []
        error: RelayError | None = None
        for ev in batch:
            if ev.idem_key:
                key = (ev.tenant, ev.idem_key)
                prior = local.get(key) or known.get(key)
                if prior is not None:
                    if prior.digest != ev.digest:
                        error = Conflict(
                            f"idempotency key {ev.idem_key!r} was already used for event "
                            f"{prior.id} with different content"
                        )
                        break
                    out.append(Ingested(prior.id, prior.type, prior.created_at, prior.n, True))
                    continue
                local[key] = _Prior(ev.id, ev.type, ev.created_at, ev.digest, len(ev.deliveries))
            rows.append((ev.id, ev.tenant, ev.type, ev.idem_key, ev.digest, ev.created_at,
                         len(ev.deliveries), ev.payload))
            for endpoint_id, state in ev.deliveries:
                dels.append((ev.id, endpoint_id, state, ev.created_at, ev.created_at,
                             ev.created_at))
            out.append(Ingested(ev.id, ev.type, ev.created_at, len(ev.deliveries), False))
        if error is not None:
            results.append(error)
            continue
        known.update(local)
        event_rows.extend(rows)
        delivery_rows.extend(dels)
        results.append(out)
    _insert(db, "events (id, tenant, type, idem_key, digest, created_at, n_deliveries, payload)",
            event_rows)
    _insert(db, "deliveries (event_id, endpoint_id, state, next_at, created_at, updated_at)",
            delivery_rows)
    return results


_HEAD = (  # an ordered endpoint's head: on the deliveries_unfinished index
    "SELECT id, state, next_at, attempts FROM deliveries WHERE endpoint_id = ? "
    "AND state IN ('pending', 'delivering') ORDER BY id LIMIT 1"
)
_CLAIM_ONE = (
    "UPDATE deliveries SET state = 'delivering', attempts = attempts + 1, lease_until = ?, "
    "updated_at = ? WHERE id = ? RETURNING id, event_id, endpoint_id, attempts"
)
_CLAIM = (
    "UPDATE deliveries SET state = 'delivering', attempts = attempts + 1, lease_until = ?, "
    "updated_at = ? WHERE id IN (SELECT id FROM deliveries WHERE state = 'pending' AND "
    "endpoint_id = ? AND next_at <= ? ORDER BY next_at, id LIMIT ?) "
    "RETURNING id, event_id, endpoint_id, attempts"
)


def _claim(db: sqlite3.Connection, args: list[Any]) -> list[Any]:
    out: list[Any] = []
    for wanted, now, lease_until, ordered in args:
        claimed: list[Any] = []
        next_due: dict[str, float | None] = {}
        for endpoint_id, limit in wanted.items():
            if endpoint_id in ordered:
                head = db.execute(_HEAD, (endpoint_id,)).fetchone()
                if head is None or head[1] == "delivering":
                    next_due[endpoint_id] = None
                elif head[2] > now:
                    next_due[endpoint_id] = float(head[2])
                else:
                    claimed.extend(db.execute(_CLAIM_ONE, (lease_until, now, head[0])))
                continue
            rows = db.execute(_CLAIM, (lease_until, now, endpoint_id, now, limit)).fetchall()
            claimed.extend(rows)
            if len(rows) < limit:
                [row] = db.execute(
                    "SELECT MIN(next_at) FROM deliveries WHERE state = 'pending' "
                    "AND endpoint_id = ?",
                    (endpoint_id,),
                ).fetchall()
                next_due[endpoint_id] = None if row[0] is None else float(row[0])
        payloads: dict[str, bytes] = {}
        event_ids = sorted({row[1] for row in claimed})
        for chunk in _chunks(event_ids):
            payloads.update(db.execute(
                f"SELECT id, payload FROM events WHERE id IN ({_marks(len(chunk))})", chunk
            ).fetchall())
        claimed.sort()
        out.append((
            [Claimed(r[0], r[1], r[2], r[3], payloads[r[1]]) for r in claimed],
            next_due,
        ))
    return out


def _record(db: sqlite3.Connection, args: list[Any]) -> list[Any]:
    results: list[AttemptResult] = [r for batch, _, _, _ in args for r in batch]
    now = max(a[1] for a in args)
    disable_after, ops = args[-1][2], args[-1][3]
    db.executemany(
        "INSERT INTO attempts (delivery_id, n, started_at, duration_ms, request_headers, "
        "status, response_headers, response_body, error) VALUES (?,?,?,?,?,?,?,?,?)",
        [
            (r.delivery_id, r.attempt, r.started_at, r.duration_ms,
             orjson.dumps(r.request_headers).decode(), r.status,
             orjson.dumps(r.response_headers).decode(),
             r.response_body, r.error)
            for r in results
        ],
    )
    db.executemany(
        "UPDATE deliveries SET state = ?, next_at = COALESCE(?, next_at), lease_until = NULL, "
        "updated_at = ?, last_status = ?, last_error = ? WHERE id = ? AND state = 'delivering'",
        [(r.state, r.next_at, now, r.status, r.error, r.delivery_id) for r in results],
    )
    # Endpoint health: decided by health.after_attempts, applied here.
    attempted: dict[str, list[AttemptResult]] = {}
    for r in results:
        attempted.setdefault(r.endpoint_id, []).append(r)
    updates: list[tuple[Any, ...]] = []
    disabled: dict[str, str] = {}
    streaks: dict[str, tuple[str, int]] = {}  # id -> (tenant, streak before these attempts)
    for chunk in _chunks(list(attempted)):
        cur = db.execute(
            "SELECT id, is_active, disable_reason, consecutive_failures, failing_since, "
            f"last_delivery_at, last_delivery_status, tenant FROM endpoints WHERE id IN "
            f"({_marks(len(chunk))})",
            chunk,
        )
        for row in cur.fetchall():
            before = health.Health(
                is_active=bool(row[1]), disable_reason=row[2], consecutive_failures=row[3],
                failing_since=row[4], last_delivery_at=row[5], last_delivery_status=row[6],
            )
            change = health.after_attempts(before, attempted[row[0]], now, disable_after)
            after = change.health
            updates.append((after.is_active, after.disable_reason, after.consecutive_failures,
                            after.failing_since, after.last_delivery_at,
                            after.last_delivery_status, row[0]))
            streaks[row[0]] = (row[7], row[3])
            if change.disabled is not None:
                disabled[row[0]] = change.disabled
    db.executemany(
        "UPDATE endpoints SET is_active = ?, disable_reason = ?, consecutive_failures = ?, "
        "failing_since = ?, last_delivery_at = ?, last_delivery_status = ? WHERE id = ?",
        updates,
    )
    for eid in disabled:
        db.execute("UPDATE endpoints SET updated_at = ? WHERE id = ?", (now, eid))
    _set_accepting(db, [(eid, False, now) for eid in disabled])  # hold their deliveries
    recorded = Recorded(disabled)
    if ops is not None:
        codes = {eid: opsevents.GONE if reason == health.GONE else opsevents.DISABLE_AFTER
                 for eid, reason in disabled.items()}
        recorded = _emit(db, ops, attempted, streaks, disabled, codes, now)
    return [recorded for _ in args]


def _emit(db: sqlite3.Connection, ops: Ops, attempted: dict[str, list[AttemptResult]],
          before: dict[str, tuple[str, int]], disabled: dict[str, str],
          codes: dict[str, str], now: float) -> Recorded:
    """Store the operational events `results` cause, in the record transaction: a crash
    loses the outcome and its events together (the attempt is then repeated)."""
    events: dict[int, tuple[str, str]] = {}

    def event_of(delivery_id: int) -> tuple[str, str]:
        if delivery_id not in events:
            row = db.execute(
                "SELECT e.id, e.type FROM deliveries d JOIN events e ON e.id = d.event_id "
                "WHERE d.id = ?", (delivery_id,),
            ).fetchone()
            events[delivery_id] = ("", "") if row is None else (row[0], row[1])
        return events[delivery_id]

    notices: list[Notice] = []
    for eid, attempts in attempted.items():
        if eid not in before:  # deleted meanwhile
            continue
        tenant, streak = before[eid]
        notices += opsevents.from_attempts(
            eid, tenant, streak, attempts, failing_after=ops.failing_after,
            disabled=disabled.get(eid), disabled_code=codes.get(eid), event_of=event_of,
        )
    new = ops.build(notices, now) if notices else []
    if not new:
        return Recorded(disabled, tuple(notices))
    _ingest(db, [new])
    due = frozenset(e for ev in new for e, state in ev.deliveries if state == "pending")
    return Recorded(disabled, tuple(notices), due)


def _renew(db: sqlite3.Connection, args: list[Any]) -> list[Any]:
    out = []
    for delivery_ids, lease_until in args:
        count = 0
        for chunk in _chunks(delivery_ids):
            cur = db.execute(
                f"UPDATE deliveries SET lease_until = ? WHERE id IN ({_marks(len(chunk))}) "
                "AND state = 'delivering' AND lease_until < ?",
                [lease_until, *chunk, lease_until],
            )
            count += cur.rowcount
        out.append(count)
    return out


def _recover(db: sqlite3.Connection, args: list[Any]) -> list[Any]:
    out = []
    for now, expired_before in args:
        where = "state = 'delivering'" + (" AND lease_until < ?" if expired_before else "")
        params: list[Any] = [expired_before] if expired_before else []
        db.execute(
            "INSERT INTO attempts (delivery_id, n, started_at, error) "
            f"SELECT id, attempts, updated_at, ? FROM deliveries WHERE {where}",
            [_INTERRUPTED, *params],
        )
        cur = db.execute(
            "UPDATE deliveries SET state = 'pending', next_at = ?, lease_until = NULL, "
            f"updated_at = ?, last_error = ? WHERE {where}",
            [now, now, _INTERRUPTED, *params],
        )
        out.append(cur.rowcount)
    return out


def _set_accepting(db: sqlite3.Connection, args: list[Any]) -> list[Any]:
    out = []
    for endpoint_id, accepting, now in args:
        if accepting:
            cur = db.execute(
                "UPDATE deliveries SET state = 'pending', next_at = ?, updated_at = ? "
                "WHERE endpoint_id = ? AND state = 'held'",
                (now, now, endpoint_id),
            )
        else:
            cur = db.execute(
                "UPDATE deliveries SET state = 'held', updated_at = ? "
                "WHERE endpoint_id = ? AND state = 'pending'",
                (now, endpoint_id),
            )
        out.append(cur.rowcount)
    return out


def _sync_config(db: sqlite3.Connection, args: list[Any]) -> list[Any]:
    out = []
    for endpoints, now, new_secret in args:
        cur = db.execute(
            "SELECT id, secret, source FROM endpoints WHERE source = 'config' "
            "OR id IN (SELECT value FROM json_each(?))",
            (json.dumps([e.id for e in endpoints]),),
        )
        existing = {r[0]: (r[1], r[2]) for r in cur.fetchall()}
        wanted = {e.id for e in endpoints}
        for ep in endpoints:
            if ep.id in existing and existing[ep.id][1] != "config":
                raise Conflict(f"endpoint id {ep.id!r} is already used by an API endpoint")
            spec = json.dumps(ep.spec, sort_keys=True)
            if ep.id in existing:
                db.execute(
                    "UPDATE endpoints SET tenant = ?, name = ?, spec = ?, "
                    "secret = COALESCE(?, secret), deleted_at = NULL, updated_at = ? WHERE id = ?",
                    (ep.tenant, ep.id, spec, ep.secret, now, ep.id),
                )
            else:
                db.execute(
                    "INSERT INTO endpoints (id, tenant, source, name, spec, secret, created_at, "
                    "updated_at) VALUES (?, ?, 'config', ?, ?, ?, ?, ?)",
                    (ep.id, ep.tenant, ep.id, spec, ep.secret or new_secret(), now, now),
                )
        for eid in sorted(set(existing) - wanted):
            _remove_endpoint(db, eid, now)
        cur = db.execute(
            f"SELECT {_ENDPOINT_COLS} FROM endpoints WHERE deleted_at IS NULL ORDER BY created_at"
        )
        out.append([_endpoint(r) for r in cur.fetchall()])
    return out


def _select_endpoint(db: sqlite3.Connection, endpoint_id: str) -> EndpointRow | None:
    cur = db.execute(
        f"SELECT {_ENDPOINT_COLS} FROM endpoints WHERE id = ? AND deleted_at IS NULL",
        (endpoint_id,),
    )
    row = cur.fetchone()
    return None if row is None else _endpoint(row)


def _no_endpoint(endpoint_id: str) -> NotFound:
    return NotFound(f"no webhook {endpoint_id!r}")


def _remove_endpoint(db: sqlite3.Connection, endpoint_id: str, now: float) -> int:
    """Mark an endpoint deleted and cancel its unfinished deliveries (how many). An
    attempt in flight is still recorded; its delivery stays cancelled (record() only
    updates rows still `delivering`)."""
    db.execute(
        "UPDATE endpoints SET deleted_at = ?, updated_at = ? WHERE id = ? AND deleted_at IS NULL",
        (now, now, endpoint_id),
    )
    cur = db.execute(
        "UPDATE deliveries SET state = 'cancelled', lease_until = NULL, updated_at = ? "
        "WHERE endpoint_id = ? AND state IN ('pending', 'held', 'delivering')",
        (now, endpoint_id),
    )
    return cur.rowcount


def _create_endpoint(db: sqlite3.Connection, args: list[Any]) -> list[Any]:
    out: list[Any] = []
    for ep, limit in args:
        if limit is not None:
            cur = db.execute(
                "SELECT COUNT(*) FROM endpoints WHERE tenant = ? AND source = 'api' "
                "AND deleted_at IS NULL",
                (ep.tenant,),
            )
            row = cur.fetchone()
            if row is not None and row[0] >= limit:
                out.append(TooManyRequests(
                    f"tenant {ep.tenant!r} already has {row[0]} webhooks, its max_webhooks; "
                    "delete one first"
                ))
                continue
        db.execute(
            "INSERT INTO endpoints (id, tenant, source, name, spec, secret, created_at, "
            "updated_at) VALUES (?, ?, 'api', ?, ?, ?, ?, ?)",
            (ep.id, ep.tenant, ep.name, json.dumps(ep.spec, sort_keys=True), ep.secret,
             ep.created_at, ep.created_at),
        )
        out.append(_select_endpoint(db, ep.id))
    return out


_UPDATABLE = frozenset({"name", "spec", "is_active", "is_paused", "disable_reason",
                        "failing_since", "consecutive_failures"})


def _update_endpoint(db: sqlite3.Connection, args: list[Any]) -> list[Any]:
    out: list[Any] = []
    for endpoint_id, changes, now in args:
        unknown = set(changes) - _UPDATABLE
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        values = {k: json.dumps(v, sort_keys=True) if k == "spec" else v
                  for k, v in changes.items()}
        sets = "".join(f"{col} = ?, " for col in values)
        db.execute(
            f"UPDATE endpoints SET {sets}updated_at = ? WHERE id = ? AND deleted_at IS NULL",
            [*values.values(), now, endpoint_id],
        )
        out.append(_select_endpoint(db, endpoint_id) or _no_endpoint(endpoint_id))
    return out


def _rotate_secret(db: sqlite3.Connection, args: list[Any]) -> list[Any]:
    out: list[Any] = []
    for endpoint_id, secret, until, now in args:
        # The right-hand sides see the row before the update: prev_secret gets the old one.
        db.execute(
            "UPDATE endpoints SET prev_secret = CASE WHEN ? IS NULL THEN NULL ELSE secret END, "
            "prev_secret_until = ?, secret = ?, updated_at = ? "
            "WHERE id = ? AND deleted_at IS NULL",
            (until, until, secret, now, endpoint_id),
        )
        out.append(_select_endpoint(db, endpoint_id) or _no_endpoint(endpoint_id))
    return out


def _delete_endpoint(db: sqlite3.Connection, args: list[Any]) -> list[Any]:
    out: list[Any] = []
    for endpoint_id, now in args:
        if _select_endpoint(db, endpoint_id) is None:
            out.append(_no_endpoint(endpoint_id))
        else:
            out.append(_remove_endpoint(db, endpoint_id, now))
    return out


def _retry_delivery(db: sqlite3.Connection, args: list[Any]) -> list[Any]:
    out: list[Any] = []
    for delivery_id, state, now in args:
        cur = db.execute(
            f"UPDATE deliveries SET state = ?, next_at = ?, updated_at = ? WHERE id = ? "
            f"AND state IN ({_marks(len(_FINISHED))}) RETURNING {_DELIVERY_COLS}",
            (state, now, now, delivery_id, *_FINISHED),
        )
        row = cur.fetchone()
        if row is not None:
            out.append(DeliveryRow(*row))
            continue
        cur = db.execute("SELECT state FROM deliveries WHERE id = ?", (delivery_id,))
        found = cur.fetchone()
        out.append(
            NotFound(f"no delivery dlv_{delivery_id}") if found is None else Conflict(
                f"delivery dlv_{delivery_id} is {found[0]}; only finished deliveries "
                f"({', '.join(_FINISHED)}) can be retried"
            )
        )
    return out


def _cancel_delivery(db: sqlite3.Connection, args: list[Any]) -> list[Any]:
    out: list[Any] = []
    for delivery_id, now in args:
        cur = db.execute(
            "UPDATE deliveries SET state = 'cancelled', lease_until = NULL, updated_at = ? "
            "WHERE id = ? AND state IN ('pending', 'held', 'delivering') "
            f"RETURNING {_DELIVERY_COLS}",
            (now, delivery_id),
        )
        row = cur.fetchone()
        if row is not None:
            out.append(DeliveryRow(*row))
            continue
        found = db.execute("SELECT state FROM deliveries WHERE id = ?", (delivery_id,)).fetchone()
        out.append(
            NotFound(f"no delivery dlv_{delivery_id}") if found is None else Conflict(
                f"delivery dlv_{delivery_id} is {found[0]} already; only unfinished "
                "deliveries (pending, held, delivering) can be cancelled"
            )
        )
    return out


def _recover_failed(db: sqlite3.Connection, args: list[Any]) -> list[Any]:
    out = []
    for endpoint_id, since, state, now in args:
        cur = db.execute(
            "UPDATE deliveries SET state = ?, next_at = ?, updated_at = ? "
            "WHERE endpoint_id = ? AND state = 'failed' AND updated_at >= ?",
            (state, now, now, endpoint_id, since),
        )
        out.append(cur.rowcount)
    return out


def _add_deliveries(db: sqlite3.Connection, args: list[Any]) -> list[Any]:
    out = []
    for event_id, deliveries, now in args:
        rows = []
        for endpoint_id, state in deliveries:
            cur = db.execute(
                "INSERT INTO deliveries (event_id, endpoint_id, state, next_at, created_at, "
                f"updated_at) VALUES (?,?,?,?,?,?) RETURNING {_DELIVERY_COLS}",
                (event_id, endpoint_id, state, now, now, now),
            )
            rows.append(DeliveryRow(*cur.fetchone()))
        out.append(rows)
    return out


def _purge(db: sqlite3.Connection, args: list[Any]) -> list[Any]:
    out = []
    for before, limit in args:
        cur = db.execute(
            "SELECT id FROM events WHERE created_at < ? AND NOT EXISTS (SELECT 1 FROM "
            "deliveries d WHERE d.event_id = events.id AND d.state IN "
            "('pending', 'delivering', 'held')) ORDER BY created_at LIMIT ?",
            (before, limit),
        )
        ids = [r[0] for r in cur.fetchall()]
        for chunk in _chunks(ids):
            marks = _marks(len(chunk))
            db.execute(
                "DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE "
                f"event_id IN ({marks}))",
                chunk,
            )
            db.execute(f"DELETE FROM deliveries WHERE event_id IN ({marks})", chunk)
            db.execute(f"DELETE FROM events WHERE id IN ({marks})", chunk)
        out.append(len(ids))
    return out


def _unclaim(db: sqlite3.Connection, args: list[Any]) -> list[Any]:
    out = []
    for delivery_ids, now in args:
        count = 0
        for chunk in _chunks(delivery_ids):
            marks = _marks(len(chunk))
            cur = db.execute(
                "SELECT DISTINCT endpoint_id FROM deliveries WHERE state = 'delivering' "
                f"AND id IN ({marks})",
                chunk,
            )
            for (endpoint_id,) in cur.fetchall():
                row = _select_endpoint(db, endpoint_id)
                state = health.waiting_state(row is not None and health.accepting(row))
                count += db.execute(
                    "UPDATE deliveries SET state = ?, attempts = attempts - 1, "
                    "lease_until = NULL, updated_at = ? WHERE state = 'delivering' "
                    f"AND endpoint_id = ? AND id IN ({marks})",
                    [state, now, endpoint_id, *chunk],
                ).rowcount
        out.append(count)
    return out


def backup(source: Path, dest: Path) -> int:
    """Copy a database, live or not, with SQLite's online backup API: a consistent
    snapshot while `relay serve` keeps writing. Written beside `dest` and renamed, so a
    failed backup never leaves a partial file under that name. Returns the events copied."""
    if not source.exists():
        raise StorageError(f"no database at {source}")
    partial = dest.with_name(dest.name + ".partial")
    try:
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        try:
            dst = sqlite3.connect(partial)
            try:
                src.backup(dst)
                [(events,)] = dst.execute("SELECT COUNT(*) FROM events").fetchall()
                dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            finally:
                dst.close()
        finally:
            src.close()
        os.replace(partial, dest)
    except sqlite3.Error as exc:
        partial.unlink(missing_ok=True)
        raise StorageError(f"backup of {source} failed: {exc}") from exc
    return int(events)


def _secret_key(db: sqlite3.Connection, args: list[Any]) -> list[Any]:
    out = []
    for name, key, now in args:
        db.execute("INSERT OR IGNORE INTO secret_keys (name, key, created_at) VALUES (?, ?, ?)",
                   (name, key, now))
        [(stored,)] = db.execute("SELECT key FROM secret_keys WHERE name = ?", (name,))
        out.append(bytes(stored))
    return out
