"""The management API (SPEC §6): webhooks, their deliveries, events, event types.

Every route acts in the caller's tenant only: another tenant's webhook, delivery or event
answers 404, as if it did not exist. GET needs `webhooks:read`, the rest
`webhooks:write`; a tenant with webhooks disabled gets 403 on every route. Answers are
built from the pydantic models below, which also give /openapi.json its schemas, so the
document cannot drift from what the routes send.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Generic, Literal, TypeVar

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
    field_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from relay import config as cfgmod
from relay.api.auth import authenticate, tenant_for
from relay.api.ingest import invalid, parse, read_body
from relay.app import Relay, timestamp
from relay.config import TYPE_RE, EndpointConfig, Scheme, TenantConfig, parse_duration
from relay.delivery.endpoints import from_config
from relay.errors import Conflict, NotFound, Unprocessable
from relay.ids import delivery_ref
from relay.storage.base import AttemptRow, DeliveryRow, EndpointRow, EventRow, State

PAGE_DEFAULT = 50
PAGE_MAX = 500
MAX_DURATION = 365 * 86400.0  # an API duration past a year is a typo (and inf breaks JSON)
# What a test send carries when no event type is named.
PING: tuple[str, dict[str, Any]] = ("relay.ping", {})
_M = TypeVar("_M", bound=BaseModel)
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
    WithJsonSchema({"type": "string", "pattern": cfgmod.DURATION_RE.pattern,
                    "examples": ["10s"]}),
]
TypeName = Annotated[str, StringConstraints(pattern=TYPE_RE, max_length=128)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Time = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time",
                                      "examples": ["2026-04-14T16:29:48Z"]})]

# Endpoint settings the API can set, defined (type, default, description) by the config.
SPEC_FIELDS = ("url", "events", "filter", "headers", "signature", "signature_header",
               "payload", "timeout", "retry_schedule", "rate_limit")
PATCH_SPEC_FIELDS = ("url", "events", "filter", "headers", "timeout", "retry_schedule",
                     "rate_limit")
_NULLABLE = {"timeout", "retry_schedule", "rate_limit"}  # on PATCH, null: back to the default
_API_TYPES: dict[str, Any] = {"timeout": Duration | None, "retry_schedule": list[Duration] | None}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class _SpecBody(_Body):
    @field_validator("headers", check_fields=False)
    @classmethod
    def _headers(cls, headers: dict[str, str]) -> dict[str, str]:
        return cfgmod.check_headers(headers)


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
    "WebhookIn", __base__=_SpecBody,
    name=(Name, Field(description="A label for people.", examples=["crm-production"])),
    **{name: _config_field(name) for name in SPEC_FIELDS},  # type: ignore[call-overload]
)
WebhookPatch = create_model(
    "WebhookPatch", __base__=_SpecBody,
    name=(Name, Field(None, json_schema_extra=_omit_default)),
    is_active=(bool, Field(None, json_schema_extra=_omit_default,
                           description="true re-enables a disabled webhook.")),
    is_paused=(bool, Field(None, json_schema_extra=_omit_default,
                           description="true holds deliveries; false releases them in order.")),
    **{name: _config_field(name, patch=True)  # type: ignore[call-overload]
       for name in PATCH_SPEC_FIELDS},
)


class RotateIn(_Body):
    grace: Duration | None = Field(
        None, description="How long the old secret keeps signing too (default: not at all)."
    )


class SendTestIn(_Body):
    type: TypeName | None = Field(
        None, description="A declared event type, whose sample is sent (default: relay.ping)."
    )


class RecoverIn(_Body):
    since: AwareDatetime = Field(description="Failed deliveries last updated at or after this.")


class ReplayIn(_Body):
    endpoints: Annotated[list[str], Field(min_length=1)] | None = Field(
        None, description="Webhook ids (default: every webhook matching the event now)."
    )


class PageQuery(BaseModel):
    limit: int = Field(PAGE_DEFAULT, ge=1, le=PAGE_MAX, description="Items per page.")
    after: str | None = Field(None, description="The `next` cursor of the previous page.")


class DeliveriesQuery(PageQuery):
    status: State | None = Field(None, description="Only deliveries in this state.")


class EventsQuery(PageQuery):
    type: TypeName | None = Field(None, description="Only events of this type.")


# --- answers ------------------------------------------------------------------------------


class Webhook(BaseModel):
    id: str
    name: str
    url: str
    events: list[str]
    filter: dict[str, Any]
    headers: dict[str, str]
    signature: Scheme
    signature_header: str | None
    payload: Literal["envelope", "array"]
    timeout: str | None = Field(description="null: delivery.timeout")
    retry_schedule: list[str] | None = Field(description="null: delivery.retry_schedule")
    rate_limit: float | None
    tenant: str
    is_active: bool = Field(description="false: disabled (see disable_reason)")
    is_paused: bool
    disable_reason: str | None
    source: Literal["config", "api"]
    created_at: Time
    last_delivery_at: Time | None
    last_delivery_status: int | None
    consecutive_failures: int
    pending: int = Field(description="Deliveries not finished: pending, delivering or held.")


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


class Rotated(BaseModel):
    secret: str
    previous_expires_at: Time | None


class Recovered(BaseModel):
    requeued: int


class Replayed(BaseModel):
    deliveries: list[Delivery]


class Page(BaseModel, Generic[_T]):
    data: list[_T]
    next: str | None = Field(description="Pass as `after` for the next page; null: last page.")


# --- helpers ---------------------------------------------------------------------------


def _caller(request: Request) -> tuple[Relay, TenantConfig]:
    """The relay and the caller's tenant; GET reads, everything else writes."""
    relay: Relay = request.app.state.relay
    scope = "webhooks:read" if request.method == "GET" else "webhooks:write"
    principal = authenticate(request, relay.loaded, scope)
    return relay, tenant_for(principal, None, relay.config)


