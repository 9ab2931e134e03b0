"""The storage contract: what the scheduler and the API need from a durable queue.

The Store speaks the domain, not SQL: SQLite (one process) and PostgreSQL (several
processes sharing one database) claim work differently. Methods take `now` (unix
seconds) from the caller, return frozen dataclasses and raise only `relay.errors` types.

Delivery states: pending -> delivering -> succeeded | pending (retry) | failed | held;
held -> pending when its endpoint accepts again; failed/succeeded/cancelled -> pending
(or held) on an operator's retry or recover; pending/held/delivering -> cancelled when
an operator cancels it or its endpoint is removed (an attempt in flight is still
recorded, the delivery stays cancelled).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal, Protocol, get_args

from relay.errors import Conflict, StorageError

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

State = Literal["pending", "delivering", "succeeded", "failed", "held", "cancelled"]
STATES: tuple[State, ...] = get_args(State)
# The state sets, defined once for both backends' SQL (as `sql_in`) and for the console's
# buttons. Unfinished: still to be sent (retention keeps their events, deleting their
# endpoint cancels them); an operator may stop them (cancel), or send a finished one again
# (retry, recover).
UNFINISHED: tuple[State, ...] = ("pending", "held", "delivering")
FINISHED: tuple[State, ...] = ("succeeded", "failed", "cancelled")
CANCELLABLE = UNFINISHED
# Where an ordered endpoint's head is (held ones wait behind it, in order); as
# `sql_in(IN_LINE)` this is the WHERE of the deliveries_unfinished partial index, which
# SQLite uses only for a query that repeats that term as written.
IN_LINE: tuple[State, ...] = ("pending", "delivering")


def sql_in(states: tuple[State, ...]) -> str:
    """The SQL list of `states`, `('pending', 'delivering')`, for `state IN ...` (states
    are fixed names, so written into the SQL rather than passed as parameters)."""
    return "(" + ", ".join(f"'{s}'" for s in states) + ")"
Source = Literal["config", "api"]  # where an endpoint is defined


def not_cancellable(delivery_id: int, state: str) -> Conflict:
    """Why a delivery in `state` (not CANCELLABLE) cannot be cancelled."""
    return Conflict(f"delivery dlv_{delivery_id} is {state} already; only unfinished "
                    f"deliveries ({', '.join(CANCELLABLE)}) can be cancelled")


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to store with its deliveries, all in one transaction."""

    id: str
    tenant: str
    type: str
    idem_key: str | None
    digest: str  # sha256 of (tenant, type, data): tells a true repeat from a reused key
    created_at: float
    payload: bytes  # the envelope, serialised once; every delivery sends these bytes
    deliveries: tuple[tuple[str, State], ...]  # (endpoint id, "pending" | "held")


@dataclass(frozen=True, slots=True)
class Ingested:
    id: str
    type: str
    created_at: float
    deliveries: int
    duplicate: bool


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery marked `delivering` under a lease, with what is needed to send it."""

    id: int
    event_id: str
    endpoint_id: str
    attempt: int  # this attempt's number, counted at claim time (1 = first)
    payload: bytes


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """One finished attempt and the delivery's next state, recorded together."""

    delivery_id: int
    endpoint_id: str
    attempt: int
    started_at: float
    duration_ms: float
    request_headers: dict[str, str]
    status: int | None
    response_headers: dict[str, str]
    response_body: bytes
    error: str | None
    state: State  # succeeded | pending | failed | held
    next_at: float | None  # for pending
    success: bool
    gone: bool = False  # 410: disable the endpoint


@dataclass(frozen=True, slots=True)
class ClockShift:
    """What a step of the wall clock moves, in one transaction (decided by
    relay.delivery.clocksteps.plan; the backends only run it)."""

    step: float  # seconds the wall clock stepped (negative: back)
    now: float  # the wall clock after the step
    due_after: float | None  # pending deliveries due later: next_at = max(next_at + step,
    # now); None: none move. Every endpoint's failing_since = min(failing_since + step, now).
    leases: tuple[int, ...]  # `delivering` rows this process holds: lease_until + step


@dataclass(frozen=True, slots=True)
class EndpointRow:
    id: str
    tenant: str
    source: Source
    name: str
    spec: dict[str, Any]
    secret: str
    prev_secret: str | None
    prev_secret_until: float | None
    is_active: bool
    is_paused: bool
    disable_reason: str | None
    created_at: float
    last_delivery_at: float | None
    last_delivery_status: int | None
    consecutive_failures: int
    failing_since: float | None


