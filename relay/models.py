"""The management API's shapes: request bodies, queries and answers (pydantic).

The JSON API validates requests and builds answers with these models, /openapi.json takes
its schemas from them, and the console validates its forms and renders its pages from the
same ones, so the two cannot disagree on a field.
"""

from __future__ import annotations

import copy
import json
from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
    create_model,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from relay import directory
from relay.config.endpoints import EndpointConfig
from relay.config.values import (
    DURATION_RE,
    TYPE_RE,
    NoControls,
    Text,
    format_duration,
    key_path,
    parse_duration,
)
from relay.directory import TypeSource
from relay.errors import Unprocessable
from relay.ids import delivery_ref
from relay.runtime import timestamp
from relay.types import (
    AttemptRow,
    DeliveryRow,
    EndpointRow,
    EventRow,
    Ordering,
    Payload,
    Scheme,
    Source,
    State,
)

PAGE_DEFAULT = 50
PAGE_MAX = 500
MAX_DURATION = 365 * 86400.0  # an API duration past a year is a typo (and inf breaks JSON)
_T = TypeVar("_T")

# --- request bodies ---------------------------------------------------------------------


def _bounded(seconds: float) -> float:
    if not seconds <= MAX_DURATION:
        raise ValueError("must be at most 365d")
    return seconds


# The config's Duration, described as the string it is read from (the config's own
# schema shows the parsed number).
Duration = Annotated[
    float, BeforeValidator(parse_duration), AfterValidator(_bounded),
    WithJsonSchema({"type": "string", "pattern": DURATION_RE.pattern,
                    "examples": ["10s"]}),
]
TypeName = Annotated[str, StringConstraints(pattern=TYPE_RE, max_length=128)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=128), NoControls]
Time = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time",
                                      "examples": ["2026-04-14T16:29:48Z"]})]

# Endpoint settings the API can set, defined (type, default, description) by the config.
SPEC_FIELDS = ("url", "events", "channels", "filter", "headers", "signature",
               "signature_header", "payload", "timeout", "retry_schedule", "rate_limit",
               "ordering")
PATCH_SPEC_FIELDS = ("url", "events", "channels", "filter", "headers", "timeout",
                     "retry_schedule", "rate_limit", "ordering")
# On PATCH, null: back to the default.
_NULLABLE = {"channels", "timeout", "retry_schedule", "rate_limit"}
_API_TYPES: dict[str, Any] = {"timeout": Duration | None, "retry_schedule": list[Duration] | None}


class StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def _omit_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def _config_field(name: str, *, patch: bool = False) -> tuple[Any, FieldInfo]:
    """The config's field `name` for an API body: required `events` on create; on PATCH
    optional, and null only where null means "back to the default"."""
    field = copy.copy(EndpointConfig.model_fields[name])
    if name == "events" and not patch:
        field.default = PydanticUndefined
    if patch:
        field.default, field.default_factory = None, None
        if name not in _NULLABLE:
            field.json_schema_extra = _omit_default
    return _API_TYPES.get(name, field.annotation), field


WebhookIn = create_model(
    "WebhookIn", __base__=StrictBody,
    name=(Name, Field(description="A label for people.", examples=["crm-production"])),
    **{name: _config_field(name) for name in SPEC_FIELDS},  # type: ignore[call-overload]
)
WebhookPatch = create_model(
    "WebhookPatch", __base__=StrictBody,
    name=(Name, Field(None, json_schema_extra=_omit_default)),
    is_active=(bool, Field(None, json_schema_extra=_omit_default,
                           description="true re-enables a disabled webhook.")),
    is_paused=(bool, Field(None, json_schema_extra=_omit_default,
                           description="true holds deliveries; false releases them in order.")),
    **{name: _config_field(name, patch=True)  # type: ignore[call-overload]
       for name in PATCH_SPEC_FIELDS},
)


class RotateIn(StrictBody):
    grace: Duration | None = Field(
        None, description="How long the old secret keeps signing too (default: not at all)."
    )


class SendTestIn(StrictBody):
    type: TypeName | None = Field(
        None, description="A declared event type, whose sample is sent (default: relay.ping)."
    )


class RecoverIn(StrictBody):
    since: AwareDatetime = Field(description="Failed deliveries last updated at or after this.")


class ReplayIn(StrictBody):
    endpoints: Annotated[list[Text], Field(min_length=1)] | None = Field(
        None, description="Webhook ids (default: every webhook matching the event now)."
    )


