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
    ApiKeyRow,
    AttemptResult,
    AttemptRow,
    Claimed,
    ClockShift,
    ConfigEndpoint,
    DeliveryRow,
    DirectoryRows,
    EndpointRow,
    EndpointSpec,
    EventRow,
    EventTypeRow,
    FailedAttempt,
    Ingested,
    ListedAttempt,
    MinuteOutcomes,
    NewEndpoint,
    NewEvent,
    NodeRow,
    Recorded,
    Reporting,
    Row,
    SessionRow,
    State,
    StoredAnswer,
    TenantRemoved,
    TenantRow,
)

# The columns behind EndpointRow, DeliveryRow and SessionRow, in their fields' order: both backends
# select them so (the rows are built positionally).
ENDPOINT_COLS = (
    "id, tenant, source, name, spec, secret, prev_secret, prev_secret_until, is_active, "
    "is_paused, disable_reason, created_at, last_delivery_at, last_delivery_status, "
    "consecutive_failures, failing_since, updated_at, uid, metadata"
)
DELIVERY_COLS = (
    "id, event_id, endpoint_id, state, attempts, next_at, created_at, updated_at, "
    "last_status, last_error"
)
SESSION_COLS = "id, kind, subject, created_at, last_seen_at, expires_at"
ATTEMPT_COLS = ("delivery_id, n, started_at, duration_ms, request_headers, status, "
                "response_headers, response_body, error")
# An attempt with its delivery's event, endpoint and origin (ListedAttempt), from
# `attempts a JOIN deliveries d`.
LISTED_ATTEMPT_COLS = ("a.id, a.delivery_id, d.event_id, d.endpoint_id, d.manual, a.n, "
                       "a.started_at, a.duration_ms, a.status, a.response_body, a.error")
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
    directory: Callable[[], None] = lambda: None  # tenants or keys changed: read them again
    # A step of this process's wall clock not yet taken in: its own leases may look expired.
    clock_stepped: Callable[[], bool] = lambda: False


def endpoint_row(row: Row) -> EndpointRow:
    """An EndpointRow from the columns of ENDPOINT_COLS (SQLite's flags are 0/1)."""
    return EndpointRow(
        id=row[0], tenant=row[1], source=row[2], name=row[3], spec=EndpointSpec.from_json(row[4]),
        secret=row[5], prev_secret=row[6], prev_secret_until=row[7], is_active=bool(row[8]),
        is_paused=bool(row[9]), disable_reason=row[10], created_at=row[11],
        last_delivery_at=row[12], last_delivery_status=row[13], consecutive_failures=row[14],
        failing_since=row[15], updated_at=row[16], uid=row[17],
        metadata=json.loads(row[18]) if row[18] else {},
    )


def event_row(row: Row) -> EventRow:
    """An EventRow from the columns relay.storage.reads.EVENT_SELECT reads."""
    return EventRow(row[0], row[1], row[2], row[3], row[4], row[5], row[6],
                    None if row[7] is None else tuple(json.loads(row[7])))


def listed_attempt(row: Row) -> ListedAttempt:
    """A ListedAttempt from the columns of LISTED_ATTEMPT_COLS."""
    return ListedAttempt(row[0], row[1], row[2], row[3], bool(row[4]), row[5], row[6], row[7],
                         row[8], bytes(row[9] or b""), row[10])


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


class Lifecycle(Protocol):
    """The store as a running part (relay.runtime, the CLI, /readyz): opened once, closed
    once, watched for other processes' changes. SQLite is the only user of its file (a
    lock); PostgreSQL is shared by every process that names the same database."""

    healthy: bool  # false while writes fail or the database does not answer (/readyz)
    space_low: bool  # under [storage] min_free_space on the database's filesystem (/readyz)

    @property
    def free_space(self) -> int | None: ...  # bytes free there (None: not ours to see)

    @property
    def path(self) -> object: ...  # where the data is, for logs: a file, a URL sans password

    async def open(self) -> None:
        """Connect (SQLite: take the lock), migrate, start the writer; StorageError saying
        what to do when it cannot."""

    async def close(self) -> None:
        """Finish queued writes, then close; safe to call twice, even at once."""

    async def watch(self, watcher: Watcher) -> None:
        """Wake `watcher` on work and endpoint changes other processes make (SQLite: none
        can, so nothing to watch)."""

    async def nodes(self, now: float) -> list[NodeRow]:
        """The processes sharing the database, most recently seen first (SQLite: none)."""


