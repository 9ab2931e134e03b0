"""PostgreSQL connections: the pool, the migration runner, driver errors, group commit.

Driver errors stop here: asyncpg's errors and socket errors become StorageError (503)
with what failed, except that the database's refusal of one operation's data (a NUL in
text: `INPUT_ERRORS`) is that request's 422 and leaves the store healthy; an operation's
own refusals (Conflict, NotFound, ...) pass as they are.

Group commit (`Writer`): every write is an operation queued to the writer. It takes
everything queued (up to `MAX_BATCH`), runs it in one transaction on one pooled
connection (consecutive operations of one kind together) and commits once; each
caller's future resolves only after that commit. A batch that is one statement (ingest
without idempotency keys) runs as that statement alone, committed by the server with
it. Up to `IN_FLIGHT` such transactions run at once on their own connections, so a batch
never waits for the previous one's commit; they contend as two processes' transactions
would (row locks, the races below).
A failed transaction is rolled back and each operation re-run alone, so one bad
operation (or the loser of an idempotency race with another process) cannot fail its
neighbours. Claims do not queue (`Writer.alone`): each is one statement on a connection
of its own, so it never waits for a batch's commit. Batches that answer a caller's
request commit with `synchronous_commit` on (the commit is on disk before the answer);
claims and outcomes commit with it off, since losing one only repeats a delivery.
`[storage] sync = "normal"` turns it off for every commit (PostgresStore passes no
durable ops): a crash of relay loses nothing, a crash of the database server may lose
the last moments of acknowledged events. Each batch's commit time goes to the observer
(/metrics).

Deadlines: every call has one (`[storage] timeout`): taking a pooled connection, opening
one, each statement. A database that stops answering (a partition drops its packets
without a reset) then fails calls within that time instead of holding them for the
kernel's TCP timeout. A connection whose call failed that way is closed, not returned to
the pool (`acquire`): its state is unknown, and the server rolls back whatever
transaction it had open when the session ends. A batch whose COMMIT timed out may have
committed or not: its callers get StorageError (ingest: 503), and a client that retries
with the same idempotency key gets the original event if it had.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from asyncpg.exceptions._base import DataError as ClientDataError
from asyncpg.pool import PoolConnectionProxy

from relay.errors import RelayError, StorageError, Unprocessable
from relay.logs import log
from relay.storage.base import Observer, check_schema
from relay.storage.base import migrations as base_migrations
from relay.storage.groupcommit import MAX_BATCH, Op, settle

DEFAULT_TIMEOUT = 5.0  # seconds: [storage] timeout's default, for stores made in tests
_MIGRATION_TIMEOUT = 3600.0  # a migration's statement may rewrite a large table
POOL_SIZE = 8  # the writer's connections, claims and concurrent reads
IN_FLIGHT = 2  # write transactions at once (see Writer._run)
STALL_TIMEOUT_MS = "5000"  # see open_pool
_MIGRATION_LOCK = 0x72656C6179  # advisory lock key ("relay"): one process migrates at once

# Errors of the connection rather than of one operation's input.
DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError,
    TimeoutError,
)
# A call ended with the connection in an unknown state: closed rather than reused.
_BROKEN: tuple[type[BaseException], ...] = (
    TimeoutError, OSError, asyncpg.InterfaceError, asyncio.CancelledError)

# Errors of one operation's data, not of the database: SQLSTATE class 22 (a NUL or a
# character the encoding lacks in text, a value out of range) and values asyncpg cannot
# encode. The request that carried the data gets a 422; the store stays healthy.
INPUT_ERRORS: tuple[type[BaseException], ...] = (asyncpg.DataError, ClientDataError)

# Strings: asyncpg's classes are generic only in its stubs.
# Errors of a race with another process's transaction, worth one more try.
_RACES = (asyncpg.UniqueViolationError, asyncpg.DeadlockDetectedError,
          asyncpg.SerializationError, asyncpg.LockNotAvailableError)

Connection: TypeAlias = (
    "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]")
Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"
WriteFn: TypeAlias = "Callable[[Connection, list[Any]], Awaitable[list[Any]]]"


def redact(url: str) -> str:
    """The URL without its password, for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def numbered(sql: str) -> str:
    """`sql` with its `?` placeholders numbered $1, $2, ... in order: relay.storage.reads
    writes `?` (SQL written for PostgreSQL uses $n and has no `?`)."""
    first, *rest = sql.split("?")
    return first + "".join(f"${n}{part}" for n, part in enumerate(rest, 1))


def driver_error(what: str, exc: BaseException) -> RelayError:
    """A driver's error as the caller's: 422 when the database refused this operation's
    data (INPUT_ERRORS: input validation let through what it cannot store, so it is
    logged), else StorageError (503)."""
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, INPUT_ERRORS):
        log("storage_refused_input", logging.WARNING, what=what, error=detail)
        return Unprocessable(f"the database cannot store a value of this request: {detail}")
    return StorageError(f"{what} failed: {detail}")