async def _body(request: Request, relay: Relay, model: type[_M], *,
                optional: bool = False) -> _M:
    """The JSON body; where every field is optional, no body at all means defaults."""
    headers = request.headers
    if (optional and "content-type" not in headers and "transfer-encoding" not in headers
            and headers.get("content-length", "0") == "0"):
        return model()
    return parse(model, await read_body(request, relay.config.server.max_body_bytes))


def _query(request: Request, model: type[_M]) -> _M:
    try:
        return model.model_validate(dict(request.query_params))
    except ValidationError as exc:
        raise invalid(exc) from None


def _answer(model: BaseModel, status: int = 200) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json"), status_code=status)


def _page(rows: Sequence[_T], limit: int,
          cursor: Callable[[_T], str]) -> tuple[list[_T], str | None]:
    """Rows were read with limit + 1: the extra one only says a next page exists."""
    page = list(rows[:limit])
    return page, cursor(page[-1]) if len(rows) > limit else None


def _time(ts: float | None) -> str | None:
    return None if ts is None else timestamp(ts)


def _duration(seconds: float | None) -> str | None:
    return None if seconds is None else cfgmod.format_duration(seconds)


def _webhook(row: EndpointRow, pending: int) -> Webhook:
    spec = row.spec
    enabled = spec.get("enabled", True)
    schedule = spec.get("retry_schedule")
    return Webhook(
        id=row.id, name=row.name, url=spec["url"], events=spec["events"],
        filter=spec["filter"], headers=spec["headers"], signature=spec["signature"],
        signature_header=spec.get("signature_header"), payload=spec["payload"],
        timeout=_duration(spec.get("timeout")),
        retry_schedule=None if schedule is None else [cfgmod.format_duration(s) for s in schedule],
        rate_limit=spec.get("rate_limit"), tenant=row.tenant,
        is_active=row.is_active and enabled, is_paused=row.is_paused,
        disable_reason=row.disable_reason or (
            None if enabled else "enabled = false in the config file"),
        source=row.source,
        created_at=timestamp(row.created_at), last_delivery_at=_time(row.last_delivery_at),
        last_delivery_status=row.last_delivery_status,
        consecutive_failures=row.consecutive_failures, pending=pending,
    )


