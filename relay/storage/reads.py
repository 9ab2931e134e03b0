"""The Store's reads that both backends answer with the same SQL.

Written once, with `?` placeholders: a backend runs them through its `_query`, in its own
dialect (PostgreSQL numbers them $1, $2, ...). A backend subclasses `SharedReads` beside
`QueuedWrites` and writes itself only the reads whose SQL differs (SQLite's bisections
and INDEXED BY, PostgreSQL's FILTER), naming the index hint list_events takes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

from relay.storage import rules
from relay.storage.base import (
    ATTEMPT_COLS,
    DELIVERY_COLS,
    ENDPOINT_COLS,
    LISTED_ATTEMPT_COLS,
    SESSION_COLS,
    attempt_row,
    endpoint_row,
    event_row,
    listed_attempt,
    sql_in,
)
from relay.storage.directory import API_KEY_COLS, TENANT_COLS, api_key_row, tenant_row
from relay.storage.event_types import EVENT_TYPE_COLS, event_type_row
from relay.types import (
    IN_LINE,
    UNFINISHED,
    AttemptRow,
    DeliveryRow,
    DirectoryRows,
    EndpointRow,
    EventRow,
    ListedAttempt,
    SessionRow,
    State,
)

EVENT_SELECT = (
    "SELECT id, tenant, type, created_at, payload, "
    "(SELECT count(*) FROM deliveries d WHERE d.event_id = events.id), idem_key, channels "
    "FROM events"
)
_LISTED_ATTEMPTS = (f"SELECT {LISTED_ATTEMPT_COLS} FROM deliveries d "
                    "JOIN attempts a ON a.delivery_id = d.id")
# An ordered endpoint's head; its WHERE repeats the deliveries_unfinished index's term.
_HEAD = ("SELECT id, state, attempts FROM deliveries WHERE endpoint_id = ? "
         f"AND state IN {sql_in(IN_LINE)} ORDER BY id LIMIT 1")
_BEHIND = ("SELECT count(*) FROM deliveries WHERE endpoint_id = ? AND id > ? "
           f"AND state IN {sql_in(UNFINISHED)}")
_DELIVERY_OF_TENANT = (
    "SELECT " + ", ".join(f"d.{c}" for c in DELIVERY_COLS.split(", "))
    + " FROM deliveries d JOIN events e ON e.id = d.event_id WHERE d.id = ? AND e.tenant = ?"
)


def where(conditions: Sequence[rules.Condition], *always: str) -> tuple[str, list[Any]]:
    """The AND of the `always` terms and of the conditions whose value is given (not
    None), and those values, in order: a list's optional filters."""
    used = [(sql, value) for sql, value in conditions if value is not None]
    return (" AND ".join([*always, *(sql for sql, _ in used)]),
            [value for _, value in used])