def migrations() -> list[tuple[int, str]]:
    return base_migrations("postgres")


SCHEMA_VERSION = migrations()[-1][0]


@contextlib.asynccontextmanager
async def acquire(pool: Pool, timeout: float) -> AsyncIterator[Connection]:
    """A pooled connection, taken within `timeout` (also the budget for giving it back).
    One whose call timed out, was cancelled or lost its socket is closed instead of
    returned: the pool opens a fresh one when needed, and nothing waits on the old."""
    async with pool.acquire(timeout=timeout) as con:
        try:
            yield con
        except _BROKEN:
            con.terminate()
            raise


async def fetch(pool: Pool, timeout: float, sql: str, *params: Any) -> list[asyncpg.Record]:
    """The rows of a read on a pooled connection; a driver's error as the caller's."""
    try:
        async with acquire(pool, timeout) as con:
            return list(await con.fetch(sql, *params))
    except DRIVER_ERRORS as exc:
        raise driver_error("database read", exc) from exc


async def execute(pool: Pool, timeout: float, sql: str, *params: Any) -> None:
    """A statement outside the writer's queue (its own commit); errors as `fetch`'s."""
    try:
        async with acquire(pool, timeout) as con:
            await con.execute(sql, *params)
    except DRIVER_ERRORS as exc:
        raise driver_error("database write", exc) from exc


async def open_pool(url: str, name: str, timeout: float) -> Pool:
    """A pool on `url`, migrated, its sessions named `name` (pg_stat_activity shows it;
    wake-ups carry it, so a process can ignore its own), every statement and connect
    limited to `timeout` seconds. Raises StorageError saying what to do."""
    try:
        pool = await asyncpg.create_pool(
            url, min_size=1, max_size=POOL_SIZE, timeout=timeout,
            command_timeout=timeout, reset=_keep_session, server_settings={
                "application_name": name[:63],
                # A process that stalls inside a transaction (a frozen VM, SIGSTOP, a
                # network partition) must not hold the others' locks for long: the
                # server ends its session, and lock waits give up rather than hang.
                "idle_in_transaction_session_timeout": STALL_TIMEOUT_MS,
                "lock_timeout": STALL_TIMEOUT_MS,
            },
        )
    except DRIVER_ERRORS as exc:
        raise StorageError(f"cannot connect to PostgreSQL at {redact(url)}: {exc}") from exc
    try:
        async with acquire(pool, timeout) as con:
            await migrate(con, redact(url))
    except BaseException as exc:
        await pool.close()
        if isinstance(exc, DRIVER_ERRORS):
            raise driver_error(f"migrating {redact(url)}", exc) from exc
        raise
    return pool


async def _keep_session(_con: Connection) -> None:
    """What a released connection is reset with: nothing beyond asyncpg's own (it rolls
    back an open transaction). Its default reset query (advisory unlock, CLOSE ALL,
    UNLISTEN *, RESET ALL) is one more round trip per write and per read, for session
    state relay never leaves behind: settings are SET LOCAL, advisory locks are
    transaction locks (the migration's session lock is released in `migrate`), LISTEN
    runs on a connection of its own."""


async def migrate(con: Connection, where: str) -> None:
    """Run the numbered files newer than the database's version, each in a transaction,
    under an advisory lock so processes starting together migrate once. A database newer
    than this relay is refused."""
    # Another process's migration holds it for as long as that takes.
    await con.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK,
                      timeout=_MIGRATION_TIMEOUT)
    try:
        await con.execute("CREATE TABLE IF NOT EXISTS relay_schema (version INTEGER NOT NULL)")
        current = await con.fetchval("SELECT max(version) FROM relay_schema") or 0
        check_schema(where, current, SCHEMA_VERSION)
        for version, sql in migrations():
            if version <= current:
                continue
            async with con.transaction():
                await con.execute(sql, timeout=_MIGRATION_TIMEOUT)
                await con.execute("INSERT INTO relay_schema VALUES ($1)", version)
    finally:
        await con.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)


_BEGIN = "BEGIN"
_BEGIN_NOT_DURABLE = "BEGIN; SET LOCAL synchronous_commit = off"


_Op = Op[WriteFn]  # for annotations: built as Op (a generic alias's call costs more)