async def _webhook_answer(relay: Relay, row: EndpointRow) -> Webhook:
    pending = await relay.store.pending_counts([row.id])
    return _webhook(row, pending[row.id])


def _delivery(row: DeliveryRow) -> Delivery:
    return Delivery(
        id=delivery_ref(row.id), event_id=row.event_id, webhook_id=row.endpoint_id,
        status=row.state,
        attempts=row.attempts,
        next_attempt_at=timestamp(row.next_at) if row.state in ("pending", "held") else None,
        created_at=timestamp(row.created_at), updated_at=timestamp(row.updated_at),
        last_status=row.last_status, last_error=row.last_error,
    )


def _attempt(row: AttemptRow) -> Attempt:
    return Attempt(
        n=row.n, at=timestamp(row.started_at), duration_ms=row.duration_ms,
        request_headers=row.request_headers, status=row.status,
        response_headers=row.response_headers,
        response_body=row.response_body.decode("utf-8", errors="replace"), error=row.error,
    )


def _event(row: EventRow) -> Event:
    return Event(**json.loads(row.payload), deliveries=row.deliveries)


def _delivery_id(ref: str, path: str | None = None) -> int:
    """`dlv_<n>` -> n. A malformed id is a 404 in a path, a 422 in a query."""
    number = ref.removeprefix("dlv_")
    if ref.startswith("dlv_") and number.isascii() and number.isdigit() and len(number) < 19:
        return int(number)
    if path is None:
        raise NotFound(f"no delivery {ref!r}")
    raise Unprocessable("the request has invalid fields",
                        [{"path": path, "message": f"not a delivery id: {ref!r}"}])


async def _own_webhook(relay: Relay, tenant: str, webhook_id: str) -> EndpointRow:
    row = await relay.store.get_endpoint(webhook_id)
    if row is None or row.tenant != tenant:
        raise NotFound(f"no webhook {webhook_id!r}")
    return row


def _checked_spec(relay: Relay, row_id: str, tenant: str,
                  fields: dict[str, Any]) -> dict[str, Any]:
    """The stored spec of an endpoint with these settings, after the checks a config file's
    endpoint gets (URL scheme, signature header); 422 naming each bad field."""
    endpoint = EndpointConfig.model_construct(
        id=row_id, tenant=tenant, **{k: v for k, v in fields.items() if v is not None}
    )
    errors, _ = cfgmod.cross_check(
        cfgmod.Config.model_construct(delivery=relay.config.delivery,
                                      tenants=relay.config.tenants, endpoints=[endpoint]), {},
    )
    if errors:
        details = []
        for line in errors:
            path, _, message = line.removeprefix("endpoints[0].").partition(": ")
            details.append({"path": path, "message": message})
        raise Unprocessable("the request has invalid fields", details)
    return from_config(endpoint, None).spec


def _config_defined(row: EndpointRow, what: str) -> Conflict:
    return Conflict(f"webhook {row.id!r} is defined in the config file: {what}")


# --- webhooks ----------------------------------------------------------------------------


async def list_webhooks(request: Request) -> JSONResponse:
    relay, tenant = _caller(request)
    query = _query(request, PageQuery)
    rows = await relay.store.list_endpoints(tenant.id, after=query.after, limit=query.limit + 1)
    page, cursor = _page(rows, query.limit, lambda row: row.id)
    pending = await relay.store.pending_counts([row.id for row in page])
    return _answer(Page[Webhook](data=[_webhook(r, pending[r.id]) for r in page], next=cursor))


