"""GET /openapi.json: the OpenAPI 3.1 document of every route.

Schemas come from the pydantic models the routes validate requests with and build answers
from (`model_json_schema`), so the document cannot drift from the code; the table below
adds what a model cannot say: paths, scopes and which statuses each route can answer.
tests/integration/test_openapi.py checks it covers every route and runs schemathesis
against a live relay with it.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Literal, cast

from pydantic import BaseModel, Field
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from starlette.requests import Request
from starlette.responses import JSONResponse

from relay import __version__
from relay import directory_models as dm
from relay import models as wh
from relay.api import ingest, portal
from relay.api.described import Op
from relay.api.svix import openapi as svix
from relay.config import Scope
from relay.models import Page

# --- the models only this document needs (answers built as plain dicts elsewhere) --------


class ErrorInfo(BaseModel):
    code: str
    message: str
    details: list[Any]


class Error(BaseModel):
    """Every error answer: relay.server.error_body."""

    error: ErrorInfo


class Accepted(BaseModel):
    """relay.api.ingest._answer."""

    id: str
    type: str
    timestamp: wh.Time
    deliveries: int


class BatchAccepted(BaseModel):
    events: list[Accepted]


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready"]
    warnings: list[str] | None = Field(
        None, description="Present while ready but short of something: free space for "
        "the SQLite database under [storage] min_free_space.")


class NotReady(BaseModel):
    status: Literal["unavailable"]
    problems: list[str]


_ERRORS = {
    400: "The body is not valid JSON; the Host header is missing (the probes allow that), "
         "repeated or not HOST[:PORT]; on a "
         "list, `after` is not a cursor relay handed to this caller for it "
         "(`invalid_cursor`).",
    401: "Missing, unknown or expired API key.",
    403: "The key lacks the scope, webhooks are disabled for the tenant, or the request "
         "came from another site's page (`origin_not_allowed`).",
    404: "No such object in the caller's tenant.",
    409: "Conflicts with the current state (the message says which).",
    413: "The body is larger than server.max_body_bytes.",
    415: "The body is not JSON.",
    421: "The Host header names a host relay does not serve ([server] allowed_hosts).",
    422: "Invalid fields; `details` names each with its path.",
    429: "A limit was reached, or too many failed API keys came from this address "
         "(`too_many_auth_failures`: see Retry-After).",
    503: "relay is shutting down, or its database refused the operation.",
}
_BODY_ERRORS = (400, 413, 415, 422)
_PATH_PATTERNS = {"/v1/events/{id}": "^evt_[0-9a-z]+$"}  # the route's `event_id` convertor

_R: Scope = "webhooks:read"
_W: Scope = "webhooks:write"
_WEBHOOK = "/v1/webhooks/{id}"

OPERATIONS: tuple[Op, ...] = (
    Op("post", "/v1/events", "Ingest one event", {
        202: ("Stored with one delivery per matching webhook.", Accepted),
        200: ("A repeated idempotency key: the original event; nothing created.", Accepted),
    }, "events:write", ingest.EventBody, errors=(409, 429), tags=("ingest",)),
    Op("post", "/v1/events/batch", "Ingest up to 500 events, all or nothing", {
        202: ("Stored.", BatchAccepted),
        200: ("Every event repeats an idempotency key; nothing created.", BatchAccepted),
    }, "events:write", ingest.BatchBody, errors=(409, 429), tags=("ingest",)),
    Op("get", "/v1/events", "List the tenant's events, newest first", {
        200: ("A page of events.", Page[wh.Event]),
    }, _R, query=wh.EventsQuery, tags=("events",)),
    Op("get", "/v1/events/{id}", "Get an event", {200: ("The event.", wh.Event)}, _R,
       tags=("events",)),
    Op("post", "/v1/events/{id}/replay", "Send an event again (same webhook-id)", {
        202: ("The new deliveries.", wh.Replayed),
    }, _W, wh.ReplayIn, body_required=False, errors=(409,), tags=("events",)),
    Op("get", "/v1/webhooks", "List the tenant's webhooks", {
        200: ("A page of webhooks.", Page[wh.Webhook]),
    }, _R, query=wh.PageQuery, tags=("webhooks",)),
    Op("post", "/v1/webhooks", "Create a webhook", {
        201: ("Created; `secret` is shown only here.", wh.WebhookCreated),
    }, _W, wh.WebhookIn, errors=(429,), tags=("webhooks",)),
    Op("get", _WEBHOOK, "Get a webhook", {200: ("The webhook.", wh.Webhook)}, _R,
       tags=("webhooks",)),
    Op("patch", _WEBHOOK, "Change, pause, resume or re-enable a webhook", {
        200: ("The webhook as changed.", wh.Webhook),
    }, _W, wh.WebhookPatch, errors=(409,), tags=("webhooks",)),
    Op("delete", _WEBHOOK, "Delete a webhook; its unfinished deliveries are cancelled", {
        204: ("Deleted.", None),
    }, _W, errors=(409,), tags=("webhooks",)),
    Op("post", f"{_WEBHOOK}/rotate-secret", "Rotate the signing secret", {
        200: ("The new secret.", wh.Rotated),
    }, _W, wh.RotateIn, body_required=False, errors=(409,), tags=("webhooks",)),
    Op("get", f"{_WEBHOOK}/secret", "Reveal the signing secret (logged)", {
        200: ("The current secret.", wh.Secret),
    }, _W, tags=("webhooks",)),
    Op("post", f"{_WEBHOOK}/test", "Send a test event now and answer the attempt's result", {
        200: ("The attempt's result (success or not).", wh.SendTestResult),
    }, _W, wh.SendTestIn, body_required=False, tags=("webhooks",)),
    Op("post", f"{_WEBHOOK}/recover", "Send again the deliveries that failed since a time", {
        202: ("How many were queued again.", wh.Recovered),
    }, _W, wh.RecoverIn, errors=(409,), tags=("webhooks",)),
    Op("get", f"{_WEBHOOK}/deliveries", "List a webhook's deliveries, newest first", {
        200: ("A page of deliveries.", Page[wh.Delivery]),
    }, _R, query=wh.DeliveriesQuery, tags=("deliveries",)),
    Op("get", "/v1/deliveries/{id}", "Get a delivery with its attempts", {
        200: ("The delivery; `attempts` lists every attempt.", wh.DeliveryDetail),
    }, _R, tags=("deliveries",)),
    Op("post", "/v1/deliveries/{id}/retry", "Send a finished delivery again now", {
        202: ("The delivery, pending again (held while its webhook is paused).", wh.Delivery),
    }, _W, errors=(409,), tags=("deliveries",)),
    Op("post", "/v1/deliveries/{id}/cancel", "Stop an unfinished delivery", {
        200: ("The delivery, cancelled (an attempt in flight is still recorded); behind "
              "an ordered webhook's head, the next one goes.", wh.Delivery),
    }, _W, errors=(409,), tags=("deliveries",)),
    Op("get", "/v1/event-types", "List the event types: the config file's, the API's, "
       "relay's own", {
        200: ("A page of event types; `source` says where each is defined.",
              Page[wh.EventType]),
    }, _R, query=wh.PageQuery, tags=("event types",)),
    Op("post", "/v1/event-types", "Create an event type; ingest checks its schema at once", {
        201: ("The event type.", wh.EventType),
    }, "admin", wh.EventTypeIn, errors=(409,), tags=("event types",)),
    Op("get", "/v1/event-types/{name}", "Get an event type", {
        200: ("The event type.", wh.EventType),
    }, _R, tags=("event types",)),
    Op("patch", "/v1/event-types/{name}", "Change or deprecate an event type", {
        200: ("The event type as changed.", wh.EventType),
    }, "admin", wh.EventTypePatch, errors=(409,), tags=("event types",)),
    Op("delete", "/v1/event-types/{name}", "Delete an event type made through the API", {
        204: ("Deleted.", None),
    }, "admin", errors=(409,), tags=("event types",)),
    Op("get", "/v1/event-types/{name}/sample", "An event type's sample data", {
        200: ("The sample.", wh.Sample),
    }, _R, tags=("event types",)),
    Op("post", "/v1/portal-sessions", "A signed, expiring link to one tenant's portal", {
        201: ("The link; anyone holding it acts in the tenant until it expires.",
              portal.PortalSession),
    }, "admin", portal.PortalSessionIn, tags=("portal",)),
    Op("get", "/v1/tenants", "List the tenants: the config file's, then those made here", {
        200: ("A page of tenants.", Page[dm.TenantOut]),
    }, "admin", query=wh.PageQuery, tags=("tenants",)),
    Op("post", "/v1/tenants", "Create a tenant", {
        201: ("Created; usable on every relay sharing the database within a second.",
              dm.TenantOut),
    }, "admin", dm.TenantIn, errors=(409,), tags=("tenants",)),
    Op("get", "/v1/tenants/{id}", "Get a tenant", {200: ("The tenant.", dm.TenantOut)},
       "admin", tags=("tenants",)),
    Op("patch", "/v1/tenants/{id}", "Change a tenant made through the API", {
        200: ("The tenant as changed.", dm.TenantOut),
    }, "admin", dm.TenantPatch, errors=(409,), tags=("tenants",)),
    Op("delete", "/v1/tenants/{id}", "Delete a tenant made through the API, its webhooks "
       "(unfinished deliveries cancelled) and API keys; its events stay until retention", {
        204: ("Deleted.", None),
    }, "admin", errors=(409,), tags=("tenants",)),
    Op("get", "/v1/api-keys", "List the API keys (never the keys themselves)", {
        200: ("A page of keys: the config file's, then those made here.",
              Page[dm.ApiKeyOut]),
    }, "admin", query=dm.ApiKeysQuery, tags=("api keys",)),
    Op("post", "/v1/api-keys", "Create an API key", {
        201: ("Created; `key` is shown only here.", dm.ApiKeyCreated),
    }, "admin", dm.ApiKeyIn, tags=("api keys",)),
    Op("delete", "/v1/api-keys/{id}", "Revoke an API key made through the API", {
        204: ("Revoked: refused by every relay sharing the database within a second.", None),
    }, "admin", tags=("api keys",)),
    Op("get", "/healthz", "Liveness", {200: ("The process serves HTTP.", Health)},
       tags=("operations",)),
    Op("get", "/readyz", "Readiness", {
        200: ("Ready to take events (with `warnings` if free space is short).", Ready),
        503: ("Not started, shutting down, or the last database write failed.", NotReady),
    }, tags=("operations",)),
    Op("get", "/metrics", "Prometheus metrics", {
        200: ("Prometheus text format.", None),
    }, errors=(503,), media_type="text/plain", tags=("operations",)),
    Op("get", "/openapi.json", "This document", {200: ("OpenAPI 3.1.", None)},
       tags=("operations",)),
    *svix.OPERATIONS,
)


Refs = dict[tuple[type[BaseModel], JsonSchemaMode], dict[str, Any]]  # model, mode -> $ref


def _no_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema: absent, never null."""
    options = [s for s in schema.get("anyOf", []) if s.get("type") != "null"]
    if len(options) != 1:
        return schema
    rest = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
    return {**options[0], **rest}