class PageQuery(BaseModel):
    limit: int = Field(PAGE_DEFAULT, ge=1, le=PAGE_MAX, description="Items per page.")
    after: Text | None = Field(
        None, description="The `next` cursor of the previous page, as given: opaque, and "
        "valid only for the list and caller it was given to (any other value answers 400).")


class DeliveriesQuery(PageQuery):
    status: State | None = Field(None, description="Only deliveries in this state.")


class EventsQuery(PageQuery):
    type: TypeName | None = Field(None, description="Only events of this type.")
    since: AwareDatetime | None = Field(
        None, description="Only events accepted at or after this time (ISO 8601 with a zone)."
    )
    until: AwareDatetime | None = Field(
        None, description="Only events accepted before this time (ISO 8601 with a zone)."
    )


# --- answers ------------------------------------------------------------------------------


class Webhook(BaseModel):
    id: str
    uid: str | None = Field(description="Its caller-chosen id in the tenant (Svix's), "
                            "usable wherever its id is; set through /api/v1.")
    name: str
    url: str
    events: list[str]
    channels: list[str] | None = Field(description="null: every event, whatever its "
                                       "channels.")
    metadata: dict[str, str] = Field(description="A caller's labels (Svix's), set through "
                                     "/api/v1.")
    filter: dict[str, Any]
    headers: dict[str, str]
    signature: Scheme
    signature_header: str | None
    payload: Payload
    timeout: str | None = Field(description="null: delivery.timeout")
    retry_schedule: list[str] | None = Field(description="null: delivery.retry_schedule")
    rate_limit: float | None
    ordering: Ordering
    tenant: str
    is_active: bool = Field(description="false: disabled (see disable_reason)")
    is_paused: bool
    disable_reason: str | None
    source: Source
    created_at: Time
    updated_at: Time
    last_delivery_at: Time | None
    last_delivery_status: int | None
    consecutive_failures: int
    pending: int = Field(description="Deliveries not finished: pending, delivering or held.")
    blocked_behind_head: int = Field(
        description='ordering "fifo": deliveries waiting behind a head that failed (waiting '
        "for its retry, or being retried); 0 otherwise.")


class WebhookCreated(Webhook):
    secret: str = Field(description="The signing secret; shown only in this answer.")


class Delivery(BaseModel):
    id: str
    event_id: str
    webhook_id: str
    status: State
    attempts: int
    next_attempt_at: Time | None = Field(description="When pending or held.")
    created_at: Time
    updated_at: Time
    last_status: int | None
    last_error: str | None


class Attempt(BaseModel):
    n: int
    at: Time
    duration_ms: float | None
    request_headers: dict[str, str]
    status: int | None
    response_headers: dict[str, str]
    response_body: str = Field(description="The first 4 KiB, as UTF-8 (invalid bytes replaced).")
    error: str | None


class DeliveryDetail(Delivery):
    attempts: list[Attempt]  # type: ignore[assignment]


class Envelope(BaseModel):
    id: str
    type: str
    timestamp: Time
    tenant_id: str
    data: dict[str, Any]


class Event(Envelope):
    deliveries: int


class EventType(BaseModel):
    model_config = ConfigDict(serialize_by_alias=True)
    name: str
    description: str
    sample: dict[str, Any]
    schema_: dict[str, Any] | None = Field(
        alias="schema", description="The JSON Schema (draft 2020-12) every event's `data` "
        "must match; null: any object.")
    deprecated: bool = Field(description="Still accepted at ingest; shown as deprecated.")
    source: TypeSource = Field(description='"config": declared in the config file, '
                               'read-only here; "api": made through the API; "relay": '
                               "relay's own operational events.")


def event_type_of(event_type: directory.EventType) -> EventType:
    return EventType(name=event_type.name, description=event_type.description,
                     sample=event_type.sample, schema=event_type.schema,
                     deprecated=event_type.deprecated, source=event_type.source)


Description = Annotated[str, StringConstraints(max_length=4096), NoControls]


class EventTypeIn(StrictBody):
    model_config = ConfigDict(serialize_by_alias=True)
    name: TypeName = Field(description="The type's name, as events carry it (the config's "
                           "rule: dot-separated words).", examples=["lead.qualified"])
    description: Description = Field("", description="What the event means.")
    sample: dict[str, Any] = Field(
        default_factory=dict, description="Example `data` for test sends; must match the "
        "schema.", examples=[{"lead_id": "lead_4c88e100"}])
    schema_: dict[str, Any] | None = Field(
        None, alias="schema", description="JSON Schema (draft 2020-12) every event's `data` "
        "must match from now on; null: any object.",
        examples=[{"type": "object", "required": ["lead_id"]}])
    deprecated: bool = Field(False, description="Still accepted; shown as deprecated.")


