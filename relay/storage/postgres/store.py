"""The PostgreSQL store: the Store contract for any number of relay processes at once.

Writes go through group commit (connection.Writer), reads through the pool. Beside the
contract, each process runs a heartbeat and listens for wake-ups (cluster.py): it shows
itself in `nodes`, returns expired leases, and keeps `healthy` (/readyz) true only
while the database answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Collection, Sequence
from types import ModuleType
from typing import Any, ClassVar, Literal

from relay.errors import StorageError
from relay.storage.base import Limits, Observer, Watcher, sql_in
from relay.storage.groupcommit import MAX_QUEUE
from relay.storage.postgres import sql as queries
from relay.storage.postgres.cluster import Cluster
from relay.storage.postgres.connection import (
    DEFAULT_TIMEOUT,
    DRIVER_ERRORS,
    Pool,
    WriteFn,
    Writer,
    fetch,
    numbered,
    open_pool,
    redact,
)
from relay.storage.reads import SharedReads
from relay.storage.writes import QueuedWrites
from relay.types import (
    UNFINISHED,
    AttemptResult,
    Claimed,
    FailedAttempt,
    MinuteOutcomes,
    NodeRow,
    Recorded,
    Reporting,
)


class PostgresStore(QueuedWrites, SharedReads):
    """The Store contract (relay.storage.base) on a PostgreSQL database at `url`. `clock`
    (the wall clock) and `monotonic` are the heartbeat's (cluster.py)."""

    _queries: ClassVar[ModuleType] = queries

    def __init__(self, url: str, *, sync: Literal["full", "normal"] = "full",
                 observer: Observer | None = None, timeout: float = DEFAULT_TIMEOUT,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self._timeout = timeout  # [storage] timeout: the longest any database call takes
        self._durable = sync == "full"  # [storage] sync: synchronous_commit for answers
        self._observer = observer
        self.path = redact(url)  # where the data is, as logs show it
        self._pool: Pool | None = None
        self._writer: Writer | None = None
        self._cluster = Cluster(url, self._live_pool, timeout=timeout,
                                reclaim=self.reclaim_expired, healthy=lambda: self.healthy,
                                set_health=self._set_health, clock=clock,
                                monotonic=monotonic)
        self.healthy = True
        self.space_low = False  # the database server's disk is not ours to watch

    @property
    def free_space(self) -> int | None:
        return None

    # --- lifecycle ------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, migrate, start the writer and the heartbeat."""
        self._pool = await open_pool(self.url, self._cluster.node, self._timeout)
        self._writer = Writer(self._pool, self._set_health, self._observer, self._timeout)
        self._cluster.start()

    async def close(self) -> None:
        """Finish queued writes, then close. Safe to call twice, even at once."""
        await self._cluster.stop()
        if self._writer is not None:
            await self._writer.close()
        await self._cluster.unlisten()
        pool, self._pool = self._pool, None
        if pool is not None:
            with contextlib.suppress(*DRIVER_ERRORS):
                await asyncio.wait_for(pool.close(), 5)

    def overloaded(self) -> bool:
        return self._writer is not None and self._writer.queued() > MAX_QUEUE

    def _set_health(self, healthy: bool) -> None:
        self.healthy = healthy

    async def watch(self, watcher: Watcher) -> None:
        """Wake `watcher` on work and endpoint changes made by any process."""
        await self._cluster.watch(watcher)

    async def nodes(self, now: float) -> list[NodeRow]:
        """The processes sharing this database, most recently seen first."""
        return await self._cluster.nodes(now)

    # --- plumbing -------------------------------------------------------------------

    def _live_pool(self) -> Pool:
        if self._pool is None:
            raise StorageError("the store is closed")
        return self._pool

    async def _submit(self, fn: WriteFn, arg: Any, *, durable: bool = False,
                      single: bool = False) -> Any:
        if self._writer is None:
            raise StorageError("the store is closed")
        return await self._writer.submit(fn, arg, durable=durable and self._durable,
                                         single=single)

    async def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return await fetch(self._live_pool(), self._timeout, numbered(sql), *params)

    # --- delivery --------------------------------------------------------------------

    async def claim(
        self, wanted: dict[str, int], now: float, lease_until: float,
        limits: Limits | None = None, ordered: frozenset[str] = frozenset(),
        finished: Collection[int] = (),
    ) -> tuple[list[Claimed], dict[str, float | None]]:
        """Mark up to `wanted[endpoint]` due deliveries `delivering`, oldest first; with
        `limits` (endpoint -> concurrency, rate), within them across every process, where
        this process's `finished` deliveries (sent, outcome not yet committed) no longer
        count; an `ordered` endpoint gives only its head (see SQLiteStore.claim). One
        statement beside the writer's queue: a claim never waits for a record's commit."""
        if self._writer is None:
            raise StorageError("the store is closed")
        result: tuple[list[Claimed], dict[str, float | None]] = await self._writer.alone(
            queries.claim,
            queries.ClaimArgs(wanted, now, lease_until, limits or {}, ordered, finished),
        )
        return result

    async def record(
        self, results: list[AttemptResult], now: float, disable_after: float,
        reporting: Reporting | None = None,
    ) -> Recorded:
        recorded: Recorded = await self._submit(
            queries.record, (results, now, disable_after, reporting))
        return recorded

    async def recover_inflight(self, now: float) -> int:
        """Nothing: other processes may be sending what is `delivering`; a dead process's
        claims come back when their leases expire (reclaim_expired)."""
        return 0

    async def reclaim_expired(self, now: float) -> int:
        count: int = await self._submit(queries.reclaim, now)
        return count

    async def purge(self, before: float, limit: int) -> int:
        count: int = await self._submit(queries.purge, (before, limit))
        return count

    # --- reads (the others: relay.storage.reads) -------------------------------------

    async def pending_counts(self, endpoint_ids: list[str]) -> dict[str, int]:
        """Unfinished deliveries (pending, delivering, held) per endpoint."""
        counts = dict.fromkeys(endpoint_ids, 0)
        rows = await self._query(
            f"SELECT endpoint_id, count(*) FROM deliveries WHERE state IN {sql_in(UNFINISHED)} "
            "AND endpoint_id = ANY($1::text[]) "
            "GROUP BY endpoint_id",
            (endpoint_ids,),
        )
        for endpoint_id, n in rows:
            counts[endpoint_id] += n
        return counts

    async def outcomes_per_minute(self, since: float) -> list[MinuteOutcomes]:
        """Attempts started since `since`, counted per minute and outcome, oldest first;
        minutes without attempts are left out."""
        rows = await self._query(
            "SELECT floor(started_at / 60) * 60 AS minute, "
            "count(*) FILTER (WHERE status BETWEEN 200 AND 299), "
            "count(*) FILTER (WHERE status IS NULL OR status NOT BETWEEN 200 AND 299) "
            "FROM attempts WHERE started_at >= $1 GROUP BY minute ORDER BY minute",
            (since,),
        )
        return [MinuteOutcomes(float(m), int(ok), int(bad)) for m, ok, bad in rows]

    async def recent_failures(self, since: float, limit: int) -> list[FailedAttempt]:
        """The latest attempts since `since` that did not succeed, newest first."""
        rows = await self._query(
            "SELECT a.delivery_id, d.endpoint_id, e.tenant, a.started_at, a.status, a.error "
            "FROM attempts a JOIN deliveries d ON d.id = a.delivery_id "
            "JOIN events e ON e.id = d.event_id WHERE a.started_at >= $1 AND "
            "(a.status IS NULL OR a.status NOT BETWEEN 200 AND 299) "
            f"ORDER BY a.id DESC LIMIT {int(limit)}",
            (since,),
        )
        return [FailedAttempt(*row) for row in rows]
