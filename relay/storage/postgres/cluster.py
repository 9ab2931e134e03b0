"""This process among the others sharing the PostgreSQL database: heartbeat and wake-ups.

Each process runs one heartbeat task (`Cluster`, every `HEARTBEAT` seconds) that:
- records the process in `nodes` (relay status shows them and their config digests);
- returns expired leases to pending (a crashed process's claims are taken over after
  their lease, never at someone's start: there is no recover-everything on PostgreSQL),
  but not while a step of this process's wall clock waits to be taken in: its own
  leases, still being sent, would look expired;
- polls the endpoint and directory change counters (API changes to endpoints, tenants
  and keys made by another process are seen within a second even if a NOTIFY was lost)
  and re-listens after the database comes back;
- sets the store's health (/readyz): false while the database does not answer, true when
  it does. Its statements have a deadline of their own, `HEARTBEAT_TIMEOUT` at most
  (shorter than `[storage] timeout`, which every other call has): a partition that drops
  packets silently turns /readyz to 503 within a few seconds, and the LISTEN connection,
  which would not notice, is closed and opened again once the database answers.
Wake-ups arrive by LISTEN/NOTIFY on a connection of their own (`relay_due`,
`relay_endpoints`, `relay_directory`); every `POLL_EVERY` seconds the watcher is asked
to rescan anyway.

The decisions are pure (`Pulse` and the functions before `Cluster`): they take what a
round saw and the time, read from the clocks `Cluster` is given (the wall clock for
stored times, the monotonic one for intervals), so a table test runs them without a
database. `Cluster` does the I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import NamedTuple

import asyncpg

from relay import __version__
from relay.errors import StorageError
from relay.logs import log
from relay.storage.base import Watcher
from relay.storage.postgres.connection import (
    DRIVER_ERRORS,
    Connection,
    Pool,
    acquire,
    close_quietly,
    execute,
    fetch,
    redact,
)
from relay.storage.postgres.sql import DIRECTORY_CHANNEL, DUE_CHANNEL, ENDPOINTS_CHANNEL
from relay.types import NodeRow, Row

HEARTBEAT = 0.5  # seconds between heartbeats
HEARTBEAT_TIMEOUT = 2.0  # seconds a heartbeat's statement may take, at most
POLL_EVERY = 10.0  # seconds between rescans, should a wake-up have been missed
NODE_ALIVE = 10.0  # a node not seen for this long is shown as gone
NODE_FORGET = 86_400.0  # rows of nodes gone this long are deleted
# What a round may fail with: the database's errors, and the store's (closed, a reclaim).
BEAT_ERRORS: tuple[type[BaseException], ...] = (*DRIVER_ERRORS, StorageError)
UNREACHABLE, BACK = "database_unreachable", "database_back"  # a health change's log action

_UPSERT_NODE = (
    "INSERT INTO nodes AS n (id, host, pid, version, config_digest, started_at, seen_at) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO UPDATE SET seen_at = $7, "
    "config_digest = $5"
)
_VERSIONS = ("SELECT (SELECT version FROM endpoint_changes), "
             "(SELECT version FROM directory_changes)")
_FORGET_NODES = "DELETE FROM nodes WHERE seen_at < $1"
_NODES = ("SELECT id, host, pid, version, config_digest, started_at, seen_at FROM nodes "
          "ORDER BY seen_at DESC")


# --- the decisions -------------------------------------------------------------------


def node_id(host: str, pid: int, token: str) -> str:
    """This process's name: its row in `nodes`, its sessions' application_name, and the
    sender of its wake-ups (so that it skips its own)."""
    return f"relay:{host}:{pid}:{token}"


def beat_deadline(timeout: float) -> float:
    """How long a heartbeat's statement may take: `[storage] timeout`, at most
    `HEARTBEAT_TIMEOUT`."""
    return min(timeout, HEARTBEAT_TIMEOUT)


def health_change(healthy: bool, reached: bool) -> str | None:
    """The log action of a round that did (`reached`) or did not reach the database, for
    a store `healthy` until then: UNREACHABLE for the first that fails, BACK for the first
    that reaches it after that, None when the health stays. The health after the round
    is `reached`."""
    if healthy == reached:
        return None
    return BACK if reached else UNREACHABLE


def due_wakeup(payload: str, node: str) -> tuple[str, float] | None:
    """The endpoint and due time a `relay_due` payload (`<sender> <endpoint> <due>`)
    announces; None for this process's own (it woke its scheduler already)."""
    sender, endpoint_id, due = payload.rsplit(" ", 2)
    return None if sender == node else (endpoint_id, float(due))