class Queue(Protocol):
    """The delivery queue's leases (the scheduler's role, plus the recovery relay.runtime runs
    at start and each housekeeping round). A claimed delivery is `delivering` under a lease
    until its outcome is recorded, it is given back, or the lease runs out."""

    async def claim(
        self, wanted: dict[str, int], now: float, lease_until: float,
        limits: Limits | None = None,
        ordered: frozenset[str] = frozenset(),
        finished: Collection[int] = (),
    ) -> tuple[list[Claimed], dict[str, float | None]]:
        """Lease up to `wanted[endpoint]` due deliveries per endpoint, oldest first, the
        attempt counted; an `ordered` endpoint gives only its due head, and nothing while
        one of its requests is out. Also returns, per endpoint that ran out of due work,
        when its next is due (None: nothing pending). `limits` (concurrency, rate) hold
        across processes on PostgreSQL, where `finished` (sent, outcome not yet recorded)
        no longer counts; SQLite's one scheduler keeps its limits itself."""

    async def renew(self, delivery_ids: list[int], lease_until: float) -> int:
        """Extend the leases of deliveries still being sent (a slow receiver)."""

    async def record(
        self, results: list[AttemptResult], now: float, disable_after: float,
        reporting: Reporting | None = None,
    ) -> Recorded:
        """Store attempts and the deliveries' next states, fold endpoint health, disable
        endpoints that answered 410 or failed for `disable_after`; with `reporting`, the
        operational events this causes go in the same transaction."""

    async def unclaim(self, delivery_ids: list[int], now: float) -> int:
        """Give back claimed deliveries never sent (stop, pause): `pending` again, or
        `held` if their endpoint stopped accepting, the attempt uncounted."""

    async def reclaim_expired(self, now: float) -> int:
        """Deliveries whose leases ran out without an outcome go back to pending, due now,
        each with an attempt saying it was interrupted (INTERRUPTED)."""

    async def recover_inflight(self, now: float) -> int:
        """At start: SQLite puts every `delivering` row back to pending (its sender is
        dead: the lock); PostgreSQL nothing, others may be sending them (reclaim_expired
        returns them once their leases run out)."""

    async def shift_times(self, shift: ClockShift) -> int:
        """Move due times, leases and failure streaks across a step of this process's
        wall clock (relay.delivery.clocksteps); returns the pending deliveries moved."""


class Deliveries(Protocol):
    """Changes to events and deliveries from outside the scheduler (ingest, the API's
    replay, retry, cancel and recover, retention). Refusals raise relay.errors types with
    the same messages on both backends."""

    async def ingest(self, events: list[NewEvent]) -> list[Ingested]:
        """Store events and their deliveries atomically; a repeated idempotency key answers
        the original (Conflict if it came with a different event)."""

    async def add_deliveries(
        self, event_id: str, deliveries: list[tuple[str, State]], now: float
    ) -> list[DeliveryRow]:
        """New deliveries of a stored event (a replay, so `manual`): (endpoint id,
        pending | held)."""

    async def retry_delivery(self, delivery_id: int, state: State, now: float) -> DeliveryRow:
        """A finished delivery goes out again now as `state` (pending, or held while its
        endpoint does not accept); Conflict while it is unfinished."""

    async def cancel_delivery(self, delivery_id: int, now: float) -> DeliveryRow:
        """An unfinished delivery becomes cancelled (an attempt in flight is still
        recorded); Conflict once finished."""

    async def recover_failed(
        self, endpoint_id: str, since: float, state: State, now: float,
        until: float | None = None,
    ) -> int:
        """Failed deliveries of an endpoint last updated at or after `since` (and before
        `until`) go out again, all due now, in creation order; returns how many."""

    async def purge(self, before: float, limit: int) -> int:
        """Delete up to `limit` events older than `before` whose deliveries are all
        finished, with their deliveries and attempts; returns how many events."""


