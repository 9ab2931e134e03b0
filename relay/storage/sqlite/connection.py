"""SQLite connections: pragmas, the lock file, migrations, the writer with group commit,
the checkpointer, backup.

Group commit (`Writer`): every write is an operation queued to one writer. The writer
takes every queued operation (up to `MAX_BATCH`), runs them in one `BEGIN IMMEDIATE`
transaction (consecutive operations of one kind together) and commits once; each caller's
future resolves only after that commit. A batch of single-statement operations (ingest
without idempotency keys) is that statement alone, in SQLite's implicit transaction. If
the transaction fails, it is rolled back and each operation is re-run alone, so one bad
operation cannot fail its neighbours. With `[storage] sync = "full"`, commits that answer
a caller's request (ingest, API changes) use `synchronous=FULL` (fsync: acknowledged means
on disk); with "normal" they use NORMAL (acknowledged means handed to the OS). Claims
and outcomes always use NORMAL, since losing one only repeats a delivery (at-least-once).

Checkpoints: the writer does not checkpoint after its commits (`wal_autocheckpoint=0`), so
no commit waits for the copy of the WAL into the database file and its two fsyncs. A
checkpointer thread with its own connection runs PASSIVE checkpoints (they never block
the writer) when the writer is idle or the WAL file passes its bound (`_WAL_CHECKPOINT_BYTES`,
less when free space is short); only if steady writes kept the WAL from starting over past
four times that does the writer run a RESTART between two transactions. A checkpoint that
fails (a full disk) is tried again on its own schedule, with backoff, not after the next
commit (no commit can succeed while the WAL cannot grow). The checkpointer also watches
the free space on the database's filesystem.

Threads: the only writing connection lives on a thread of its own, which takes the queued
operations itself and runs each transaction whole: no hop back to the event loop per
statement, and the next transaction starts while the loop answers the last one's callers.
Reads (store.py) go through aiosqlite on a second, read-only connection: one query, one
hop.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from relay.errors import RelayError, StorageError, Unprocessable
from relay.storage.base import Observer, check_schema
from relay.storage.base import migrations as base_migrations
from relay.storage.groupcommit import MAX_BATCH, Op, settle

# The WAL starts over (from its first byte) only after a checkpoint copied all of it, and
# the first commit after that fsyncs the WAL header, even with synchronous=NORMAL: with
# sync = "normal" the one fsync left on the commit path, holding every request that
# arrives meanwhile. So checkpoints run when the writer is idle (the fsync then falls on
# the first request after the pause), and under steady writes only once the WAL passes
# _WAL_CHECKPOINT_BYTES: every few seconds at a steady 500 single-event requests/s (each
# commit writes whole pages, tens of KB). The writer's journal_size_limit trims the file
# back to that size when it starts over, so the file's size says how much the WAL holds.
# The WAL takes disk space the database file needs for the checkpoint's copy: the bound
# is also at most a quarter of the free space, and with less free than
# [storage] min_free_space, any write is checkpointed at the next look.
_WAL_CHECKPOINT_BYTES = 64 << 20
_IDLE_SECONDS = 1.0  # no commit for this long: the writer is idle, checkpoint now
_CHECKPOINT_POLL = 0.1  # seconds between looks
_RETRY_MAX = 2.0  # seconds at most between tries of a failing checkpoint (doubling)
_SPACE_EVERY = 1.0  # seconds between looks at the filesystem's free space
_CATCH_UP_ROUNDS = 20  # PASSIVE checkpoints in a row, chasing the writer
_RESTART_WAIT_MS = 100  # how long a RESTART waits for readers to leave the WAL

Sync = Literal["full", "normal"]

WriteFn = Callable[[sqlite3.Connection, list[Any]], list[Any]]
_Op = Op[WriteFn]  # for annotations: built as Op (a generic alias's call costs more)


def migrations() -> list[tuple[int, str]]:
    return base_migrations("")


SCHEMA_VERSION = migrations()[-1][0]


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


def create_private(path: Path) -> None:
    """Create `path` empty with mode 0600, whatever the umask, unless it exists: the
    database holds signing secrets, and SQLite gives the -wal and -shm files it creates
    the database file's mode. An existing file keeps the mode its owner gave it."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def connect(path: Path) -> sqlite3.Connection:
    """The writing connection: WAL, no auto-checkpoint (the checkpointer's job), migrated."""
    create_private(path)
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=5000")
        db.execute("PRAGMA wal_autocheckpoint=0")  # the checkpointer thread's job
        db.execute(f"PRAGMA journal_size_limit={_WAL_CHECKPOINT_BYTES}")
        migrate(db, path)
    except BaseException:
        db.close()
        raise
    return db


