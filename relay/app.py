"""The running appliance: config, store, scheduler and sender in one lifespan.

`Relay` owns the parts and the operations that span them: ingest (match, store, wake
the scheduler), config reload, endpoint state changes, background housekeeping. The
HTTP layer (relay.api) calls into it; it installs no signal handlers (relay.cli does).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relay import config as cfgmod
from relay.delivery.endpoints import Endpoint, from_config, resolve
from relay.delivery.matching import filter_matches, type_matches
from relay.delivery.scheduler import USER_AGENT, Scheduler
from relay.delivery.sender import Sender
from relay.delivery.signing import generate_secret
from relay.errors import ConfigError, RelayError, Unavailable
from relay.ids import event_id
from relay.logs import log
from relay.metrics import Metrics
from relay.storage.base import Ingested, NewEvent
from relay.storage.sqlite import SQLiteStore

_HOUSEKEEPING_EVERY = 60.0  # seconds between purge rounds, lease checks and hint rescans
_PURGE_BATCH = 500  # events per purge transaction: keeps the writer responsive
SHUTDOWN_GRACE = 5.0  # seconds in-flight attempts may finish at shutdown


@dataclass(frozen=True, slots=True)
class EventIn:
    """A validated event from ingest, before it has an id."""

    type: str
    data: dict[str, Any]
    tenant: str
    idem_key: str | None


def timestamp(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class Relay:
    def __init__(
        self, loaded: cfgmod.Loaded, *, clock: Callable[[], float] = time.time,
        watch: bool = False,
    ) -> None:
        self.loaded = loaded
        self.clock = clock
        self._watch = watch
        self.metrics = Metrics()
        self.store = SQLiteStore(loaded.config.storage.path)
        self.sender = Sender(user_agent=USER_AGENT,
                             max_connections=loaded.config.delivery.concurrency)
        self.scheduler = Scheduler(
            self.store, self.sender, self.metrics,
            concurrency=loaded.config.delivery.concurrency,
            disable_after=lambda: self.config.delivery.disable_after,
            on_disabled=self._endpoints_disabled, clock=clock,
        )
        self.endpoints: dict[str, Endpoint] = {}
        self.started = False
        self.stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        self._refresh_lock = asyncio.Lock()

    @property
    def config(self) -> cfgmod.Config:
        return self.loaded.config

    # --- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        await self.store.open()
        try:
            now = self.clock()
            recovered = await self.store.recover_inflight(now)
            await self._sync_config(self.loaded)
            await self.sender.start()
        except BaseException:
            await self.store.close()
            raise
        self.scheduler.start()
        self._tasks.append(asyncio.create_task(self._housekeeping(), name="relay-housekeeping"))
        if self._watch and self.loaded.source is not None:
            self._tasks.append(asyncio.create_task(self._watch_config(self.loaded.source)))
        self.started = True
        log("started", listen=self.config.server.listen, database=str(self.store.path),
            endpoints=len(self.endpoints), recovered=recovered or None)

    async def stop(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Refuse new events, let in-flight attempts finish (up to `grace`), close."""
        self.stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.started:
            await self.scheduler.stop(grace)
            await self.sender.close()
        await self.store.close()
        self.started = False
        log("stopped")

    # --- ingest ---------------------------------------------------------------------

    def match(self, tenant: str, envelope: dict[str, Any]) -> list[Endpoint]:
        return [
            ep for ep in self.endpoints.values()
            if ep.tenant == tenant and type_matches(ep.events, envelope["type"])
            and filter_matches(ep.filter, envelope)
        ]

    async def ingest(self, events: list[EventIn]) -> list[Ingested]:
        """Store events with one delivery per matching endpoint, all or nothing; answer
        after the commit. Repeated idempotency keys answer the original event."""
        if self.stopping or not self.started:
            raise Unavailable()
        now = self.clock()
        new: list[NewEvent] = []
        due: set[str] = set()
        for ev in events:
            eid = event_id(now)
            envelope = {"id": eid, "type": ev.type, "timestamp": timestamp(now),
                        "tenant_id": ev.tenant, "data": ev.data}
            targets = self.match(ev.tenant, envelope)
            digest = hashlib.sha256(
                json.dumps([ev.tenant, ev.type, ev.data], sort_keys=True).encode()
            ).hexdigest()
            new.append(NewEvent(
                id=eid, tenant=ev.tenant, type=ev.type, idem_key=ev.idem_key, digest=digest,
                created_at=now,
                payload=json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode(),
                deliveries=tuple((t.id, "pending" if t.accepting else "held") for t in targets),
            ))
            due.update(t.id for t in targets if t.accepting)
        results = await self.store.ingest(new)
        fresh = sum(1 for r in results if not r.duplicate)
        if fresh:
            self.metrics.events.inc(fresh)
            for endpoint_id in due:
                self.scheduler.notify(endpoint_id, now)
        return results

    # --- config and endpoints -------------------------------------------------------------

    async def _sync_config(self, loaded: cfgmod.Loaded) -> None:
        now = self.clock()
        await self.store.sync_config_endpoints(
            [from_config(ep, loaded.endpoint_secrets.get(ep.id)) for ep in loaded.config.endpoints],
            now, generate_secret,
        )
        self.loaded = loaded
        await self.refresh_endpoints()

    async def refresh_endpoints(self) -> None:
        """Re-read endpoints, hold or release deliveries where acceptance changed, and
        hand the new set to the scheduler."""
        async with self._refresh_lock:
            now = self.clock()
            rows = await self.store.list_endpoints()
            endpoints = {row.id: resolve(row, self.config.delivery, now) for row in rows}
            released = []
            for ep in endpoints.values():
                before = self.endpoints.get(ep.id)
                if before is not None and before.accepting == ep.accepting:
                    continue
                changed = await self.store.set_accepting(ep.id, ep.accepting, now)
                if changed:
                    log("released" if ep.accepting else "held", endpoint=ep.id, deliveries=changed)
                    if ep.accepting:
                        released.append(ep.id)
            self.endpoints = endpoints
            self.scheduler.concurrency = self.config.delivery.concurrency
            self.scheduler.set_endpoints(endpoints)
            for endpoint_id in released:
                self.scheduler.notify(endpoint_id, now)

    def _endpoints_disabled(self, disabled: dict[str, str]) -> None:
        task = asyncio.create_task(self.refresh_endpoints())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def reload(self) -> bool:
        """Re-read the config file; an invalid file is logged and the running config stays."""
        source = self.loaded.source
        if source is None:
            return False
        try:
            loaded = cfgmod.load(source)
        except ConfigError as exc:
            log("config_reload", logging.ERROR, result="refused", path=str(source),
                error=exc.message, details="; ".join(map(str, exc.details)) or None)
            return False
        old = self.config
        for key in ("server", "storage"):
            if getattr(old, key) != getattr(loaded.config, key):
                log("config_reload", logging.WARNING, note=f"[{key}] changes need a restart")
        try:
            await self._sync_config(loaded)
        except RelayError as exc:
            log("config_reload", logging.ERROR, result="refused", error=exc.message)
            return False
        log("config_reload", result="applied", path=str(source), endpoints=len(self.endpoints))
        return True

    async def _watch_config(self, path: Path) -> None:
        from watchfiles import awatch

        target = path.resolve()
        async for changes in awatch(target.parent, debounce=200, step=50):
            if any(Path(p).resolve() == target for _, p in changes):
                await self.reload()

    # --- housekeeping ---------------------------------------------------------------

    async def _housekeeping(self) -> None:
        """Purge old history in small batches; return expired leases; re-check hints."""
        while True:
            await asyncio.sleep(_HOUSEKEEPING_EVERY)
            try:
                await self.housekeep()
            except RelayError as exc:
                log("housekeeping_failed", logging.ERROR, error=exc.message)

    async def housekeep(self) -> int:
        now = self.clock()
        purged = 0
        while True:
            n = await self.store.purge(now - self.config.storage.retention, _PURGE_BATCH)
            purged += n
            if n < _PURGE_BATCH:
                break
            await asyncio.sleep(0)  # let ingest in between batches
        reclaimed = await self.store.reclaim_expired(now)
        if purged or reclaimed:
            log("housekeeping", purged_events=purged, reclaimed=reclaimed)
        self.scheduler.rescan()
        return purged
