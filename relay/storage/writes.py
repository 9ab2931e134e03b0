"""The Store's writes that both backends queue alike.

Each is the backend's named operation of the same name (its sql.py), submitted to its
group commit (relay.storage.groupcommit) and answered after the commit; the rules they
apply are in relay.storage.rules and relay.storage.outcomes. A backend subclasses
`QueuedWrites`, names its sql module and says how it submits; what differs (claim,
record, recovery, purge) it writes itself.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection
from types import ModuleType
from typing import Any, ClassVar

from relay.errors import TooManyRequests
from relay.storage import idempotency
from relay.types import (
    ApiKeyRow,
    ClockShift,
    ConfigEndpoint,
    DeliveryRow,
    EndpointRow,
    EventTypeRow,
    Ingested,
    NewEndpoint,
    NewEvent,
    SessionRow,
    State,
    StoredAnswer,
    TenantRemoved,
    TenantRow,
)


class QueuedWrites(ABC):
    """The writes of the Store contract (relay.storage.base.Store) that both backends
    share, over the backend's `_queries` module and `_submit`."""

    _queries: ClassVar[ModuleType]  # the backend's named operations (sql.py)

    @abstractmethod
    async def _submit(self, fn: Any, arg: Any, *, durable: bool = False,
                      single: bool = False) -> Any:
        """Queue `fn(connection, [arg, ...])`; its result for `arg` after the commit
        (`durable`: flushed to disk first; `single`: one statement, merged with others)."""

    @abstractmethod
    def overloaded(self) -> bool:
        """Whether the write queue is too long to take more events (ingest answers 429)."""

    async def ingest(self, events: list[NewEvent]) -> list[Ingested]:
        """Store events and their deliveries atomically; repeats of an idempotency key
        answer the original (Conflict if the key came with a different event)."""
        if self.overloaded():
            raise TooManyRequests("relay is receiving events faster than it can store them")
        result: list[Ingested] = await self._submit(
            self._queries.ingest, events, durable=True, single=idempotency.keyless(events))
        return result

    async def renew(self, delivery_ids: list[int], lease_until: float) -> int:
        """Extend the leases of deliveries still being sent (a slow receiver)."""
        count: int = await self._submit(self._queries.renew, (delivery_ids, lease_until))
        return count

    async def shift_times(self, shift: ClockShift) -> int:
        """Move due times, leases and failure streaks across a step of this process's
        wall clock (relay.delivery.clocksteps); returns the pending deliveries moved. On
        PostgreSQL the rows are shared: docs/scaling.md."""
        count: int = await self._submit(self._queries.shift_times, shift, durable=True)
        return count

    async def unclaim(self, delivery_ids: list[int], now: float) -> int:
        """Give back claimed deliveries that were never sent (stop, pause): `pending`
        again, or `held` if their endpoint stopped accepting, the attempt uncounted."""
        count: int = await self._submit(self._queries.unclaim, (delivery_ids, now))
        return count

    async def set_accepting(self, endpoint_id: str, accepting: bool, now: float) -> int:
        """Hold an endpoint's pending deliveries, or release its held ones in order."""
        count: int = await self._submit(self._queries.set_accepting,
                                        (endpoint_id, accepting, now))
        return count

    # --- endpoints -------------------------------------------------------------------

    async def sync_config_endpoints(
        self, endpoints: list[ConfigEndpoint], now: float, new_secret: Callable[[], str]
    ) -> list[EndpointRow]:
        """Make the config endpoints in the store match the file: add, update, and mark
        removed ones deleted (their unfinished deliveries become cancelled)."""
        rows: list[EndpointRow] = await self._submit(
            self._queries.sync_config, (endpoints, now, new_secret), durable=True
        )
        return rows

    async def create_endpoint(
        self, endpoint: NewEndpoint, max_api_endpoints: int | None
    ) -> EndpointRow:
        """Add an API endpoint; Conflict if its id was ever used, TooManyRequests when
        its tenant already has `max_api_endpoints` of them (counted in the same
        transaction, so concurrent creations cannot overshoot)."""
        row: EndpointRow = await self._submit(
            self._queries.create_endpoint, (endpoint, max_api_endpoints), durable=True
        )
        return row

    async def update_endpoint(
        self, endpoint_id: str, changes: dict[str, Any], now: float
    ) -> EndpointRow:
        """Set endpoint columns (rules.UPDATABLE); NotFound if it does not exist (or was
        deleted)."""
        row: EndpointRow = await self._submit(
            self._queries.update_endpoint, (endpoint_id, changes, now), durable=True
        )
        return row

    async def rotate_secret(
        self, endpoint_id: str, secret: str, previous_until: float | None, now: float
    ) -> EndpointRow:
        """Make `secret` current; the old one keeps signing until `previous_until` (None:
        it stops at once; rules.rotation). Read and replaced in one transaction on the one
        writer (PostgreSQL: under the row's lock), so two concurrent rotations cannot both
        keep the same old secret."""
        row: EndpointRow = await self._submit(
            self._queries.rotate_secret, (endpoint_id, secret, previous_until, now),
            durable=True,
        )
        return row

    async def delete_endpoint(self, endpoint_id: str, now: float) -> int:
        """Remove an endpoint; its unfinished deliveries become cancelled (how many)."""
        count: int = await self._submit(self._queries.delete_endpoint, (endpoint_id, now),
                                        durable=True)
        return count

    # --- operators' changes to deliveries ------------------------------------------------

    async def retry_delivery(self, delivery_id: int, state: State, now: float) -> DeliveryRow:
        """A finished delivery goes out again now (`state` pending, or held while its
        endpoint does not accept); Conflict while it is still unfinished."""
        row: DeliveryRow = await self._submit(
            self._queries.retry_delivery, (delivery_id, state, now), durable=True
        )
        return row

    async def cancel_delivery(self, delivery_id: int, now: float) -> DeliveryRow:
        """An unfinished delivery (pending, held, delivering) becomes cancelled; an attempt
        in flight is still recorded, the delivery stays cancelled. Conflict once finished."""
        row: DeliveryRow = await self._submit(self._queries.cancel_delivery,
                                              (delivery_id, now), durable=True)
        return row

    async def recover_failed(self, endpoint_id: str, since: float, state: State,
                             now: float, until: float | None = None) -> int:
        """Failed deliveries of an endpoint last updated at or after `since` (and before
        `until`) go out again, all due now, so they are sent in creation order. Returns
        how many."""
        count: int = await self._submit(
            self._queries.recover_failed,
            (endpoint_id, since, math.inf if until is None else until, state, now),
            durable=True,
        )
        return count

    async def add_deliveries(
        self, event_id: str, deliveries: list[tuple[str, State]], now: float
    ) -> list[DeliveryRow]:
        """New deliveries of a stored event (a replay, so `manual`): (endpoint id,
        pending | held)."""
        rows: list[DeliveryRow] = await self._submit(
            self._queries.add_deliveries, (event_id, deliveries, now), durable=True
        )
        return rows

    async def secret_key(self, name: str, new: Callable[[], bytes]) -> bytes:
        """The key stored under `name`, made with `new()` and stored the first time;
        when processes race, the first stored wins and all get it."""
        key: bytes = await self._submit(self._queries.secret_key,
                                        (name, new(), time.time()), durable=True)
        return key

    # --- console and portal sessions (relay.sessions) -----------------------------------

    async def add_session(self, session: SessionRow) -> None:
        await self._submit(self._queries.add_session, (session,), durable=True)

    async def touch_session(self, session_id: str, now: float) -> None:
        """Record use (never backwards); losing one to a crash only ends it sooner."""
        await self._submit(self._queries.touch_session, (session_id, now))

    async def end_session(self, session_id: str) -> bool:
        ended: bool = await self._submit(self._queries.end_session, (session_id,),
                                         durable=True)
        return ended

    async def end_sessions(self, kind: str, keep: Collection[str]) -> int:
        """End every session of `kind` whose subject is not in `keep`."""
        count: int = await self._submit(self._queries.end_sessions, (kind, sorted(keep)),
                                        durable=True)
        return count

    async def purge_sessions(self, now: float, idle: float) -> int:
        count: int = await self._submit(self._queries.purge_sessions, (now, idle))
        return count

    # --- the directory: tenants and API keys (relay.storage.directory) -----------------

    async def create_tenant(self, tenant: TenantRow) -> TenantRow:
        """Store a tenant; Conflict when its id or uid is a stored tenant's id or uid."""
        row: TenantRow = await self._submit(self._queries.create_tenant, tenant, durable=True)
        return row

    async def update_tenant(self, tenant_id: str, changes: dict[str, Any],
                            now: float) -> TenantRow:
        """Set tenant columns; NotFound if there is none."""
        row: TenantRow = await self._submit(self._queries.update_tenant,
                                            (tenant_id, changes, now), durable=True)
        return row

    async def delete_tenant(self, tenant_id: str, now: float) -> TenantRemoved:
        """Delete a tenant, its keys, and its endpoints (their unfinished deliveries
        cancelled, as delete_endpoint does); NotFound if there is none."""
        removed: TenantRemoved = await self._submit(self._queries.delete_tenant,
                                                    (tenant_id, now), durable=True)
        return removed

    async def create_api_key(self, key: ApiKeyRow, tenant_in_file: bool) -> ApiKeyRow:
        """Store a key whose tenant is the file's or a stored one (read in the same
        transaction: a key cannot outlive its tenant deleted at the same moment)."""
        row: ApiKeyRow = await self._submit(self._queries.create_api_key,
                                            (key, tenant_in_file), durable=True)
        return row

    async def delete_api_key(self, key_id: str) -> ApiKeyRow:
        """Delete (revoke) a key; NotFound if there is none."""
        row: ApiKeyRow = await self._submit(self._queries.delete_api_key, key_id,
                                            durable=True)
        return row

    async def create_event_type(self, event_type: EventTypeRow,
                                unarchive: bool = False) -> EventTypeRow:
        """Store an event type; Conflict when the name is taken (but an archived one
        when `unarchive`: relay.storage.event_types.on_create)."""
        row: EventTypeRow = await self._submit(self._queries.create_event_type,
                                               (event_type, unarchive), durable=True)
        return row

    async def update_event_type(self, name: str, changes: dict[str, Any],
                                now: float) -> EventTypeRow:
        """Set event type columns; NotFound if there is none."""
        row: EventTypeRow = await self._submit(self._queries.update_event_type,
                                               (name, changes, now), durable=True)
        return row

    async def delete_event_type(self, name: str) -> EventTypeRow:
        """Delete (expunge) an event type; NotFound if there is none."""
        row: EventTypeRow = await self._submit(self._queries.delete_event_type, name,
                                               durable=True)
        return row

    # --- API requests by idempotency key (rules.answer_again) ---------------------------

    async def begin_request(self, owner: str, key: str, digest: str,
                            now: float) -> StoredAnswer | None:
        """None: the request is the caller's to answer (recorded as in flight); else the
        stored answer to give again; Conflict (raised) as rules.answer_again says. Not
        flushed: a crash forgets the key, and the retry runs the request again."""
        found: StoredAnswer | None = await self._submit(
            self._queries.begin_request, (owner, key, digest, now))
        return found

    async def end_request(self, owner: str, key: str, status: int | None,
                          body: bytes) -> None:
        await self._submit(self._queries.end_request, (owner, key, status, body))

    async def purge_requests(self, before: float) -> int:
        count: int = await self._submit(self._queries.purge_requests, before)
        return count
