"""The storage contract: what the scheduler and the API need from a durable queue.

The Store speaks the domain, not SQL: SQLite (one process) and PostgreSQL (several
processes sharing one database) claim work differently. Methods take `now` (unix
seconds) from the caller, return frozen dataclasses and raise only `relay.errors` types.

The plain types it speaks (states, rows, NewEvent, Claimed...) are in relay.types.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import dataclass
from importlib import resources
from typing import Any, Protocol

from relay.errors import StorageError
from relay.types import (
    AttemptResult,
    AttemptRow,
    Claimed,
    ClockShift,
    ConfigEndpoint,
    DeliveryRow,
    EndpointRow,
    EventRow,
    FailedAttempt,
    Ingested,
    MinuteOutcomes,
    NewEndpoint,
    NewEvent,
    NodeRow,
    Ops,
    Recorded,
    Row,
    SessionRow,
    State,
)

# The columns behind EndpointRow, DeliveryRow and SessionRow, in their fields' order: both backends
# select them so (the rows are built positionally).
ENDPOINT_COLS = (
    "id, tenant, source, name, spec, secret, prev_secret, prev_secret_until, is_active, "
    "is_paused, disable_reason, created_at, last_delivery_at, last_delivery_status, "
    "consecutive_failures, failing_since"
)
DELIVERY_COLS = (
    "id, event_id, endpoint_id, state, attempts, next_at, created_at, updated_at, "
    "last_status, last_error"
)
SESSION_COLS = "id, kind, subject, created_at, last_seen_at, expires_at"
ATTEMPT_COLS = ("delivery_id, n, started_at, duration_ms, request_headers, status, "
                "response_headers, response_body, error")
# The error of the attempt row a delivery caught `delivering` gets when it is sent again.
INTERRUPTED = "interrupted: relay stopped before the attempt finished"


def migrations(folder: str) -> list[tuple[int, str]]:
    """A backend's numbered migrations (`relay/storage/migrations/<folder>`, "" for
    SQLite's): (number, SQL), in order."""
    files = resources.files("relay.storage") / "migrations"
    if folder:
        files = files / folder
    found = []
    for entry in files.iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text(encoding="utf-8")))
    return sorted(found)


def check_schema(where: str, current: int, supported: int) -> None:
    """Refuse a database that a newer relay migrated: this one cannot know its schema."""
    if current > supported:
        raise StorageError(
            f"database {where} has schema version {current}, newer than this relay "
            f"supports ({supported}); run the newer relay or restore a backup"
        )


def sql_in(states: tuple[State, ...]) -> str:
    """The SQL list of `states`, `('pending', 'delivering')`, for `state IN ...` (states
    are fixed names, so written into the SQL rather than passed as parameters)."""
    return "(" + ", ".join(f"'{s}'" for s in states) + ")"


@dataclass(frozen=True, slots=True)
class Watcher:
    """Who to wake when another process changes the shared database."""

    due: Callable[[str, float], None]  # an endpoint has work due at a time
    rescan: Callable[[], None]  # wake-ups may have been missed: look at every endpoint
    endpoints: Callable[[], None]  # endpoints changed: read them again
    config_digest: str  # this process's config-file endpoints, shown beside the others'
    # A step of this process's wall clock not yet taken in: its own leases may look expired.
    clock_stepped: Callable[[], bool] = lambda: False


def endpoint_row(row: Row) -> EndpointRow:
    """An EndpointRow from the columns of ENDPOINT_COLS (SQLite's flags are 0/1)."""
    return EndpointRow(
        id=row[0], tenant=row[1], source=row[2], name=row[3], spec=json.loads(row[4]),
        secret=row[5], prev_secret=row[6], prev_secret_until=row[7], is_active=bool(row[8]),
        is_paused=bool(row[9]), disable_reason=row[10], created_at=row[11],
        last_delivery_at=row[12], last_delivery_status=row[13], consecutive_failures=row[14],
        failing_since=row[15],
    )


def attempt_row(row: Row) -> AttemptRow:
    """An AttemptRow from the columns of ATTEMPT_COLS (an interrupted attempt has no
    headers or body)."""
    return AttemptRow(row[0], row[1], row[2], row[3], json.loads(row[4] or "{}"), row[5],
                      json.loads(row[6] or "{}"), row[7] or b"", row[8])


Limits = dict[str, tuple[int, float | None]]  # endpoint -> (concurrency, rate_limit/s)


class Observer(Protocol):
    """Where a store reports the time its disk work takes (relay.metrics.Metrics). SQLite
    calls it from its writer and checkpointer threads."""

    def commit(self, kind: str, seconds: float) -> None: ...

    def checkpoint(self, mode: str, seconds: float) -> None: ...