async def create_webhook(request: Request) -> JSONResponse:
    relay, tenant = _caller(request)
    body = await _body(request, relay, WebhookIn)
    fields = body.model_dump()
    name: str = fields.pop("name")  # create_model's fields are not attributes to mypy
    spec = _checked_spec(relay, "new", tenant.id, fields)
    row = await relay.create_endpoint(tenant.id, name, spec, tenant.max_webhooks)
    created = WebhookCreated(**_webhook(row, 0).model_dump(), secret=row.secret)
    return _answer(created, 201)


async def get_webhook(request: Request) -> JSONResponse:
    relay, tenant = _caller(request)
    row = await _own_webhook(relay, tenant.id, request.path_params["id"])
    return _answer(await _webhook_answer(relay, row))


async def patch_webhook(request: Request) -> JSONResponse:
    """Config-defined webhooks take only is_active/is_paused: the file stays the truth."""
    relay, tenant = _caller(request)
    row = await _own_webhook(relay, tenant.id, request.path_params["id"])
    given = (await _body(request, relay, WebhookPatch)).model_dump(exclude_unset=True)
    if row.source == "config" and (fixed := sorted(set(given) - {"is_active", "is_paused"})):
        raise _config_defined(
            row, f"{', '.join(fixed)} cannot be changed through the API (only is_active "
            "and is_paused); edit the config file instead")
    changes: dict[str, Any] = {}
    if "name" in given:
        changes["name"] = given["name"]
    if settings := {k: v for k, v in given.items() if k in PATCH_SPEC_FIELDS}:
        changes["spec"] = _checked_spec(relay, row.id, row.tenant, {**row.spec, **settings})
    if "is_paused" in given:
        changes["is_paused"] = given["is_paused"]
    if given.get("is_active") is True:
        changes.update(is_active=True, disable_reason=None, failing_since=None,
                       consecutive_failures=0)
    elif given.get("is_active") is False and row.is_active:
        changes.update(is_active=False, disable_reason="disabled through the API")
    row = await relay.change_endpoint(row.id, changes)
    return _answer(await _webhook_answer(relay, row))


async def delete_webhook(request: Request) -> Response:
    relay, tenant = _caller(request)
    row = await _own_webhook(relay, tenant.id, request.path_params["id"])
    if row.source == "config":
        raise _config_defined(row, "remove it from the config file instead")
    await relay.delete_endpoint(row.id)
    return Response(status_code=204)


async def rotate_secret(request: Request) -> JSONResponse:
    relay, tenant = _caller(request)
    row = await _own_webhook(relay, tenant.id, request.path_params["id"])
    body = await _body(request, relay, RotateIn, optional=True)
    if row.id in relay.loaded.endpoint_secrets:
        raise _config_defined(
            row, "its secret is set there (secret or secret_env); rotate it in the file")
    row = await relay.rotate_secret(row.id, body.grace or 0.0)
    return _answer(Rotated(secret=row.secret, previous_expires_at=_time(row.prev_secret_until)))


async def send_test(request: Request) -> JSONResponse:
    relay, tenant = _caller(request)
    row = await _own_webhook(relay, tenant.id, request.path_params["id"])
    body = await _body(request, relay, SendTestIn, optional=True)
    event_type, data = PING
    if body.type is not None:
        declared = {t.name: t for t in relay.config.event_types}
        if body.type not in declared:
            raise NotFound(f"no event type {body.type!r}; declared: "
                           + (", ".join(declared) or "none"))
        event_type, data = body.type, declared[body.type].sample
    envelope, outcome = await relay.test_send(row.id, event_type, data)
    return _answer(SendTestResult(
        success=outcome.ok, status=outcome.status, duration_ms=outcome.duration_ms,
        response_body=outcome.body.decode("utf-8", errors="replace"), error=outcome.error,
        event=Envelope(**envelope),
    ))


async def recover_webhook(request: Request) -> JSONResponse:
    relay, tenant = _caller(request)
    row = await _own_webhook(relay, tenant.id, request.path_params["id"])
    body = await _body(request, relay, RecoverIn)
    count = await relay.recover(row.id, body.since.timestamp())
    return _answer(Recovered(requeued=count), 202)