def take_lock(path: Path) -> int:
    """Lock `<path>.lock` for this process (its pid written in it); the descriptor holds
    the lock until closed. StorageError naming the holder if another process has it."""
    lock_path = f"{path}.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise StorageError(
            f"database {path} is in use by another relay process (pid {holder}); "
            "stop it first, or give this one another [storage] path"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def statements(sql: str) -> list[str]:
    """A migration's statements. Split at the semicolons that end one, as
    sqlite3.complete_statement says: a trigger's body holds semicolons of its own."""
    found, part = [], ""
    for piece in sql.split(";"):
        part += piece + ";"
        if sqlite3.complete_statement(part):
            if part.strip(" \n;"):
                found.append(part)
            part = ""
    if part.strip(" \n;"):  # a last statement without its semicolon: run, not dropped
        found.append(part)
    return found


def migrate(db: sqlite3.Connection, path: Path) -> None:
    """Run the numbered files newer than `PRAGMA user_version`, each in a transaction; a
    database newer than this relay is refused."""
    current = int(db.execute("PRAGMA user_version").fetchone()[0])
    check_schema(str(path), current, SCHEMA_VERSION)
    for version, sql in migrations():
        if version <= current:
            continue
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in statements(sql):
                db.execute(statement)
            db.execute(f"PRAGMA user_version={version}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise


class Writer:
    """The writer thread with group commit and the checkpointer thread beside it, on one
    database file (see the module docstring). `on_health` hears, on the loop, whether
    writes succeed."""

    def __init__(self, path: Path, *, sync: Sync, observer: Observer | None,
                 on_health: Callable[[bool], None], min_free: int = 0,
                 on_space: Callable[[bool, int], None] | None = None) -> None:
        self.path = path
        self.free: int | None = None  # bytes free on the database's filesystem, last look
        self._min_free = min_free  # below it: on_space(True, free) on the loop, once
        self._on_space = on_space
        self._space_low = False  # the checkpointer's view; the store keeps the loop's
        self._durable_full = sync == "full"  # durable commits fsync ([storage] sync)
        self._observer = observer
        self._on_health = on_health
        self._checkpointer: threading.Thread | None = None
        self._checkpoints_stop = threading.Event()
        self._restart_due = False  # set by the checkpointer, cleared by the writer
        self.wal_bound = _WAL_CHECKPOINT_BYTES  # set by the checkpointer; the writer's
        self._size_limit = _WAL_CHECKPOINT_BYTES  # journal_size_limit follows it
        self._commits = 0  # commits so far, and the monotonic time of the last one: the
        self._last_commit = 0.0  # checkpointer's view of the writer (plain reads, GIL)
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
        self._checkpoints_stop.clear()
        self._restart_due = False
        self._look_at_space(loop)
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, name="relay-sqlite-checkpointer", daemon=True,
            args=(sqlite3.connect(self.path, isolation_level=None, check_same_thread=False),
                  loop),
        )
        self._checkpointer.start()

    async def close(self) -> None:
        """Finish queued writes, then stop both threads. Safe to call twice, even at once."""
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
                    if self._restart_due:
                        self._restart_due = False
                        self._restart_wal(db)
                    if self._size_limit != self.wal_bound:  # trimmed to it when it restarts
                        self._size_limit = self.wal_bound
                        db.execute(f"PRAGMA journal_size_limit={self._size_limit}")
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
        self._commits += 1
        self._last_commit = time.monotonic()
        if self._observer is not None:
            self._observer.commit("durable" if durable else "other", seconds)

    # --- the checkpointer -------------------------------------------------------------

    def _checkpoint_loop(self, db: sqlite3.Connection, loop: asyncio.AbstractEventLoop,
                         ) -> None:
        """The checkpointer thread, on its own connection: copy the WAL into the database
        file off the writer's commit path, when the writer is idle or the WAL is large (see
        `_WAL_CHECKPOINT_BYTES`). A failed checkpoint (a full disk, an I/O error) is tried
        again after a backoff of its own, up to `_RETRY_MAX`; the WAL keeps every commit
        meanwhile."""
        wal = Path(f"{self.path}-wal")
        copied_at = self._commits  # the commit count at the start of the last catch-up
        retry_at: float | None = None  # after a failed checkpoint: when to try again
        backoff = _CHECKPOINT_POLL
        space_at = time.monotonic()
        try:
            db.execute("PRAGMA synchronous=NORMAL")  # fsync the WAL, then the database file
            page = int(db.execute("PRAGMA page_size").fetchone()[0])
            while not self._checkpoints_stop.wait(_CHECKPOINT_POLL):
                now = time.monotonic()
                if now - space_at >= _SPACE_EVERY:
                    space_at = now
                    self._look_at_space(loop)
                commits = self._commits
                self.wal_bound = bound = self._wal_bound()
                try:
                    size = wal.stat().st_size
                except OSError:
                    size = 0
                quiet = self._space_low or now - self._last_commit >= _IDLE_SECONDS
                if retry_at is not None:
                    due = now >= retry_at
                else:
                    due = (commits != copied_at and quiet) or size > bound
                try:
                    if due:
                        self._catch_up(db, page, 4 * bound)
                        copied_at, retry_at, backoff = commits, None, _CHECKPOINT_POLL
                except (OSError, sqlite3.Error):
                    retry_at = now + backoff
                    backoff = min(2 * backoff, _RETRY_MAX)
        finally:
            db.close()

    def _wal_bound(self) -> int:
        """The WAL size that calls for a checkpoint even while the writer is busy, and
        the writer's journal_size_limit: at most a quarter of the free space, in MB."""
        if self.free is None:
            return _WAL_CHECKPOINT_BYTES
        return min(_WAL_CHECKPOINT_BYTES, max(1 << 20, self.free // 4 >> 20 << 20))

    def _look_at_space(self, loop: asyncio.AbstractEventLoop) -> None:
        """Note the free space on the database's filesystem; tell the loop when it falls
        under [storage] min_free_space, and when it is back above it."""
        try:
            vfs = os.statvfs(self.path.parent)
        except OSError:
            return
        self.free = free = vfs.f_bavail * vfs.f_frsize
        low = free < self._min_free
        if low != self._space_low:
            self._space_low = low
            if self._on_space is not None:
                loop.call_soon_threadsafe(self._on_space, low, free)

    def _catch_up(self, db: sqlite3.Connection, page: int, restart_bytes: int) -> None:
        """PASSIVE checkpoints back to back, each copying what was committed during the
        last one, until one copies everything with no commit meanwhile (the next commit
        then writes the WAL from its start) or the WAL started over. Writes that never
        pause that long keep the WAL growing: past `restart_bytes` the writer is asked
        for a RESTART between two transactions."""
        last = -1
        for _ in range(_CATCH_UP_ROUNDS):
            _busy, frames, copied = self._checkpoint(db, "PASSIVE")
            if frames < last or frames == last == copied:
                return
            last = frames
        if last * page > restart_bytes:
            self._restart_due = True

    def _restart_wal(self, db: sqlite3.Connection) -> None:
        """On the writer, between transactions: a RESTART checkpoint (it copies what the
        last PASSIVE left, little, and makes the next commit write the WAL from its
        start). Commits wait for it: the price of a bounded WAL, paid once per four
        WAL bounds of writes that never paused. It waits for readers
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


def backup(source: Path, dest: Path) -> int:
    """Copy a database, live or not, with SQLite's online backup API: a consistent
    snapshot while `relay serve` keeps writing. Written beside `dest` and renamed, so a
    failed backup never leaves a partial file under that name. Returns the events copied."""
    if not source.exists():
        raise StorageError(f"no database at {source}")
    partial = dest.with_name(dest.name + ".partial")
    partial.unlink(missing_ok=True)  # left by a backup that was killed
    create_private(partial)
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