def forget_before(now: float) -> float:
    """Rows of nodes last seen before this are deleted (`NODE_FORGET`)."""
    return now - NODE_FORGET


def node_row(row: Row, now: float) -> NodeRow:
    """A NodeRow from the columns `_NODES` reads; alive if seen within `NODE_ALIVE`."""
    return NodeRow(id=row[0], host=row[1], pid=row[2], version=row[3],
                   config_digest=row[4], started_at=row[5], seen_at=row[6],
                   alive=row[6] >= now - NODE_ALIVE)


class Answer(NamedTuple):
    """What to do after a round's statements were answered."""

    refresh: bool  # endpoints changed since the last round: ask the watcher to read them
    reclaim: bool  # return expired leases to pending now


@dataclass(slots=True)
class Pulse:
    """What the heartbeat remembers from round to round."""

    polled: float  # monotonic seconds of the last rescan
    version: int | None = None  # the endpoint change counter at the last answered round
    directory: int | None = None  # the directory's, likewise

    def answered(self, version: int, stepped: bool) -> Answer:
        """The database answered with the endpoint change counter `version`; `stepped`: a
        step of this process's wall clock is not yet taken in. Endpoints are read again
        when the counter moved since the last answer (not on the first: the watcher reads
        them when it starts listening); expired leases are returned unless `stepped`
        (after a step forward, this process's own leases look expired by its clock; the
        scheduler moves them first, relay.delivery.clocksteps)."""
        refresh = self.version is not None and version != self.version
        self.version = version
        return Answer(refresh=refresh, reclaim=not stepped)

    def directory_moved(self, version: int) -> bool:
        """Whether the directory's version moved since the last answer (not on the
        first: the watcher reads the directory when it starts listening)."""
        moved = self.directory is not None and version != self.directory
        self.directory = version
        return moved

    def rescan(self, now: float) -> bool:
        """Whether, at monotonic `now`, it is time for a rescan (more than `POLL_EVERY`
        since the last), which then counts as done."""
        if now - self.polled <= POLL_EVERY:
            return False
        self.polled = now
        return True


# --- the I/O ---------------------------------------------------------------------------