class Endpoints(Protocol):
    """Endpoints from the config file and the API. Deleted endpoints keep their ids (never
    reused) and are invisible to reads."""

    async def sync_config_endpoints(
        self, endpoints: list[ConfigEndpoint], now: float, new_secret: Callable[[], str]
    ) -> list[EndpointRow]:
        """Make the config endpoints match the file: add, update, and delete removed ones
        (their unfinished deliveries become cancelled)."""

    async def list_endpoints(
        self, tenant: str | None = None, *, after: str | None = None,
        limit: int | None = None,
    ) -> list[EndpointRow]:
        """Live endpoints in creation order (of `tenant`, after the endpoint `after`, at
        most `limit`; None: all)."""

    async def get_endpoint(self, endpoint_id: str) -> EndpointRow | None:
        """A live endpoint (None if absent or deleted)."""

    async def find_endpoint(self, tenant: str, uid: str) -> EndpointRow | None:
        """The live endpoint of `tenant` with that uid (None: none has it)."""

    async def create_endpoint(
        self, endpoint: NewEndpoint, max_api_endpoints: int | None
    ) -> EndpointRow:
        """Add an API endpoint; Conflict if its id was ever used or its uid is a live
        one's of its tenant, TooManyRequests when its tenant has `max_api_endpoints`
        already (counted in the same transaction)."""

    async def update_endpoint(
        self, endpoint_id: str, changes: dict[str, Any], now: float
    ) -> EndpointRow:
        """Set endpoint columns (rules.UPDATABLE); NotFound if absent or deleted, Conflict
        for a uid another live endpoint of its tenant has."""

    async def rotate_secret(
        self, endpoint_id: str, secret: str, previous_until: float | None, now: float
    ) -> EndpointRow:
        """Make `secret` current; the old one keeps signing until `previous_until`
        (rules.rotation), read and replaced in one transaction."""

    async def delete_endpoint(self, endpoint_id: str, now: float) -> int:
        """Remove an endpoint; its unfinished deliveries become cancelled (how many)."""

    async def set_accepting(self, endpoint_id: str, accepting: bool, now: float) -> int:
        """Hold an endpoint's pending deliveries, or release its held ones in order."""


class Reads(Protocol):
    """What the API, the console and /readyz show; reads only. A read given a `tenant`
    returns only that tenant's rows."""

    async def counts(self) -> dict[str, int]:
        """Deliveries per state."""

    async def pending_counts(self, endpoint_ids: list[str]) -> dict[str, int]:
        """Unfinished deliveries (pending, delivering, held) per endpoint."""

    async def blocked_counts(self, endpoint_ids: list[str]) -> dict[str, int]:
        """Per ordered endpoint: the deliveries waiting behind a head that has failed; 0
        while the head is on its first attempt, or there is none."""

    async def list_events(
        self, tenant: str, *, type: str | None = None, before: str | None = None,
        since: float | None = None, until: float | None = None, limit: int = 50,
    ) -> list[EventRow]:
        """A page of a tenant's events as rules.event_page says: newest first, after the
        event `before`; with `since` / `until`, those accepted in [since, until)."""

    async def get_event(self, event_id: str, tenant: str) -> EventRow | None:
        """One of `tenant`'s events (None for another tenant's)."""

    async def event_by_key(self, tenant: str, idem_key: str) -> EventRow | None:
        """`tenant`'s event ingested with that idempotency key (its `id`)."""

    async def deliveries_of(self, event_id: str) -> list[DeliveryRow]:
        """An event's deliveries, in creation order."""

    async def list_deliveries(
        self, endpoint_id: str, *, state: State | None = None, before: int | None = None,
        limit: int = 50,
    ) -> list[DeliveryRow]:
        """An endpoint's deliveries (in `state`), newest first, below the id `before`."""

    async def get_delivery(self, delivery_id: int, tenant: str) -> DeliveryRow | None:
        """A delivery of one of `tenant`'s events (None for another tenant's)."""

    async def attempts_of(self, delivery_id: int) -> list[AttemptRow]:
        """A delivery's attempts, in order."""

    async def list_attempts(
        self, *, endpoint_id: str | None = None, event_id: str | None = None,
        before: int | None = None, limit: int = 50,
    ) -> list[ListedAttempt]:
        """Attempts of the deliveries to an endpoint, or of an event's (or both), newest
        delivery first and its latest attempt first, after the attempt `before` in that
        order (rules.attempt_page)."""

    async def get_attempt(self, attempt_id: int) -> ListedAttempt | None:
        """One attempt by its own id."""

    async def outcomes_per_minute(self, since: float) -> list[MinuteOutcomes]:
        """Attempts started since `since`, counted per minute and outcome, oldest first;
        minutes without attempts are left out."""

    async def recent_failures(self, since: float, limit: int) -> list[FailedAttempt]:
        """The latest attempts since `since` that did not succeed, newest first."""


