"""`Relay`: config, store, scheduler and sender in one lifespan.

`Relay` owns the parts and the operations that span them: ingest (match, store, wake
the scheduler), operational events, config reload (`reload.py`), the management API's
changes (endpoints, retries, replays, test sends), background housekeeping
(`housekeeping.py`). The HTTP layer (relay.api) calls into it; it installs no signal
handlers (relay.process does).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from relay import config as cfgmod
from relay import logs, sessions
from relay.delivery import operational
from relay.delivery.attempt import build_request
from relay.delivery.endpoints import Endpoint, config_endpoints, resolve
from relay.delivery.headers import USER_AGENT
from relay.delivery.scheduler import Scheduler
from relay.delivery.sender import Outcome, Sender
from relay.delivery.signing import generate_secret
from relay.directory import Directory
from relay.errors import Conflict, NotFound, RelayError, Unavailable
from relay.ids import delivery_ref, event_id, ulid
from relay.logs import log
from relay.metrics import Metrics
from relay.runtime import housekeeping, reload
from relay.runtime.directory import Keeper
from relay.runtime.events import EventIn, envelope, from_notices, ingested, matching
from relay.storage import create_store
from relay.storage.base import Watcher
from relay.types import (
    DeliveryRow,
    EndpointRow,
    EndpointSpec,
    EventRow,
    Ingested,
    NewEndpoint,
    NewEvent,
    Notice,
    Reporting,
)

SHUTDOWN_GRACE = 5.0  # seconds in-flight attempts may finish at shutdown


class Relay:
    def __init__(
        self, loaded: cfgmod.Loaded, *, clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic, watch: bool = False,
    ) -> None:
        """`clock` is the wall clock (stored and shown times), `monotonic` the clock the
        scheduler compares it with to notice a step (docs/architecture.md); tests inject
        both."""
        self.loaded = loaded
        self.clock = clock
        self._watch = watch
        self.metrics = Metrics()
        self.store = create_store(loaded.config.storage, observer=self.metrics, clock=clock,
                                  monotonic=monotonic)
        self.sender = Sender(user_agent=USER_AGENT,
                             max_connections=loaded.config.delivery.concurrency)
        self.scheduler = Scheduler(
            self.store, self.sender, self.metrics,
            concurrency=loaded.config.delivery.concurrency,
            disable_after=lambda: self.config.delivery.disable_after,
            on_disabled=self._endpoints_disabled, clock=clock, monotonic=monotonic,
            reporting=lambda: Reporting(self.config.operator.failing_after,
                                        self._operational_events),
        )
        self.endpoints: dict[str, Endpoint] = {}
        self.keeper = Keeper(self.store, loaded, clock, on_change=self._end_sessions,
                             on_endpoints=self.refresh_endpoints)
        self.started = False
        self.stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        self._refresh_lock = asyncio.Lock()
        self._secret_keys: dict[str, bytes] = {}

    @property
    def config(self) -> cfgmod.Config:
        return self.loaded.config

    @property
    def directory(self) -> Directory:
        """The tenants and API keys, the file's and data's: what requests read."""
        return self.keeper.current

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
        await self.store.watch(Watcher(  # other processes' changes (a shared PostgreSQL)
            self.scheduler.notify, self.scheduler.rescan, lambda: self._endpoints_disabled({}),
            config_digest=self._config_digest(), directory=self.keeper.changed,
            clock_stepped=self.scheduler.clock_stepped,
        ))
        # The methods are looked up at each round, so a test can replace them.
        self._tasks.append(asyncio.create_task(
            housekeeping.every_minute(lambda: self.housekeep()), name="relay-housekeeping"))
        if self._watch and self.loaded.source is not None:
            self._tasks.append(asyncio.create_task(
                reload.watch(self.loaded.source, lambda: self.reload()),
                name="relay-config-watch"))
        self.started = True
        log("started", listen=self.config.server.listen,
            console=f"{self.config.server.base_url}/ui/", database=str(self.store.path),
            endpoints=len(self.endpoints), recovered=recovered or None)

    def _config_digest(self) -> str:
        """The config file's endpoints, secrets left out: processes sharing a database
        should agree on them (relay status compares)."""
        stored = [(e.id, e.tenant, e.spec.to_dict()) for e in config_endpoints(self.loaded)]
        return hashlib.sha256(json.dumps(stored, sort_keys=True).encode()).hexdigest()[:16]

    async def stop(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Refuse new events, let in-flight attempts finish (up to `grace`), close."""
        self.stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception as exc:  # a bug in a background task: still close the store
                log("task_failed", logging.ERROR, task=task.get_name(), error=repr(exc))
        if self.started:
            await self.scheduler.stop(grace)
            await self.sender.close()
        await self.store.close()
        self.started = False
        log("stopped")
        logs.flush()

    # --- ingest ---------------------------------------------------------------------

    def match(self, tenant: str, envelope: dict[str, Any],
              channels: tuple[str, ...] | None = None) -> list[Endpoint]:
        return matching(self.endpoints.values(), tenant, envelope, channels)

    async def ingest(self, events: list[EventIn]) -> list[Ingested]:
        """Store events with one delivery per matching endpoint, all or nothing; answer
        after the commit. Repeated idempotency keys answer the original event."""
        if self.stopping or not self.started:
            raise Unavailable()
        now = self.clock()
        new: list[NewEvent] = []
        due: set[str] = set()
        for ev in events:
            event, targets = ingested(ev, now, self.endpoints.values())
            new.append(event)
            due.update(t.id for t in targets if t.accepting)
        results = await self.store.ingest(new)
        fresh = sum(1 for r in results if not r.duplicate)
        if fresh:
            self.metrics.events.inc(fresh)
            for endpoint_id in due:
                self.scheduler.notify(endpoint_id, now)
        return results

    # --- operational events (relay.*) ----------------------------------------------------

    def _operational_events(self, notices: list[Notice], now: float,
                    about: EndpointRow | None = None) -> list[NewEvent]:
        """`events.from_notices` over the endpoints in memory now (also on the store's
        writer thread: Store.record)."""
        return from_notices(notices, now, self.endpoints, about)

    async def _emit(self, notice: Notice, about: EndpointRow | None = None) -> None:
        """Store one operational event about an API change, after the change's commit.
        A crash between the two commits loses this event (the change itself stands);
        docs/architecture.md says why that window is accepted here."""
        now = self.clock()
        new = self._operational_events([notice], now, about)
        if not new:
            return
        await self.store.ingest(new)
        for endpoint_id, state in new[0].deliveries:
            if state == "pending":
                self.scheduler.notify(endpoint_id, now)

    # --- config and endpoints -------------------------------------------------------------

    async def _sync_config(self, loaded: cfgmod.Loaded) -> None:
        directory = await self.keeper.prepare(loaded)  # a file clashing with data: refused
        now = self.clock()
        await self.store.sync_config_endpoints(
            config_endpoints(loaded), now, generate_secret,
        )
        self.loaded = loaded
        await self.keeper.install(directory, loaded)
        await self.refresh_endpoints()
        await self._end_sessions()

    async def _end_sessions(self) -> None:
        """End the console and portal sessions the directory no longer grants (an admin
        key removed or revoked, a tenant disabled or removed): their rows go, so every
        process sharing the database refuses them at their next request, whatever its
        own config says. At start too, for an edit made while relay was stopped."""
        for kind, keep in sessions.subjects(self.directory).items():
            ended = await self.store.end_sessions(kind, keep)
            if ended:
                log("sessions_ended", kind="operator" if kind == "o" else "portal",
                    sessions=ended, reason="no longer granted")

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

    # --- the management API's operations ---------------------------------------------

    async def create_endpoint(self, tenant: str, name: str, spec: EndpointSpec,
                              max_api_endpoints: int | None, *, secret: str | None = None,
                              uid: str | None = None,
                              metadata: dict[str, str] | None = None) -> EndpointRow:
        """A new API endpoint with `secret` (None: a generated one), live for deliveries on
        return."""
        now = self.clock()
        row = await self.store.create_endpoint(
            NewEndpoint("ep_" + ulid(now), tenant, name, spec, secret or generate_secret(),
                        now, uid, metadata or {}),
            max_api_endpoints,
        )
        await self.refresh_endpoints()
        log("endpoint_created", endpoint=row.id, tenant=tenant)
        await self._emit(Notice(operational.CREATED, row.id, row.tenant, {}))
        return row

    async def change_endpoint(self, endpoint_id: str, changes: dict[str, Any]) -> EndpointRow:
        """Apply changes; pausing holds its deliveries, resuming or re-enabling releases
        the held ones in order (refresh_endpoints). Reported as relay.endpoint.updated
        (the fields that changed), and relay.endpoint.disabled when it disabled it."""
        old = await self.store.get_endpoint(endpoint_id)
        row = await self.store.update_endpoint(endpoint_id, changes, self.clock())
        await self.refresh_endpoints()
        log("endpoint_changed", endpoint=endpoint_id, fields=",".join(sorted(changes)) or None)
        if old is not None:
            before, after = old.spec.to_dict(), row.spec.to_dict()
            spec = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
            changed = sorted(spec | {k for k in ("name", "is_active", "is_paused")
                                     if getattr(old, k) != getattr(row, k)})
            if changed:
                await self._emit(Notice(operational.UPDATED, row.id, row.tenant,
                                        {"changed": changed}))
            if old.is_active and not row.is_active:
                await self._emit(Notice(operational.DISABLED, row.id, row.tenant, {
                    "reason": operational.API, "detail": row.disable_reason}))
        return row

    async def rotate_secret(self, endpoint_id: str, grace: float,
                            secret: str | None = None) -> EndpointRow:
        """A new secret now (`secret`, or a generated one); the old one also signs for
        `grace` seconds."""
        now = self.clock()
        row = await self.store.rotate_secret(
            endpoint_id, secret or generate_secret(), now + grace if grace > 0 else None, now
        )
        await self.refresh_endpoints()
        log("secret_rotated", endpoint=endpoint_id, grace=grace or None)
        return row

    async def delete_endpoint(self, endpoint_id: str) -> int:
        row = await self.store.get_endpoint(endpoint_id)
        cancelled = await self.store.delete_endpoint(endpoint_id, self.clock())
        await self.refresh_endpoints()
        log("endpoint_deleted", endpoint=endpoint_id, cancelled=cancelled or None)
        if row is not None:
            await self._emit(Notice(operational.DELETED, row.id, row.tenant,
                                    {"cancelled": cancelled}), about=row)
        return cancelled

    def _live(self, endpoint_id: str) -> Endpoint:
        endpoint = self.endpoints.get(endpoint_id)
        if endpoint is None:
            raise Conflict(f"webhook {endpoint_id!r} was deleted; nothing can be sent to it")
        return endpoint

    async def retry_delivery(self, delivery: DeliveryRow) -> DeliveryRow:
        """Send a finished delivery again, due now (held while its endpoint is paused)."""
        endpoint = self._live(delivery.endpoint_id)
        now = self.clock()
        row = await self.store.retry_delivery(
            delivery.id, endpoint.new_state, now
        )
        self.scheduler.notify(endpoint.id, now)
        return row

    async def cancel_delivery(self, delivery: DeliveryRow) -> DeliveryRow:
        """Stop an unfinished delivery (Conflict once finished). Behind an ordered
        endpoint's head, the next delivery goes: the scheduler looks for the new head."""
        now = self.clock()
        row = await self.store.cancel_delivery(delivery.id, now)
        self.scheduler.notify(row.endpoint_id, now)
        log("delivery_cancelled", delivery=delivery_ref(row.id), endpoint=row.endpoint_id)
        return row

    async def recover(self, endpoint_id: str, since: float, until: float | None = None) -> int:
        """Send again, in order, the endpoint's deliveries that failed since `since` (and
        before `until`)."""
        endpoint = self._live(endpoint_id)
        now = self.clock()
        count = await self.store.recover_failed(
            endpoint_id, since, endpoint.new_state, now, until
        )
        self.scheduler.notify(endpoint_id, now)
        log("recovered", endpoint=endpoint_id, deliveries=count)
        return count

    async def replay(self, event: EventRow, endpoint_ids: list[str] | None) -> list[DeliveryRow]:
        """New deliveries of a stored event (same id, so same webhook-id): to the given
        endpoints, else to every endpoint matching it now."""
        if endpoint_ids is None:
            targets = self.match(event.tenant, json.loads(event.payload), event.channels)
        else:
            targets = [self._live(eid) for eid in endpoint_ids]
        now = self.clock()
        rows = await self.store.add_deliveries(
            event.id, [(t.id, t.new_state) for t in targets], now
        )
        for target in targets:
            self.scheduler.notify(target.id, now)
        log("replayed", event=event.id, deliveries=len(rows))
        return rows

    async def test_send(self, endpoint_id: str, event_type: str,
                        data: dict[str, Any]) -> tuple[dict[str, Any], Outcome]:
        """Send one event to an endpoint now, signed as deliveries are, outside the queue
        (nothing is stored); paused or disabled endpoints are reached too."""
        endpoint = self.endpoints.get(endpoint_id)
        if endpoint is None:
            raise NotFound(f"no webhook {endpoint_id!r}")
        now = self.clock()
        env, payload = envelope(event_id(now), event_type, endpoint.tenant, data, now)
        body, headers = build_request(endpoint, env["id"], payload, now)
        outcome = await self.sender.send(
            endpoint.url, headers, body, timeout=endpoint.timeout,
            allow_private=endpoint.allow_private, allow_http=endpoint.allow_http,
        )
        return env, outcome

    async def secret_key(self, name: str, new: Callable[[], bytes]) -> bytes:
        """A key relay keeps for itself (Store.secret_key), read once per process."""
        key = self._secret_keys.get(name)
        if key is None:
            key = self._secret_keys[name] = await self.store.secret_key(name, new)
        return key

    def _endpoints_disabled(self, disabled: dict[str, str]) -> None:
        task = asyncio.create_task(self.refresh_endpoints())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def reload(self) -> bool:
        """Re-read the config file (`reload.reread`) and apply it; an invalid file is
        logged and the running config stays."""
        source = self.loaded.source
        if source is None:
            return False
        loaded = reload.reread(source, self.config)
        if loaded is None:
            return False
        try:
            await self._sync_config(loaded)
        except RelayError as exc:
            log("config_reload", logging.ERROR, result="refused", error=exc.message)
            return False
        log("config_reload", result="applied", path=str(source), endpoints=len(self.endpoints))
        return True

    # --- housekeeping ---------------------------------------------------------------

    async def housekeep(self) -> int:
        """One round of housekeeping (housekeeping.py), run every minute; for tests too."""
        return await housekeeping.housekeep(self.store, self.scheduler, self.config,
                                            self.clock())