class Writer:
    """Group commit on one pooled connection at a time (see the module docstring)."""

    def __init__(self, pool: Pool, on_health: Callable[[bool], None],
                 observer: Observer | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._pool = pool
        self._timeout = timeout  # taking a connection; statements have the pool's
        self._on_health = on_health
        self._observer = observer
        self._ops: deque[_Op] = deque()
        self._ready = asyncio.Event()
        self._closing = False
        self._task = asyncio.create_task(self._run(), name="relay-postgres-writer")

    def queued(self) -> int:
        return len(self._ops)

    async def submit(self, fn: WriteFn, arg: Any, *, durable: bool = False,
                     single: bool = False) -> Any:
        if self._closing or self._task.done():
            raise StorageError("the store is closed")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._ops.append(Op(fn, arg, durable, future, single))
        self._ready.set()
        return await future

    async def close(self) -> None:
        """Finish what is queued, then stop. Safe to call twice, even at once."""
        self._closing = True
        self._ready.set()
        await asyncio.shield(self._task)

    async def _run(self) -> None:
        """`IN_FLIGHT` loops take batches from the one queue, each on its own connection:
        while one batch waits for its commit (an ingest's WAL flush), the next runs."""
        loops = [asyncio.create_task(self._loop()) for _ in range(IN_FLIGHT)]
        try:
            await asyncio.gather(*loops)
        finally:  # one crashed (a bug): stop the others too
            for loop in loops:
                loop.cancel()

    async def _loop(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._ops:
                batch = [self._ops.popleft() for _ in range(min(MAX_BATCH, len(self._ops)))]
                try:
                    settled = await self._batch(batch, retry_singly=len(batch) > 1)
                except BaseException as exc:  # a bug or cancellation: answer, then stop
                    for op in batch:
                        settle(op.future, None, exc)
                    raise
                for op, result, error in settled:
                    settle(op.future, result, error)
            if self._closing:
                return

    async def _batch(self, batch: list[_Op], *, retry_singly: bool, again: bool = True
                     ) -> list[tuple[_Op, Any, BaseException | None]]:
        """Run a batch; a failed one again one operation at a time. An operation alone
        that lost a race with another process (a unique index, a deadlock) runs once more:
        now it sees the winner's committed row (an idempotency key's first event)."""
        try:
            results = await self._transaction(batch)
        except Exception as exc:
            if retry_singly:
                settled = []
                for op in batch:
                    settled += await self._batch([op], retry_singly=False)
                return settled
            if again and isinstance(exc, _RACES):
                return await self._batch(batch, retry_singly=False, again=False)
            error = self._failure(exc)
            return [(op, None, error) for op in batch]
        self._on_health(True)
        return [(op, result, result if isinstance(result, RelayError) else None)
                for op, result in zip(batch, results, strict=True)]

    async def alone(self, fn: WriteFn, arg: Any) -> Any:
        """Run one operation now, beside the queue, on a pooled connection of its own and
        in no transaction of the writer's: for an operation that is a single statement
        (atomic by itself, committed when it returns) and must not wait behind other
        writes' commits: a claim. A lost race runs once more, as in a batch."""
        if self._closing or self._task.done():
            raise StorageError("the store is closed")

        async def run() -> Any:
            async with acquire(self._pool, self._timeout) as con:
                return (await fn(con, [arg]))[0]

        try:
            try:
                result = await run()
            except _RACES:
                result = await run()
        except Exception as exc:
            raise self._failure(exc) from exc
        self._on_health(True)
        if isinstance(result, RelayError):
            raise result
        return result

    def _failure(self, exc: Exception) -> Exception:
        """What the callers of a failed operation get: a driver's error as StorageError
        (and the store unhealthy unless the database refused only this input)."""
        if not isinstance(exc, DRIVER_ERRORS):
            return exc
        self._on_health(isinstance(exc, (*INPUT_ERRORS,
                                         asyncpg.IntegrityConstraintViolationError)))
        return driver_error("database write", exc)

    async def _transaction(self, batch: list[_Op]) -> list[Any]:
        """One transaction for the batch. A durable batch of single-statement operations
        of one kind (ingest without idempotency keys: the usual case) is one statement in
        its own implicit transaction, a round trip instead of three; its observed commit
        time is then the statement's."""
        results: list[Any] = []
        durable = any(op.durable for op in batch)
        async with acquire(self._pool, self._timeout) as con:
            if durable and all(op.single and op.fn is batch[0].fn for op in batch):
                began = time.perf_counter()
                results = await batch[0].fn(con, [op.arg for op in batch])
            else:
                # One round trip for both (a simple query may hold several statements).
                await con.execute(_BEGIN if durable else _BEGIN_NOT_DURABLE)
                try:
                    for fn, ops in itertools.groupby(batch, key=lambda op: op.fn):
                        results.extend(await fn(con, [op.arg for op in ops]))
                except _BROKEN:
                    raise  # no ROLLBACK on it: acquire closes the connection
                except BaseException:
                    await con.execute("ROLLBACK")
                    raise
                began = time.perf_counter()
                await con.execute("COMMIT")
        if self._observer is not None:
            self._observer.commit("durable" if durable else "other", time.perf_counter() - began)
        return results


async def close_quietly(con: Connection | None) -> None:
    if con is not None:
        with contextlib.suppress(*DRIVER_ERRORS):
            await con.close(timeout=2)