class SharedReads(ABC):
    """The reads of the Store contract (relay.storage.base) both backends share."""

    # What list_events puts after `FROM events` when the page is bounded in time.
    _TIMED_EVENTS_INDEX: ClassVar[str] = ""

    @abstractmethod
    async def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """The rows of `sql`, written with `?` placeholders, for `params`; a database's
        failure as StorageError."""

    async def counts(self) -> dict[str, int]:
        rows = await self._query("SELECT state, count(*) FROM deliveries GROUP BY state")
        return {state: n for state, n in rows}

    async def list_endpoints(
        self, tenant: str | None = None, *, after: str | None = None,
        limit: int | None = None,
    ) -> list[EndpointRow]:
        """Live endpoints in creation order (of `tenant`, after the endpoint `after`, at
        most `limit`; None: all)."""
        conditions, params = where(rules.endpoint_page(tenant, after), "deleted_at IS NULL")
        sql = f"SELECT {ENDPOINT_COLS} FROM endpoints WHERE {conditions} ORDER BY created_at, id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [endpoint_row(row) for row in await self._query(sql, params)]

    async def get_endpoint(self, endpoint_id: str) -> EndpointRow | None:
        rows = await self._query(
            f"SELECT {ENDPOINT_COLS} FROM endpoints WHERE id = ? AND deleted_at IS NULL",
            (endpoint_id,))
        return endpoint_row(rows[0]) if rows else None

    async def find_endpoint(self, tenant: str, uid: str) -> EndpointRow | None:
        rows = await self._query(
            f"SELECT {ENDPOINT_COLS} FROM endpoints WHERE tenant = ? AND uid = ? "
            "AND deleted_at IS NULL", (tenant, uid))
        return endpoint_row(rows[0]) if rows else None

    async def blocked_counts(self, endpoint_ids: list[str]) -> dict[str, int]:
        """Per ordered endpoint: the deliveries waiting behind a head that has failed (it
        waits for a retry or is being retried, rules.blocks); 0 while the head is on its
        first attempt, or there is none."""
        counts = dict.fromkeys(endpoint_ids, 0)
        for endpoint_id in endpoint_ids:
            head = await self._query(_HEAD, (endpoint_id,))
            if not head or not rules.blocks(head[0][1], head[0][2]):
                continue
            [(behind,)] = await self._query(_BEHIND, (endpoint_id, head[0][0]))
            counts[endpoint_id] = int(behind)
        return counts

    async def deliveries_of(self, event_id: str) -> list[DeliveryRow]:
        rows = await self._query(
            f"SELECT {DELIVERY_COLS} FROM deliveries WHERE event_id = ? ORDER BY id",
            (event_id,))
        return [DeliveryRow(*row) for row in rows]

    async def list_deliveries(
        self, endpoint_id: str, *, state: State | None = None, before: int | None = None,
        limit: int = 50,
    ) -> list[DeliveryRow]:
        """An endpoint's deliveries (in `state`), newest first, below the id `before`."""
        conditions, params = where(rules.delivery_page(endpoint_id, state, before))
        rows = await self._query(
            f"SELECT {DELIVERY_COLS} FROM deliveries WHERE {conditions} "
            f"ORDER BY id DESC LIMIT {int(limit)}", params)
        return [DeliveryRow(*row) for row in rows]

    async def get_delivery(self, delivery_id: int, tenant: str) -> DeliveryRow | None:
        """A delivery of one of `tenant`'s events (None for another tenant's)."""
        rows = await self._query(_DELIVERY_OF_TENANT, (delivery_id, tenant))
        return DeliveryRow(*rows[0]) if rows else None

    async def attempts_of(self, delivery_id: int) -> list[AttemptRow]:
        rows = await self._query(
            f"SELECT {ATTEMPT_COLS} FROM attempts WHERE delivery_id = ? ORDER BY id",
            (delivery_id,))
        return [attempt_row(r) for r in rows]

    async def list_attempts(
        self, *, endpoint_id: str | None = None, event_id: str | None = None,
        before: int | None = None, limit: int = 50,
    ) -> list[ListedAttempt]:
        """Attempts of an endpoint's deliveries or an event's (rules.attempt_page)."""
        conditions, params = where(rules.attempt_page(endpoint_id, event_id, before))
        rows = await self._query(f"{_LISTED_ATTEMPTS} WHERE {conditions} "
                                 f"ORDER BY d.id DESC, a.id DESC LIMIT {int(limit)}", params)
        return [listed_attempt(row) for row in rows]

    async def get_attempt(self, attempt_id: int) -> ListedAttempt | None:
        rows = await self._query(f"{_LISTED_ATTEMPTS} WHERE a.id = ?", (attempt_id,))
        return listed_attempt(rows[0]) if rows else None

    async def list_events(
        self, tenant: str, *, type: str | None = None, before: str | None = None,
        since: float | None = None, until: float | None = None, limit: int = 50,
    ) -> list[EventRow]:
        """A page of a tenant's events as rules.event_page says: newest first, after the
        event `before`; with `since` / `until`, those accepted in [since, until)."""
        page = rules.event_page(tenant, type, before, since, until)
        conditions, params = where(page.conditions)
        index = self._TIMED_EVENTS_INDEX if page.timed else ""
        rows = await self._query(
            f"{EVENT_SELECT}{index} WHERE {conditions} ORDER BY {page.order} "
            f"LIMIT {int(limit)}", params)
        return [event_row(row) for row in rows]

    async def get_event(self, event_id: str, tenant: str) -> EventRow | None:
        rows = await self._query(f"{EVENT_SELECT} WHERE id = ? AND tenant = ?",
                                 (event_id, tenant))
        return event_row(rows[0]) if rows else None

    async def event_by_key(self, tenant: str, idem_key: str) -> EventRow | None:
        rows = await self._query(f"{EVENT_SELECT} WHERE tenant = ? AND idem_key = ?",
                                 (tenant, idem_key))
        return event_row(rows[0]) if rows else None

    async def get_session(self, session_id: str) -> SessionRow | None:
        rows = await self._query(f"SELECT {SESSION_COLS} FROM sessions WHERE id = ?",
                                 (session_id,))
        return SessionRow(*rows[0]) if rows else None

    async def directory(self) -> DirectoryRows:
        """Every stored tenant, key and event type, with the version read first: a write committed
        between the reads moves the version past it, so the next look reads again."""
        [(version,)] = await self._query("SELECT version FROM directory_changes")
        tenants = await self._query(f"SELECT {TENANT_COLS} FROM tenants ORDER BY created_at, id")
        keys = await self._query(f"SELECT {API_KEY_COLS} FROM api_keys ORDER BY created_at, id")
        types = await self._query(f"SELECT {EVENT_TYPE_COLS} FROM event_types "
                                  "ORDER BY created_at, name")
        return DirectoryRows(int(version), tuple(tenant_row(r) for r in tenants),
                             tuple(api_key_row(r) for r in keys),
                             tuple(event_type_row(r) for r in types))