@dataclass(frozen=True, slots=True)
class ConfigEndpoint:
    """A config-file endpoint to sync into the store (secret None: keep or generate)."""

    id: str
    tenant: str
    spec: dict[str, Any]
    secret: str | None


@dataclass(frozen=True, slots=True)
class NewEndpoint:
    """An endpoint created through the API."""

    id: str
    tenant: str
    name: str
    spec: dict[str, Any]
    secret: str
    created_at: float


@dataclass(frozen=True, slots=True)
class EventRow:
    id: str
    tenant: str
    type: str
    created_at: float
    payload: bytes  # the envelope as sent
    deliveries: int  # delivery rows now, replays included


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    id: int
    event_id: str
    endpoint_id: str
    state: State
    attempts: int
    next_at: float
    created_at: float
    updated_at: float
    last_status: int | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class AttemptRow:
    delivery_id: int
    n: int
    started_at: float
    duration_ms: float | None
    request_headers: dict[str, str]
    status: int | None
    response_headers: dict[str, str]
    response_body: bytes
    error: str | None


@dataclass(frozen=True, slots=True)
class Notice:
    """A change relay reports about itself as an operational event (`relay.*`): what
    happened (`type`), to which endpoint, in its tenant, with the event's own fields."""

    type: str
    endpoint_id: str
    tenant: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Ops:
    """What `record` needs to emit operational events in its own transaction: the
    streak length reported as failing, and how notices become events (matched against
    the endpoints in memory: called on the store's writer, so it must only read)."""

    failing_after: int
    build: Callable[[list[Notice], float], list[NewEvent]]


@dataclass(frozen=True, slots=True)
class Recorded:
    """What recording outcomes changed beyond the deliveries themselves."""

    disabled: dict[str, str] = field(default_factory=dict)  # endpoint id -> reason
    notices: tuple[Notice, ...] = ()  # emitted as events in the same transaction
    due: frozenset[str] = frozenset()  # endpoints given pending deliveries of those events


@dataclass(frozen=True, slots=True)
class MinuteOutcomes:
    """Attempts that started in one minute, by outcome (the console's chart)."""

    minute: float  # unix seconds at the minute's start
    succeeded: int  # answered 2xx
    failed: int  # anything else: another status, a timeout, a refused connection


@dataclass(frozen=True, slots=True)
class FailedAttempt:
    """A recent attempt that did not succeed (the console's "recent errors")."""

    delivery_id: int
    endpoint_id: str
    tenant: str
    started_at: float
    status: int | None
    error: str | None


@dataclass(frozen=True, slots=True)
class NodeRow:
    """A relay process sharing the database (PostgreSQL), as its heartbeat left it."""

    id: str
    host: str
    pid: int
    version: str
    config_digest: str
    started_at: float
    seen_at: float
    alive: bool


@dataclass(frozen=True, slots=True)
class Watcher:
    """Who to wake when another process changes the shared database."""

    due: Callable[[str, float], None]  # an endpoint has work due at a time
    rescan: Callable[[], None]  # wake-ups may have been missed: look at every endpoint
    endpoints: Callable[[], None]  # endpoints changed: read them again
    config_digest: str  # this process's config-file endpoints, shown beside the others'
    # A step of this process's wall clock not yet taken in: its own leases may look expired.
    clock_stepped: Callable[[], bool] = lambda: False


@dataclass(frozen=True, slots=True)
class SessionRow:
    """A signed-in console or portal session; relay.sessions.decide says whether it is
    live at a time, and both backends' purges delete what it calls dead."""

    id: str  # the nonce of the session's signed cookie
    kind: str  # "o" operator, "p" portal
    subject: str  # the admin key's digest prefix, or the tenant id
    created_at: float
    last_seen_at: float  # recorded at most every sessions.touch_every(idle) seconds
    expires_at: float


class Row(Protocol):
    """A database row read by position (a tuple, sqlite3.Row, an asyncpg Record)."""

    def __getitem__(self, index: int, /) -> Any: ...


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
    async def next_due(self, endpoint_id: str) -> float | None: ...
    async def sync_config_endpoints(
        self, endpoints: list[ConfigEndpoint], now: float, new_secret: Callable[[], str]
    ) -> list[EndpointRow]: ...
    async def list_endpoints(
        self, tenant: str | None = None, *, after: str | None = None, limit: int = -1
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