def _parameters(op: Op) -> list[dict[str, Any]]:
    params = [
        {"name": name, "in": "path", "required": True,
         "schema": {"type": "string", "minLength": 1}
         | ({"pattern": _PATH_PATTERNS[op.path]} if op.path in _PATH_PATTERNS else {})}
        for name in re.findall(r"{(\w+)}", op.path)
    ]
    if op.query is not None:
        props = op.query.model_json_schema()["properties"]
        for name, schema in props.items():
            params.append({"name": name, "in": "query", "required": False,
                           "description": schema.get("description", ""),
                           "schema": _no_null(schema)})
    return params


def _errors(op: Op, refs: Refs) -> dict[str, Any]:
    """The error answers an operation can give, in its dialect's shape."""
    statuses = set(op.errors) | {400, 421}  # Host checks (relay.server.HostAndOrigin)
    if op.scope is not None:
        statuses |= {401, 403, 429, 503}
    if "{" in op.path:
        statuses.add(404)
    if op.body is not None:
        statuses |= set(svix.BODY_ERRORS if op.dialect == "svix" else _BODY_ERRORS)
    if op.query is not None:
        statuses.add(422)
        if "after" in op.query.model_fields:
            statuses.add(400)
    out = {}
    for status in sorted(statuses - set(op.answers)):
        if op.dialect == "svix":
            description, model = svix.error(status)
        else:
            description, model = _ERRORS[status], Error
        out[str(status)] = {"description": description, "content": {
            "application/json": {"schema": refs[model, "serialization"]}}}
    return out


