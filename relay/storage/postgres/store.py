"""The PostgreSQL store: the Store contract for any number of relay processes at once.

Writes go through group commit (connection.Writer), reads through the pool. Beside the
contract, each process runs one heartbeat task (every `HEARTBEAT` seconds) that:
- records the process in `nodes` (relay status shows them and their config digests);
- returns expired leases to pending (a crashed process's claims are taken over after
  their lease, never at someone's start: there is no recover-everything on PostgreSQL);
- polls the endpoint change counter (API changes made by another process are seen within
  a second even if a NOTIFY was lost) and re-listens after the database comes back;
- sets `healthy` (/readyz): false while the database does not answer, true when it does.
  Its statements have a deadline of their own, `HEARTBEAT_TIMEOUT` at most (shorter than
  `[storage] timeout`, which every other call has): a partition that drops packets
  silently turns /readyz to 503 within a few seconds, and the LISTEN connection, which
  would not notice, is closed and opened again once the database answers.
Wake-ups arrive by LISTEN/NOTIFY on a connection of their own (`relay_due`,
`relay_endpoints`); every `POLL_EVERY` seconds the watcher is asked to rescan anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Collection
from types import ModuleType
from typing import Any, ClassVar, Literal

import asyncpg

from relay import __version__
from relay.errors import StorageError
from relay.logs import log
from relay.storage import rules
from relay.storage.base import (
    ATTEMPT_COLS,
    DELIVERY_COLS,
    ENDPOINT_COLS,
    SESSION_COLS,
    Limits,
    Observer,
    Watcher,
    attempt_row,
    endpoint_row,
    sql_in,
)
from relay.storage.groupcommit import MAX_QUEUE
from relay.storage.postgres import sql as queries
from relay.storage.postgres.connection import (
    DEFAULT_TIMEOUT,
    DRIVER_ERRORS,
    Connection,
    Pool,
    WriteFn,
    Writer,
    acquire,
    close_quietly,
    driver_error,
    open_pool,
    redact,
)
from relay.storage.writes import QueuedWrites
from relay.types import (
    IN_LINE,
    UNFINISHED,
    AttemptResult,
    AttemptRow,
    Claimed,
    DeliveryRow,
    EndpointRow,
    EventRow,
    FailedAttempt,
    MinuteOutcomes,
    NodeRow,
    Recorded,
    Reporting,
    SessionRow,
    State,
)

HEARTBEAT = 0.5  # seconds between heartbeats
HEARTBEAT_TIMEOUT = 2.0  # seconds a heartbeat's statement may take, at most
_BEAT_ERRORS: tuple[type[BaseException], ...] = (*DRIVER_ERRORS, StorageError)
POLL_EVERY = 10.0  # seconds between rescans, should a wake-up have been missed
NODE_ALIVE = 10.0  # a node not seen for this long is shown as gone
_NODE_FORGET = 86_400.0  # rows of nodes gone this long are deleted

_EVENT_SELECT = (
    "SELECT id, tenant, type, created_at, payload, "
    "(SELECT count(*) FROM deliveries d WHERE d.event_id = events.id) FROM events"
)
_UPSERT_NODE = (
    "INSERT INTO nodes AS n (id, host, pid, version, config_digest, started_at, seen_at) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO UPDATE SET seen_at = $7, "
    "config_digest = $5"
)


def _where(*conditions: tuple[str, Any]) -> tuple[list[str], list[Any]]:
    """The conditions whose value is given, their `?` numbered $1.. in order, and their
    values."""
    used = [(sql, value) for sql, value in conditions if value is not None]
    return ([sql.replace("?", f"${n}") for n, (sql, _) in enumerate(used, 1)],
            [value for _, value in used])


class PostgresStore(QueuedWrites):
    """The Store contract (relay.storage.base) on a PostgreSQL database at `url`."""

    _queries: ClassVar[ModuleType] = queries

    def __init__(self, url: str, *, sync: Literal["full", "normal"] = "full",
                 observer: Observer | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.url = url
        self._timeout = timeout  # [storage] timeout: the longest any database call takes
        self._durable = sync == "full"  # [storage] sync: synchronous_commit for answers
        self._observer = observer
        self.path = redact(url)  # where the data is, as logs show it
        self._pool: Pool | None = None
        self._writer: Writer | None = None
        self._listener: Connection | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._watcher: Watcher | None = None
        self._listening = asyncio.Lock()
        self._endpoints_version: int | None = None
        self._node = f"relay:{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._started = time.time()
        self.healthy = True
        self.space_low = False  # the database server's disk is not ours to watch

    @property
    def free_space(self) -> int | None:
        return None

    # --- lifecycle ------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, migrate, start the writer and the heartbeat."""
        self._pool = await open_pool(self.url, self._node, self._timeout)
        self._writer = Writer(self._pool, self._set_health, self._observer, self._timeout)
        self._heartbeat = asyncio.create_task(self._beat(), name="relay-postgres-heartbeat")

    async def close(self) -> None:
        """Finish queued writes, then close. Safe to call twice, even at once."""
        heartbeat, self._heartbeat = self._heartbeat, None
        if heartbeat is not None:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        if self._writer is not None:
            await self._writer.close()
        listener, self._listener = self._listener, None
        await close_quietly(listener)
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
        self._watcher = watcher
        await self._listen()

    async def _listen(self) -> None:
        """(Re)open the LISTEN connection unless it is up; then ask for a rescan and an
        endpoint refresh, for what was missed while not listening."""
        async with self._listening:
            if self._watcher is None or (
                    self._listener is not None and not self._listener.is_closed()):
                return
            await close_quietly(self._listener)
            self._listener = None
            try:
                listener = await asyncpg.connect(self.url, timeout=self._timeout,
                                                 command_timeout=self._timeout)
                await listener.add_listener(queries.DUE_CHANNEL, self._on_due)
                await listener.add_listener(queries.ENDPOINTS_CHANNEL, self._on_endpoints)
            except DRIVER_ERRORS as exc:
                log("listen_failed", logging.WARNING, error=str(exc) or type(exc).__name__,
                    note="polling until it can listen")
                return
            self._listener = listener
            self._watcher.rescan()
            self._watcher.endpoints()

    def _on_due(self, _con: object, _pid: int, _channel: str, payload: object) -> None:
        sender, endpoint_id, due = str(payload).rsplit(" ", 2)
        if self._watcher is not None and sender != self._node:  # ours: already woken
            self._watcher.due(endpoint_id, float(due))

    def _on_endpoints(self, _con: object, _pid: int, _channel: str, _payload: object) -> None:
        if self._watcher is not None:
            self._watcher.endpoints()

    async def _beat(self) -> None:
        polled = time.monotonic()
        while True:
            try:
                await self._beat_once()
            except _BEAT_ERRORS as exc:
                if self.healthy:
                    error = exc.message if isinstance(exc, StorageError) else str(exc)
                    log("database_unreachable", logging.ERROR, database=self.path,
                        error=error or type(exc).__name__)
                self.healthy = False
                self._drop_listener()
            else:
                if not self.healthy:
                    log("database_back", logging.WARNING, database=self.path)
                self.healthy = True
            if self._watcher is not None and time.monotonic() - polled > POLL_EVERY:
                polled = time.monotonic()
                self._watcher.rescan()
            await asyncio.sleep(HEARTBEAT)

    def _drop_listener(self) -> None:
        """Close the LISTEN connection at once (no goodbye to a database that does not
        answer): a partition leaves it looking open and deaf; the next heartbeat that
        reaches the database opens a new one."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.terminate()

    async def _beat_once(self) -> None:
        now = time.time()
        pool = self._live_pool()
        deadline = min(self._timeout, HEARTBEAT_TIMEOUT)
        async with acquire(pool, deadline) as con:
            digest = "" if self._watcher is None else self._watcher.config_digest
            await con.execute(_UPSERT_NODE, self._node, socket.gethostname(), os.getpid(),
                              __version__, digest, self._started, now, timeout=deadline)
            version = int(await con.fetchval("SELECT version FROM endpoint_changes",
                                             timeout=deadline))
        if self._watcher is not None:
            await self._listen()
            if self._endpoints_version is not None and version != self._endpoints_version:
                self._watcher.endpoints()
        self._endpoints_version = version
        stepped = self._watcher is not None and self._watcher.clock_stepped()
        if self._writer is not None and not stepped and await self.reclaim_expired(now) \
                and self._watcher is not None:
            self._watcher.rescan()  # the others were woken by NOTIFY, this one skips its own

    async def nodes(self, now: float) -> list[NodeRow]:
        """The processes sharing this database, most recently seen first."""
        await self._execute("DELETE FROM nodes WHERE seen_at < $1", now - _NODE_FORGET)
        rows = await self._read(
            "SELECT id, host, pid, version, config_digest, started_at, seen_at FROM nodes "
            "ORDER BY seen_at DESC"
        )
        return [NodeRow(id=r[0], host=r[1], pid=r[2], version=r[3], config_digest=r[4],
                        started_at=r[5], seen_at=r[6], alive=r[6] >= now - NODE_ALIVE)
                for r in rows]

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

    async def _read(self, sql: str, *params: Any) -> list[asyncpg.Record]:
        pool = self._live_pool()
        try:
            async with acquire(pool, self._timeout) as con:
                return list(await con.fetch(sql, *params))
        except DRIVER_ERRORS as exc:
            raise driver_error("database read", exc) from exc

    async def _execute(self, sql: str, *params: Any) -> None:
        pool = self._live_pool()
        try:
            async with acquire(pool, self._timeout) as con:
                await con.execute(sql, *params)
        except DRIVER_ERRORS as exc:
            raise driver_error("database write", exc) from exc

    # --- ingest and delivery ------------------------------------------------------------

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

    # --- endpoints ----------------------------------------------------------------------

    async def list_endpoints(
        self, tenant: str | None = None, *, after: str | None = None,
        limit: int | None = None,
    ) -> list[EndpointRow]:
        where, params = _where(
            ("tenant = ?", tenant),
            ("(created_at, id) > (SELECT created_at, id FROM endpoints WHERE id = ?)", after),
        )
        sql = (f"SELECT {ENDPOINT_COLS} FROM endpoints WHERE deleted_at IS NULL"
               + "".join(f" AND {w}" for w in where) + " ORDER BY created_at, id")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [endpoint_row(row) for row in await self._read(sql, *params)]

    async def get_endpoint(self, endpoint_id: str) -> EndpointRow | None:
        rows = await self._read(
            f"SELECT {ENDPOINT_COLS} FROM endpoints WHERE id = $1 AND deleted_at IS NULL",
            endpoint_id,
        )
        return endpoint_row(rows[0]) if rows else None

    async def pending_counts(self, endpoint_ids: list[str]) -> dict[str, int]:
        """Unfinished deliveries (pending, delivering, held) per endpoint."""
        counts = dict.fromkeys(endpoint_ids, 0)
        rows = await self._read(
            f"SELECT endpoint_id, count(*) FROM deliveries WHERE state IN {sql_in(UNFINISHED)} "
            "AND endpoint_id = ANY($1::text[]) "
            "GROUP BY endpoint_id",
            endpoint_ids,
        )
        for endpoint_id, n in rows:
            counts[endpoint_id] += n
        return counts

    # --- housekeeping and reads ---------------------------------------------------------

    async def purge(self, before: float, limit: int) -> int:
        count: int = await self._submit(queries.purge, (before, limit))
        return count

    async def counts(self) -> dict[str, int]:
        rows = await self._read("SELECT state, count(*) FROM deliveries GROUP BY state")
        return {state: n for state, n in rows}

    async def deliveries_of(self, event_id: str) -> list[DeliveryRow]:
        rows = await self._read(
            f"SELECT {DELIVERY_COLS} FROM deliveries WHERE event_id = $1 ORDER BY id",
            event_id,
        )
        return [DeliveryRow(*row) for row in rows]

    async def list_deliveries(
        self, endpoint_id: str, *, state: State | None = None, before: int | None = None,
        limit: int = 50,
    ) -> list[DeliveryRow]:
        where, params = _where(
            ("endpoint_id = ?", endpoint_id), ("state = ?", state), ("id < ?", before),
        )
        rows = await self._read(
            f"SELECT {DELIVERY_COLS} FROM deliveries WHERE {' AND '.join(where)} "
            f"ORDER BY id DESC LIMIT {int(limit)}",
            *params,
        )
        return [DeliveryRow(*row) for row in rows]

    async def get_delivery(self, delivery_id: int, tenant: str) -> DeliveryRow | None:
        cols = ", ".join(f"d.{c}" for c in DELIVERY_COLS.split(", "))
        rows = await self._read(
            f"SELECT {cols} FROM deliveries d JOIN events e ON e.id = d.event_id "
            "WHERE d.id = $1 AND e.tenant = $2",
            delivery_id, tenant,
        )
        return DeliveryRow(*rows[0]) if rows else None

    async def blocked_counts(self, endpoint_ids: list[str]) -> dict[str, int]:
        """Per ordered endpoint: the deliveries waiting behind a head that has failed; 0
        while the head is on its first attempt, or there is none (as on SQLite)."""
        counts = dict.fromkeys(endpoint_ids, 0)
        for endpoint_id in endpoint_ids:
            head = await self._read(
                "SELECT id, state, attempts FROM deliveries WHERE endpoint_id = $1 "
                f"AND state IN {sql_in(IN_LINE)} ORDER BY id LIMIT 1", endpoint_id)
            if not head or not rules.blocks(head[0][1], head[0][2]):
                continue
            counts[endpoint_id] = int(await self._live_pool().fetchval(
                "SELECT count(*) FROM deliveries WHERE endpoint_id = $1 AND id > $2 "
                f"AND state IN {sql_in(UNFINISHED)}", endpoint_id, head[0][0]))
        return counts

    async def list_events(
        self, tenant: str, *, type: str | None = None, before: str | None = None,
        since: float | None = None, until: float | None = None, limit: int = 50,
    ) -> list[EventRow]:
        """A page of a tenant's events as relay.storage.rules.event_page says."""
        page = rules.event_page(tenant, type, before, since, until)
        where, params = _where(*page.conditions)
        rows = await self._read(
            f"{_EVENT_SELECT} WHERE {' AND '.join(where)} ORDER BY {page.order} "
            f"LIMIT {int(limit)}",
            *params,
        )
        return [EventRow(*row) for row in rows]

    async def get_event(self, event_id: str, tenant: str) -> EventRow | None:
        rows = await self._read(f"{_EVENT_SELECT} WHERE id = $1 AND tenant = $2",
                                event_id, tenant)
        return EventRow(*rows[0]) if rows else None

    async def outcomes_per_minute(self, since: float) -> list[MinuteOutcomes]:
        """Attempts started since `since`, counted per minute and outcome, oldest first;
        minutes without attempts are left out."""
        rows = await self._read(
            "SELECT floor(started_at / 60) * 60 AS minute, "
            "count(*) FILTER (WHERE status BETWEEN 200 AND 299), "
            "count(*) FILTER (WHERE status IS NULL OR status NOT BETWEEN 200 AND 299) "
            "FROM attempts WHERE started_at >= $1 GROUP BY minute ORDER BY minute",
            since,
        )
        return [MinuteOutcomes(float(m), int(ok), int(bad)) for m, ok, bad in rows]

    async def recent_failures(self, since: float, limit: int) -> list[FailedAttempt]:
        """The latest attempts since `since` that did not succeed, newest first."""
        rows = await self._read(
            "SELECT a.delivery_id, d.endpoint_id, e.tenant, a.started_at, a.status, a.error "
            "FROM attempts a JOIN deliveries d ON d.id = a.delivery_id "
            "JOIN events e ON e.id = d.event_id WHERE a.started_at >= $1 AND "
            "(a.status IS NULL OR a.status NOT BETWEEN 200 AND 299) "
            f"ORDER BY a.id DESC LIMIT {int(limit)}",
            since,
        )
        return [FailedAttempt(*row) for row in rows]

    # --- console and portal sessions (relay.sessions) -----------------------------------

    async def get_session(self, session_id: str) -> SessionRow | None:
        rows = await self._read(f"SELECT {SESSION_COLS} FROM sessions WHERE id = $1",
                                session_id)
        return SessionRow(*rows[0]) if rows else None

    async def attempts_of(self, delivery_id: int) -> list[AttemptRow]:
        rows = await self._read(
            f"SELECT {ATTEMPT_COLS} FROM attempts WHERE delivery_id = $1 ORDER BY id",
            delivery_id,
        )
        return [attempt_row(r) for r in rows]