class Store(Protocol):
    """The narrow interface every backend implements (see tests/integration/test_store.py)."""

    healthy: bool  # false while writes fail or the database does not answer (/readyz)
    space_low: bool  # under [storage] min_free_space on the database's filesystem (/readyz)

    @property
    def free_space(self) -> int | None: ...  # bytes free there (None: not ours to see)

    @property
    def path(self) -> object: ...  # where the data is, for logs: a file, a URL sans password
    async def open(self) -> None: ...
    async def close(self) -> None: ...
    def overloaded(self) -> bool: ...
    async def watch(self, watcher: Watcher) -> None: ...
    async def nodes(self, now: float) -> list[NodeRow]: ...
    async def ingest(self, events: list[NewEvent]) -> list[Ingested]: ...
    async def claim(
        self, wanted: dict[str, int], now: float, lease_until: float,
        limits: Limits | None = None,
        ordered: frozenset[str] = frozenset(),
        finished: Collection[int] = (),
    ) -> tuple[list[Claimed], dict[str, float | None]]: ...
    async def renew(self, delivery_ids: list[int], lease_until: float) -> int: ...
    async def record(
        self, results: list[AttemptResult], now: float, disable_after: float,
        ops: Ops | None = None,
    ) -> Recorded: ...
    async def recover_inflight(self, now: float) -> int: ...
    async def reclaim_expired(self, now: float) -> int: ...
    async def shift_times(self, shift: ClockShift) -> int: ...
    async def unclaim(self, delivery_ids: list[int], now: float) -> int: ...
    async def sync_config_endpoints(
        self, endpoints: list[ConfigEndpoint], now: float, new_secret: Callable[[], str]
    ) -> list[EndpointRow]: ...
    async def list_endpoints(
        self, tenant: str | None = None, *, after: str | None = None,
        limit: int | None = None,
    ) -> list[EndpointRow]: ...
    async def get_endpoint(self, endpoint_id: str) -> EndpointRow | None: ...
    async def create_endpoint(
        self, endpoint: NewEndpoint, max_api_endpoints: int | None
    ) -> EndpointRow: ...
    async def update_endpoint(
        self, endpoint_id: str, changes: dict[str, Any], now: float
    ) -> EndpointRow: ...
    async def rotate_secret(
        self, endpoint_id: str, secret: str, previous_until: float | None, now: float
    ) -> EndpointRow: ...
    async def delete_endpoint(self, endpoint_id: str, now: float) -> int: ...
    async def pending_counts(self, endpoint_ids: list[str]) -> dict[str, int]: ...
    async def blocked_counts(self, endpoint_ids: list[str]) -> dict[str, int]: ...
    async def set_accepting(self, endpoint_id: str, accepting: bool, now: float) -> int: ...
    async def purge(self, before: float, limit: int) -> int: ...
    async def counts(self) -> dict[str, int]: ...
    async def deliveries_of(self, event_id: str) -> list[DeliveryRow]: ...
    async def attempts_of(self, delivery_id: int) -> list[AttemptRow]: ...
    async def list_deliveries(
        self, endpoint_id: str, *, state: State | None = None, before: int | None = None,
        limit: int = 50,
    ) -> list[DeliveryRow]: ...
    async def get_delivery(self, delivery_id: int, tenant: str) -> DeliveryRow | None: ...
    async def retry_delivery(self, delivery_id: int, state: State, now: float) -> DeliveryRow: ...
    async def cancel_delivery(self, delivery_id: int, now: float) -> DeliveryRow: ...
    async def recover_failed(
        self, endpoint_id: str, since: float, state: State, now: float
    ) -> int: ...
    async def list_events(
        self, tenant: str, *, type: str | None = None, before: str | None = None,
        since: float | None = None, until: float | None = None, limit: int = 50,
    ) -> list[EventRow]: ...
    async def get_event(self, event_id: str, tenant: str) -> EventRow | None: ...
    async def add_deliveries(
        self, event_id: str, deliveries: list[tuple[str, State]], now: float
    ) -> list[DeliveryRow]: ...
    async def outcomes_per_minute(self, since: float) -> list[MinuteOutcomes]: ...
    async def recent_failures(self, since: float, limit: int) -> list[FailedAttempt]: ...
    async def secret_key(self, name: str, new: Callable[[], bytes]) -> bytes: ...
    async def add_session(self, session: SessionRow) -> None: ...
    async def get_session(self, session_id: str) -> SessionRow | None: ...
    async def touch_session(self, session_id: str, now: float) -> None: ...
    async def end_session(self, session_id: str) -> bool: ...
    async def end_sessions(self, kind: str, keep: Collection[str]) -> int: ...
    async def purge_sessions(self, now: float, idle: float) -> int: ...