def _operation(op: Op, refs: Refs) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, (description, model) in sorted(op.answers.items()):
        answer: dict[str, Any] = {"description": description}
        if model is not None:
            answer["content"] = {op.media_type: {"schema": refs[model, "serialization"]}}
        elif op.media_type != "application/json" or status != 204:
            answer["content"] = {op.media_type: {"schema": {}}}
        responses[str(status)] = answer
    responses.update(_errors(op, refs))
    operation: dict[str, Any] = {
        "operationId": f"{op.method}_{re.sub(r'[^a-z0-9]+', '_', op.path.lower()).strip('_')}",
        "summary": op.summary,
        "tags": list(op.tags),
        "parameters": _parameters(op),
        "responses": responses,
        "security": [{"bearer": []}] if op.scope else [],
    }
    if op.scope is not None:
        operation["description"] = f"Scope: `{op.scope}`" + (
            "." if op.scope == "admin" else " (or `admin`).")
    if op.body is not None:
        operation["requestBody"] = {
            "required": op.body_required,
            "content": {"application/json": {"schema": refs[op.body, "validation"]}},
        }
    return operation


@functools.cache
def document() -> dict[str, Any]:
    errors: tuple[type[BaseModel], ...] = (Error, *svix.ERROR_MODELS)
    wanted: set[tuple[type[BaseModel], JsonSchemaMode]] = {
        (model, "serialization") for model in errors}
    for op in OPERATIONS:
        wanted |= {(model, "serialization") for _, model in op.answers.values() if model}
        if op.body is not None:
            wanted.add((op.body, "validation"))
    # Only models were passed, so `refs` is keyed by models (`cast` below).
    refs, defs = models_json_schema(
        sorted(wanted, key=lambda item: (item[0].__name__, item[1])),
        ref_template="#/components/schemas/{model}",
    )
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op, cast(Refs, refs))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "relay",
            "version": __version__,
            "description": "Self-hosted webhook relay: ingest events, manage webhooks, "
            "inspect and re-send deliveries; under /api/v1, Svix's API (docs/svix.md). "
            "Without configured API keys (loopback only) every caller is an admin of "
            "tenant `default`.",
        },
        "paths": paths,
        "components": {
            "schemas": defs["$defs"],
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


async def serve(request: Request) -> JSONResponse:
    return JSONResponse(document())