class Cluster:
    """This process's heartbeat and wake-ups on the database at `url` (see the module
    docstring). `pool` is the store's (StorageError once closed); `reclaim(now)` returns
    expired leases to pending (how many); the heartbeat reads the store's health with
    `healthy` and sets it with `set_health`. `clock` is the wall clock (seen_at, leases),
    `monotonic` the clock of intervals."""

    def __init__(self, url: str, pool: Callable[[], Pool], *, timeout: float,
                 reclaim: Callable[[float], Awaitable[int]], healthy: Callable[[], bool],
                 set_health: Callable[[bool], None],
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._url = url
        self._where = redact(url)
        self._pool = pool
        self._timeout = timeout
        self._reclaim = reclaim
        self._healthy = healthy
        self._set_health = set_health
        self._clock = clock
        self._monotonic = monotonic
        self._host, self._pid = socket.gethostname(), os.getpid()
        self.node = node_id(self._host, self._pid, secrets.token_hex(3))
        self._started = clock()
        self._watcher: Watcher | None = None
        self._listener: Connection | None = None
        self._listening = asyncio.Lock()
        self._heartbeat: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the heartbeat (the pool is open)."""
        self._heartbeat = asyncio.create_task(self._beat(), name="relay-postgres-heartbeat")

    async def stop(self) -> None:
        """Stop the heartbeat; safe to call twice."""
        heartbeat, self._heartbeat = self._heartbeat, None
        if heartbeat is not None:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def unlisten(self) -> None:
        """Close the LISTEN connection; safe to call twice."""
        listener, self._listener = self._listener, None
        await close_quietly(listener)

    async def watch(self, watcher: Watcher) -> None:
        """Wake `watcher` on work and endpoint changes made by any process."""
        self._watcher = watcher
        await self._listen()

    async def nodes(self, now: float) -> list[NodeRow]:
        """The processes sharing this database, most recently seen first; rows of those
        gone `NODE_FORGET` are deleted first."""
        pool = self._pool()
        await execute(pool, self._timeout, _FORGET_NODES, forget_before(now))
        return [node_row(r, now) for r in await fetch(pool, self._timeout, _NODES)]

    async def _listen(self) -> None:
        """(Re)open the LISTEN connection unless it is up (it is down before the first
        call, once the server closed it, and after a round that failed dropped it); then
        ask for a rescan and an endpoint refresh, for what was missed while not
        listening."""
        async with self._listening:
            if self._watcher is None or (
                    self._listener is not None and not self._listener.is_closed()):
                return
            await close_quietly(self._listener)
            self._listener = None
            try:
                listener = await asyncpg.connect(self._url, timeout=self._timeout,
                                                 command_timeout=self._timeout)
                await listener.add_listener(DUE_CHANNEL, self._on_due)
                await listener.add_listener(ENDPOINTS_CHANNEL, self._on_endpoints)
                await listener.add_listener(DIRECTORY_CHANNEL, self._on_directory)
            except DRIVER_ERRORS as exc:
                log("listen_failed", logging.WARNING, error=str(exc) or type(exc).__name__,
                    note="polling until it can listen")
                return
            self._listener = listener
            self._watcher.rescan()
            self._watcher.endpoints()
            self._watcher.directory()

    def _on_due(self, _con: object, _pid: int, _channel: str, payload: object) -> None:
        woken = due_wakeup(str(payload), self.node)
        if self._watcher is not None and woken is not None:
            self._watcher.due(*woken)

    def _on_endpoints(self, _con: object, _pid: int, _channel: str, _payload: object) -> None:
        if self._watcher is not None:
            self._watcher.endpoints()

    def _on_directory(self, _con: object, _pid: int, _channel: str, _payload: object) -> None:
        if self._watcher is not None:
            self._watcher.directory()

    def _drop_listener(self) -> None:
        """Close the LISTEN connection at once (no goodbye to a database that does not
        answer): a partition leaves it looking open and deaf; the next heartbeat that
        reaches the database opens a new one."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.terminate()

    async def _beat(self) -> None:
        pulse = Pulse(polled=self._monotonic())
        while True:
            error: BaseException | None = None
            try:
                await self._round(pulse)
            except BEAT_ERRORS as exc:
                error = exc
            change = health_change(self._healthy(), error is None)
            if change == UNREACHABLE and error is not None:
                message = error.message if isinstance(error, StorageError) else str(error)
                log(UNREACHABLE, logging.ERROR, database=self._where,
                    error=message or type(error).__name__)
            elif change == BACK:
                log(BACK, logging.WARNING, database=self._where)
            self._set_health(error is None)
            if error is not None:
                self._drop_listener()
            if self._watcher is not None and pulse.rescan(self._monotonic()):
                self._watcher.rescan()
            await asyncio.sleep(HEARTBEAT)

    async def _round(self, pulse: Pulse) -> None:
        """Record this node, read the change counters, re-listen if needed, return
        expired leases: one heartbeat."""
        now = self._clock()
        deadline = beat_deadline(self._timeout)
        async with acquire(self._pool(), deadline) as con:
            digest = "" if self._watcher is None else self._watcher.config_digest
            await con.execute(_UPSERT_NODE, self.node, self._host, self._pid, __version__,
                              digest, self._started, now, timeout=deadline)
            [versions] = await con.fetch(_VERSIONS, timeout=deadline)
        version, directory = versions
        if self._watcher is not None:
            await self._listen()
        stepped = self._watcher is not None and self._watcher.clock_stepped()
        answer = pulse.answered(int(version), stepped)
        if answer.refresh and self._watcher is not None:
            self._watcher.endpoints()
        if pulse.directory_moved(int(directory)) and self._watcher is not None:
            self._watcher.directory()
        if answer.reclaim and await self._reclaim(now) and self._watcher is not None:
            self._watcher.rescan()  # the others were woken by NOTIFY, this one skips its own