class Sessions(Protocol):
    """Console and portal sessions, and the keys relay keeps for itself."""

    async def secret_key(self, name: str, new: Callable[[], bytes]) -> bytes:
        """The key stored under `name`, made with `new()` the first time; when processes
        race, the first stored wins and all get it."""

    async def add_session(self, session: SessionRow) -> None:
        """Store a new session (durably: it is handed out next)."""

    async def get_session(self, session_id: str) -> SessionRow | None:
        """The session of that id (None: there is none, or it ended)."""

    async def touch_session(self, session_id: str, now: float) -> None:
        """Record use (never backwards); losing one to a crash only ends it sooner."""

    async def end_session(self, session_id: str) -> bool:
        """End a session; whether there was one."""

    async def end_sessions(self, kind: str, keep: Collection[str]) -> int:
        """End every session of `kind` whose subject is not in `keep`; how many."""

    async def purge_sessions(self, now: float, idle: float) -> int:
        """Delete sessions expired by `now` or idle for `idle` seconds; how many."""


class Directory(Protocol):
    """Tenants, API keys and event types created through the API (relay.storage.directory
    and relay.storage.event_types decide).
    Every write bumps the directory's version in its transaction (PostgreSQL: and sends
    NOTIFY relay_directory), so each process's snapshot (relay.directory) reloads."""

    async def directory(self) -> DirectoryRows:
        """Every stored tenant and key, with the version read before them."""

    async def create_tenant(self, tenant: TenantRow) -> TenantRow:
        """Store a tenant; Conflict when its id or uid is a stored tenant's id or uid."""

    async def update_tenant(self, tenant_id: str, changes: dict[str, Any],
                            now: float) -> TenantRow:
        """Set tenant columns (directory.TENANT_UPDATABLE; a new uid is checked as on
        create); NotFound if there is none."""

    async def delete_tenant(self, tenant_id: str, now: float) -> TenantRemoved:
        """Delete a tenant, its keys, and its endpoints as delete_endpoint does (their
        unfinished deliveries cancelled); its events stay. NotFound if there is none."""

    async def create_api_key(self, key: ApiKeyRow, tenant_in_file: bool) -> ApiKeyRow:
        """Store a key; Unprocessable unless its tenant is the file's (`tenant_in_file`)
        or a stored one, read in the same transaction."""

    async def delete_api_key(self, key_id: str) -> ApiKeyRow:
        """Delete (revoke) a key and answer what it was; NotFound if there is none."""

    async def create_event_type(self, event_type: EventTypeRow,
                                unarchive: bool = False) -> EventTypeRow:
        """Store an event type; Conflict when one of that name is stored, unless it is
        archived and `unarchive` (then it is replaced, keeping its created_at:
        relay.storage.event_types.on_create)."""

    async def update_event_type(self, name: str, changes: dict[str, Any],
                                now: float) -> EventTypeRow:
        """Set event type columns (event_types.EVENT_TYPE_UPDATABLE); NotFound if there
        is none."""

    async def delete_event_type(self, name: str) -> EventTypeRow:
        """Delete (expunge) an event type and answer what it was; NotFound if none."""


class Requests(Protocol):
    """API requests by idempotency key (/api/v1's `idempotency-key`): the first answer is
    given again to a retry, on every process sharing the database."""

    async def begin_request(self, owner: str, key: str, digest: str,
                            now: float) -> StoredAnswer | None:
        """What rules.answer_again says of a request of `digest` under `owner`'s `key`:
        None (it is the caller's to answer, recorded as in flight), the stored answer to
        give again, or Conflict (raised)."""

    async def end_request(self, owner: str, key: str, status: int | None,
                          body: bytes) -> None:
        """Keep the answer of the request begun under the key; None: forget the key (an
        error is not kept: a retry runs again)."""

    async def purge_requests(self, before: float) -> int:
        """Forget the requests begun before `before`; how many."""


class Store(Lifecycle, Queue, Deliveries, Endpoints, Reads, Sessions, Directory, Requests,
            Protocol):
    """Every role: what a backend implements (see tests/integration/test_store.py). Code
    that needs one role takes that role's type."""


class EndpointsAndReads(Endpoints, Reads, Protocol):
    """What the management surfaces read (relay.operations, the console's overview): the
    endpoints and what is queued for them. They change nothing through it: every change
    goes through the running relay, which keeps its endpoints in memory in step."""
