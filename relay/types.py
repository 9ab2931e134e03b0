"""The plain types every layer shares: delivery states and their sets, and the rows
and values the store, the policies and the surfaces pass each other.

This module is the bottom layer (docs/architecture.md, "Layers"): it imports nothing of
relay's but `relay.errors`, so any module may import it without forming a loop.

Delivery states: pending -> delivering -> succeeded | pending (retry) | failed | held;
held -> pending when its endpoint accepts again; failed/succeeded/cancelled -> pending
(or held) on an operator's retry or recover; pending/held/delivering -> cancelled when
an operator cancels it or its endpoint is removed (an attempt in flight is still
recorded, the delivery stays cancelled).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, Protocol, get_args

from relay.errors import Conflict

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
Source = Literal["config", "api"]  # where an endpoint is defined
# How deliveries are signed (relay.delivery.signing, which lists them as SCHEMES).
Scheme = Literal["standard-webhooks", "hmac-sha256-timestamped", "hmac-sha256-body", "none",
                 "svix"]
# array: the envelope in a one-element JSON array; data: its `data` alone (what Svix sends)
Payload = Literal["envelope", "array", "data"]
Ordering = Literal["none", "fifo"]  # fifo: one at a time, in event order (docs/ordering.md)


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
    channels: tuple[str, ...] | None = None  # Svix's message channels (matching.channels_match)


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


@dataclass(frozen=True)
class EndpointSpec:
    """An endpoint's delivery settings, the same for config-file and API endpoints (the
    config's [[endpoints]] keys describe each); None: the [delivery] default (timeout,
    retry_schedule, endpoint_concurrency) or none.

    Each default is written here only: EndpointConfig and the console read them as class
    attributes (hence no slots). Stored in the `spec` column as to_json: keys sorted, None
    left out, so equal specs are equal text (config sync compares the text); a key missing
    from a stored row (`ordering`, in rows older than it) reads as its default."""

    url: str
    events: tuple[str, ...] = ("*",)
    channels: tuple[str, ...] | None = None  # None: every event, whatever its channels
    headers: dict[str, str] = field(default_factory=dict)
    filter: dict[str, Any] = field(default_factory=dict)
    signature: Scheme = "standard-webhooks"
    signature_header: str | None = None
    payload: Payload = "envelope"
    timeout: float | None = None
    retry_schedule: tuple[float, ...] | None = None
    endpoint_concurrency: int | None = None
    rate_limit: float | None = None
    enabled: bool = True  # false: deliveries held (the config file's `enabled`)
    ordering: Ordering = "none"

    def to_dict(self) -> dict[str, Any]:
        """The stored form as a JSON object: None left out, sequences as lists."""
        out: dict[str, Any] = {}
        for name in (f.name for f in fields(self)):
            value = getattr(self, name)
            if value is not None:
                out[name] = list(value) if isinstance(value, tuple) else value
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EndpointSpec:
        """From the stored form (or the config's keys); a key left out takes its default."""
        values = dict(data)
        for name in ("events", "retry_schedule", "channels"):
            if values.get(name) is not None:
                values[name] = tuple(values[name])
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> EndpointSpec:
        return cls.from_dict(json.loads(text))


@dataclass(frozen=True, slots=True)
class EndpointRow:
    id: str
    tenant: str
    source: Source
    name: str
    spec: EndpointSpec
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
    updated_at: float = 0.0
    uid: str | None = None  # a caller's own id for it (Svix's), unique in its tenant
    metadata: dict[str, str] = field(default_factory=dict)  # a caller's labels (Svix's)


@dataclass(frozen=True, slots=True)
class ConfigEndpoint:
    """A config-file endpoint to sync into the store (secret None: keep or generate)."""

    id: str
    tenant: str
    spec: EndpointSpec
    secret: str | None


@dataclass(frozen=True, slots=True)
class NewEndpoint:
    """An endpoint created through the API."""

    id: str
    tenant: str
    name: str
    spec: EndpointSpec
    secret: str
    created_at: float
    uid: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EventRow:
    id: str
    tenant: str
    type: str
    created_at: float
    payload: bytes  # the envelope as sent
    deliveries: int  # delivery rows now, replays included
    idem_key: str | None = None  # the `id` it was ingested with (Svix's eventId)
    channels: tuple[str, ...] | None = None


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
class ListedAttempt:
    """An attempt with what its delivery says of it (the lists of attempts by endpoint or
    by event: Svix's message attempts)."""

    id: int  # the attempt row's own id (`atmpt_<id>`), growing with time
    delivery_id: int
    event_id: str
    endpoint_id: str
    manual: bool  # its delivery was made by a replay (an operator's), not by ingest
    n: int
    started_at: float
    duration_ms: float | None
    status: int | None
    response_body: bytes
    error: str | None


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """An API request stored under its idempotency key (relay.storage.rules.answer_again
    decides what a request with the same key gets)."""

    digest: str  # sha256 of the request: method, path, query and body
    status: int | None  # None: still being answered
    body: bytes
    created_at: float


@dataclass(frozen=True, slots=True)
class Notice:
    """A change relay reports about itself as an operational event (`relay.*`): what
    happened (`type`), to which endpoint, in its tenant, with the event's own fields."""

    type: str
    endpoint_id: str
    tenant: str
    data: dict[str, Any]


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
class SessionRow:
    """A signed-in console or portal session; relay.sessions.decide says whether it is
    live at a time, and both backends' purges delete what it calls dead."""

    id: str  # the nonce of the session's signed cookie
    kind: str  # "o" operator, "p" portal
    subject: str  # the admin key's digest prefix, or the tenant id
    created_at: float
    last_seen_at: float  # recorded at most every sessions.touch_every(idle) seconds
    expires_at: float


@dataclass(frozen=True, slots=True)
class TenantRow:
    """A tenant created through the API (SPEC §10); config tenants are never stored."""

    id: str
    name: str
    metadata: dict[str, str]
    max_webhooks: int | None  # None: no limit
    webhooks_enabled: bool
    uid: str | None  # Svix's application uid: another name the tenant answers to
    throttle_rate: int | None  # Svix's, stored and echoed, not enforced
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class ApiKeyRow:
    """An API key created through the API: only its digest is kept."""

    id: str  # key_<ulid>
    name: str
    sha256: str
    scopes: tuple[str, ...]
    tenant: str
    expires_at: float | None  # None: never
    created_at: float


@dataclass(frozen=True, slots=True)
class EventTypeRow:
    """An event type created through the API (SPEC §10); the file's are never stored."""

    name: str
    description: str
    sample: dict[str, Any]
    schema: dict[str, Any] | None  # JSON Schema (draft 2020-12) for `data`; None: any
    deprecated: bool  # still accepted at ingest; shown as deprecated
    archived: bool  # Svix's delete: kept, but neither listed nor enforced
    enforced: bool  # false (Svix's): counts for neither the unknown-type rule nor the schema
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class DirectoryRows:
    """The stored tenants, keys and event types, and the directory's version when they
    were read: a version read later that differs means they changed since."""

    version: int
    tenants: tuple[TenantRow, ...]  # in creation order
    keys: tuple[ApiKeyRow, ...]  # in creation order
    event_types: tuple[EventTypeRow, ...] = ()  # in creation order


@dataclass(frozen=True, slots=True)
class TenantRemoved:
    """What deleting a tenant removed with it (its events stay until retention)."""

    endpoints: tuple[str, ...]  # deleted, as one endpoint's delete does
    cancelled: int  # their unfinished deliveries
    keys: int  # its API keys


@dataclass(frozen=True, slots=True)
class Reporting:
    """What `record` needs to emit operational events in its own transaction: the
    streak length reported as failing, and how notices become events (matched against
    the endpoints in memory: called on the store's writer, so it must only read)."""

    failing_after: int
    build: Callable[[list[Notice], float], list[NewEvent]]


class Row(Protocol):
    """A database row read by position (a tuple, sqlite3.Row, an asyncpg Record)."""

    def __getitem__(self, index: int, /) -> Any: ...
