"""The SQLite store: the Store contract on one file, for one relay process.

Writes go through the writer thread's group commit (writer.Writer), as the named
operations of sql.py; reads through aiosqlite on a second, read-only connection (one
query, one hop), which WAL lets run beside the writer.

Crash safety: a kill -9 at any point leaves either the committed state or the previous
one, and nobody is answered before the commit. Deliveries caught `delivering` are
returned to `pending` at the next start (`recover_inflight`); a lock file proves no other
process holds them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import aiosqlite

from relay.errors import StorageError
from relay.logs import log
from relay.storage.base import Limits, Observer, Watcher
from relay.storage.groupcommit import MAX_QUEUE
from relay.storage.reads import SharedReads
from relay.storage.sqlite import sql as queries
from relay.storage.sqlite.connection import take_lock
from relay.storage.sqlite.writer import Sync, WriteFn, Writer
from relay.storage.writes import QueuedWrites
from relay.types import (
    AttemptResult,
    Claimed,
    FailedAttempt,
    MinuteOutcomes,
    NodeRow,
    Recorded,
    Reporting,
)

_RECORD_RETRY_FOR = 10.0  # seconds an outcome's record is retried while writes fail


class SQLiteStore(QueuedWrites, SharedReads):
    """The Store contract (relay.storage.base) on one SQLite file."""

    _queries: ClassVar[ModuleType] = queries
    # A page of events bounded in time is read in (created_at, seq) order along
    # events_created: left to itself SQLite walks events_tenant and sorts every match
    # (140-420 ms for 100,000 events; this way 0.02-0.2 ms), so no index is added to the
    # ingest path. Its cost is the events in the range that are another tenant's or
    # type's: a range holding none of this tenant's reads the whole range.
    _TIMED_EVENTS_INDEX: ClassVar[str] = " INDEXED BY events_created"

    def __init__(self, path: str | Path, *, lock: bool = True, sync: Sync = "full",
                 observer: Observer | None = None, min_free_space: int = 0) -> None:
        self.path = Path(path)
        self._lock = lock
        self._lock_fd: int | None = None
        self._min_free_space = min_free_space
        self._writer = Writer(self.path, sync=sync, observer=observer,
                              on_health=self._set_health, min_free=min_free_space,
                              on_space=self._set_space)
        self._r: aiosqlite.Connection | None = None
        self.healthy = True  # false after a write failed, until one succeeds
        self.space_low = False  # free space under min_free_space (checked every second)

    @property
    def free_space(self) -> int | None:
        """Bytes free on the database's filesystem at the last look (once a second)."""
        return self._writer.free

    def _set_health(self, healthy: bool) -> None:
        self.healthy = healthy

    def _set_space(self, low: bool, free: int) -> None:
        """Free space crossed min_free_space: one line each way."""
        self.space_low = low
        log("storage_space_low" if low else "storage_space_recovered",
            logging.WARNING if low else logging.INFO, path=str(self.path.parent),
            free_bytes=free, min_free_bytes=self._min_free_space)

    # --- lifecycle ------------------------------------------------------------------

    async def open(self) -> None:
        """Lock, open, migrate, start the writer. Raises StorageError with what to do."""
        if self._lock:
            self._lock_fd = take_lock(self.path)
        try:
            await self._writer.open()
            self._r = await aiosqlite.connect(self.path, isolation_level=None)
            await self._r.execute("PRAGMA query_only=1")
            await self._r.execute("PRAGMA busy_timeout=5000")
        except sqlite3.Error as exc:
            await self.close()
            raise StorageError(f"cannot open database {self.path}: {exc}") from exc
        except BaseException:
            await self.close()
            raise
        mode = self.path.stat().st_mode & 0o777
        if mode & 0o077:  # made by an older relay, or chmod-ed: relay leaves the mode be
            log("database_readable_by_others", logging.WARNING, path=str(self.path),
                mode=f"{mode:04o}", note="it holds signing secrets: chmod 600 it")

    async def close(self) -> None:
        """Finish queued writes, then close. Safe to call twice, even at once."""
        await self._writer.close()
        reader, self._r = self._r, None  # taken first: a second close() skips it
        if reader is not None:
            await reader.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # --- the writer ------------------------------------------------------------------

    async def _submit(self, fn: WriteFn, arg: Any, *, durable: bool = False,
                      bare: bool = False, alone: bool = False, single: bool = False) -> Any:
        return await self._writer.submit(fn, arg, durable=durable, bare=bare, alone=alone,
                                         single=single)

    async def pragma(self, statement: str) -> list[Any]:
        """Run `PRAGMA statement` on the writing connection, outside any transaction (tests
        simulate a full disk or a read-only file this way)."""
        rows: list[Any] = await self._submit(queries.pragma, statement, bare=True)
        return rows

    def overloaded(self) -> bool:
        return self._writer.queued() > MAX_QUEUE

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
        id), and only when the head is pending and due and nothing of the endpoint is in
        flight: while a request is out or the head waits for a retry, nothing goes. Its
        next due time is the head's (None while a request is in flight: the outcome's
        recording wakes the scheduler)."""
        result: tuple[list[Claimed], dict[str, float | None]] = await self._submit(
            queries.claim, (wanted, now, lease_until, ordered)
        )
        return result

    async def record(
        self, results: list[AttemptResult], now: float, disable_after: float,
        reporting: Reporting | None = None,
    ) -> Recorded:
        """Record attempts and the deliveries' next states, update endpoint health,
        disable endpoints that answered 410 or failed for `disable_after`; with `reporting`,
        store the operational events this causes in the same transaction.

        Failed for the database (a full disk), it is tried again for up to
        `_RECORD_RETRY_FOR` seconds: given up, the deliveries would stay `delivering`
        until their leases expire and the next housekeeping round (a minute) returns them,
        to be sent once more."""
        delay = 0.05
        deadline = time.monotonic() + _RECORD_RETRY_FOR
        while True:
            try:
                recorded: Recorded = await self._submit(
                    queries.record, (results, now, disable_after, reporting))
            except StorageError:
                if not self._writer.running() or time.monotonic() + delay > deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(2 * delay, 1.0)
                continue
            return recorded

    async def watch(self, watcher: Watcher) -> None:
        """Nothing to watch: this process is the database's only user (the lock)."""

    async def nodes(self, now: float) -> list[NodeRow]:
        """One process only, so no list of them."""
        return []

    async def recover_inflight(self, now: float) -> int:
        """At start: every `delivering` row belongs to a dead process (we hold the lock)."""
        count: int = await self._submit(queries.recover, (now, None))
        return count

    async def reclaim_expired(self, now: float) -> int:
        """Leases that ran out without an outcome go back to pending."""
        count: int = await self._submit(queries.recover, (now, now))
        return count

    async def purge(self, before: float, limit: int) -> int:
        """Delete up to `limit` events older than `before` whose deliveries are all
        finished, with their deliveries and attempts. Returns how many events. Its own
        transaction: ingest commits never wait for a purge's work, only for its turn."""
        count: int = await self._submit(queries.purge, (before, limit), alone=True)
        return count

    # --- reads (the others: relay.storage.reads) -------------------------------------

    async def pending_counts(self, endpoint_ids: list[str]) -> dict[str, int]:
        """Unfinished deliveries (pending, delivering, held) per endpoint; one query per
        state so each is answered from its partial index, not the endpoint's history.
        INDEXED BY: left to itself SQLite walks deliveries_endpoint, the whole history
        (330 ms for an endpoint with 100,000 finished deliveries; 0.2 ms this way)."""
        counts = dict.fromkeys(endpoint_ids, 0)
        rows: list[Any] = []
        for chunk in queries.chunks(endpoint_ids, queries.CHUNK // 2):
            marks = queries.qmarks(len(chunk))
            rows += await self._query(
                f"SELECT endpoint_id, COUNT(*) FROM deliveries INDEXED BY deliveries_due "
                f"WHERE state = 'pending' AND endpoint_id IN ({marks}) GROUP BY endpoint_id "
                f"UNION ALL SELECT endpoint_id, COUNT(*) FROM deliveries INDEXED BY "
                f"deliveries_held WHERE state = 'held' AND endpoint_id IN ({marks}) "
                "GROUP BY endpoint_id",
                (*chunk, *chunk),
            )
        rows += await self._query(  # few: at most `concurrency` are in flight
            "SELECT endpoint_id, COUNT(*) FROM deliveries INDEXED BY deliveries_inflight "
            "WHERE state = 'delivering' GROUP BY endpoint_id"
        )
        for endpoint_id, n in rows:
            if endpoint_id in counts:
                counts[endpoint_id] += n
        return counts

    async def _first_attempt_since(self, since: float) -> int | None:
        """The id of the first attempt started at or after `since`, by bisection over
        attempt ids (they grow with time, give or take one timeout): about 20 indexed
        reads instead of a scan of the history or an index on started_at, which every
        recorded attempt would pay for."""
        [(low, high)] = await self._query("SELECT MIN(id), MAX(id) FROM attempts")
        if high is None:
            return None
        while low < high:
            middle = (low + high) // 2
            [(started_at,)] = await self._query(
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
        rows = await self._query(
            # TOTAL, not SUM: `status BETWEEN ...` is NULL for an attempt without a
            # status (connection refused), and SUM over only NULLs is NULL.
            "SELECT CAST(started_at / 60 AS INTEGER) * 60 AS minute, "
            "TOTAL(status BETWEEN 200 AND 299), TOTAL(status IS NULL OR status NOT BETWEEN "
            "200 AND 299) FROM attempts WHERE id >= ? AND started_at >= ? GROUP BY minute "
            "ORDER BY minute",
            (first, since),
        )
        return [MinuteOutcomes(float(m), int(ok), int(bad)) for m, ok, bad in rows]

    async def recent_failures(self, since: float, limit: int) -> list[FailedAttempt]:
        """The latest attempts since `since` that did not succeed, newest first."""
        first = await self._first_attempt_since(since)
        if first is None:
            return []
        rows = await self._query(
            "SELECT a.delivery_id, d.endpoint_id, e.tenant, a.started_at, a.status, a.error "
            "FROM attempts a JOIN deliveries d ON d.id = a.delivery_id "
            "JOIN events e ON e.id = d.event_id WHERE a.id >= ? AND a.started_at >= ? AND "
            "(a.status IS NULL OR a.status NOT BETWEEN 200 AND 299) ORDER BY a.id DESC LIMIT ?",
            (first, since, limit),
        )
        return [FailedAttempt(*row) for row in rows]

    async def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        if self._r is None:
            raise StorageError("the store is closed")
        try:
            async with self._r.execute(sql, params) as cur:
                return list(await cur.fetchall())
        except sqlite3.Error as exc:
            raise StorageError(f"database read failed: {exc}") from exc