# --- deliveries --------------------------------------------------------------------------


async def list_deliveries(request: Request) -> JSONResponse:
    relay, tenant = _caller(request)
    row = await _own_webhook(relay, tenant.id, request.path_params["id"])
    query = _query(request, DeliveriesQuery)
    before = None if query.after is None else _delivery_id(query.after, "after")
    rows = await relay.store.list_deliveries(row.id, state=query.status, before=before,
                                             limit=query.limit + 1)
    page, cursor = _page(rows, query.limit, lambda d: delivery_ref(d.id))
    return _answer(Page[Delivery](data=[_delivery(d) for d in page], next=cursor))


async def _own_delivery(relay: Relay, tenant: str, ref: str) -> DeliveryRow:
    row = await relay.store.get_delivery(_delivery_id(ref), tenant)
    if row is None:
        raise NotFound(f"no delivery {ref!r}")
    return row


async def get_delivery(request: Request) -> JSONResponse:
    relay, tenant = _caller(request)
    row = await _own_delivery(relay, tenant.id, request.path_params["id"])
    attempts = await relay.store.attempts_of(row.id)
    detail = DeliveryDetail(**{**_delivery(row).model_dump(),
                               "attempts": [_attempt(a) for a in attempts]})
    return _answer(detail)


async def retry_delivery(request: Request) -> JSONResponse:
    relay, tenant = _caller(request)
    row = await _own_delivery(relay, tenant.id, request.path_params["id"])
    return _answer(_delivery(await relay.retry_delivery(row)), 202)


# --- events ------------------------------------------------------------------------------


async def list_events(request: Request) -> JSONResponse:
    relay, tenant = _caller(request)
    query = _query(request, EventsQuery)
    rows = await relay.store.list_events(tenant.id, type=query.type, before=query.after,
                                         limit=query.limit + 1)
    page, cursor = _page(rows, query.limit, lambda e: e.id)
    return _answer(Page[Event](data=[_event(e) for e in page], next=cursor))


async def _own_event(relay: Relay, tenant: str, event_id: str) -> EventRow:
    row = await relay.store.get_event(event_id, tenant)
    if row is None:
        raise NotFound(f"no event {event_id!r}")
    return row


async def get_event(request: Request) -> JSONResponse:
    relay, tenant = _caller(request)
    return _answer(_event(await _own_event(relay, tenant.id, request.path_params["id"])))


async def replay_event(request: Request) -> JSONResponse:
    relay, tenant = _caller(request)
    event = await _own_event(relay, tenant.id, request.path_params["id"])
    body = await _body(request, relay, ReplayIn, optional=True)
    targets = None
    if body.endpoints is not None:
        targets = list(dict.fromkeys(body.endpoints))  # once each, in the order given
        unknown = [
            {"path": f"endpoints[{i}]", "message": f"no webhook {eid!r} in this tenant"}
            for i, eid in enumerate(body.endpoints)
            if (ep := relay.endpoints.get(eid)) is None or ep.tenant != tenant.id
        ]
        if unknown:
            raise Unprocessable("the request has invalid fields", unknown)
    rows = await relay.replay(event, targets)
    return _answer(Replayed(deliveries=[_delivery(d) for d in rows]), 202)


# --- event types -------------------------------------------------------------------------


async def list_event_types(request: Request) -> JSONResponse:
    relay, _ = _caller(request)
    types = [EventType(name=t.name, description=t.description, sample=t.sample,
                       schema=t.json_schema)
             for t in relay.config.event_types]
    return _answer(Page[EventType](data=types, next=None))


async def event_type_sample(request: Request) -> JSONResponse:
    relay, _ = _caller(request)
    name = request.path_params["name"]
    for event_type in relay.config.event_types:
        if event_type.name == name:
            return _answer(Sample(type=name, data=event_type.sample))
    raise NotFound(f"no event type {name!r}")