# Absent fields stay as they are; null is refused but for schema (null: any object).
EventTypePatch = create_model(
    "EventTypePatch", __base__=StrictBody,
    description=(Description, Field(None, json_schema_extra=_omit_default)),
    sample=(dict[str, Any], Field(None, json_schema_extra=_omit_default)),
    schema_=(dict[str, Any] | None, Field(None, alias="schema",
                                          description="null: any object.")),
    deprecated=(bool, Field(None, json_schema_extra=_omit_default)),
)


class Sample(BaseModel):
    type: str
    data: dict[str, Any]


class SendTestResult(BaseModel):
    success: bool
    status: int | None
    duration_ms: float
    response_body: str
    error: str | None
    event: Envelope


class Secret(BaseModel):
    secret: str = Field(description="The signing secret (current; a rotated-out one that "
                        "still signs is not shown).")


class Rotated(BaseModel):
    secret: str
    previous_expires_at: Time | None


class Recovered(BaseModel):
    requeued: int


class Replayed(BaseModel):
    deliveries: list[Delivery]


class Page(BaseModel, Generic[_T]):
    data: list[_T]
    next: str | None = Field(description="Pass as `after` for the next page (an opaque "
                             "cursor of this list for this caller); null: last page.")


# --- rows as answers -------------------------------------------------------------------


def time_of(ts: float | None) -> str | None:
    return None if ts is None else timestamp(ts)


def duration_of(seconds: float | None) -> str | None:
    return None if seconds is None else format_duration(seconds)


def webhook_of(row: EndpointRow, pending: int, blocked: int = 0) -> Webhook:
    spec = row.spec
    schedule = spec.retry_schedule
    return Webhook(
        id=row.id, uid=row.uid, name=row.name, url=spec.url, events=list(spec.events),
        channels=None if spec.channels is None else list(spec.channels),
        metadata=row.metadata, filter=spec.filter, headers=spec.headers, signature=spec.signature,
        signature_header=spec.signature_header, payload=spec.payload,
        timeout=duration_of(spec.timeout),
        retry_schedule=None if schedule is None else [format_duration(s) for s in schedule],
        rate_limit=spec.rate_limit, tenant=row.tenant,
        is_active=row.is_active and spec.enabled, is_paused=row.is_paused,
        disable_reason=row.disable_reason or (
            None if spec.enabled else "enabled = false in the config file"),
        source=row.source,
        created_at=timestamp(row.created_at), updated_at=timestamp(row.updated_at),
        last_delivery_at=time_of(row.last_delivery_at),
        last_delivery_status=row.last_delivery_status,
        consecutive_failures=row.consecutive_failures, pending=pending,
        ordering=spec.ordering, blocked_behind_head=blocked,
    )


def delivery_of(row: DeliveryRow) -> Delivery:
    return Delivery(
        id=delivery_ref(row.id), event_id=row.event_id, webhook_id=row.endpoint_id,
        status=row.state,
        attempts=row.attempts,
        next_attempt_at=timestamp(row.next_at) if row.state in ("pending", "held") else None,
        created_at=timestamp(row.created_at), updated_at=timestamp(row.updated_at),
        last_status=row.last_status, last_error=row.last_error,
    )


def attempt_of(row: AttemptRow) -> Attempt:
    return Attempt(
        n=row.n, at=timestamp(row.started_at), duration_ms=row.duration_ms,
        request_headers=row.request_headers, status=row.status,
        response_headers=row.response_headers,
        response_body=row.response_body.decode("utf-8", errors="replace"), error=row.error,
    )


def event_of(row: EventRow) -> Event:
    return Event(**json.loads(row.payload), deliveries=row.deliveries)


def invalid(exc: ValidationError) -> Unprocessable:
    """A validation failure as the 422 answer: one detail per field, with its path."""
    return Unprocessable(
        "the request has invalid fields",
        [{"path": key_path(e["loc"]), "message": "unknown field"
          if e["type"] == "extra_forbidden" else e["msg"].removeprefix("Value error, ")}
         for e in exc.errors(include_url=False)],
    )
