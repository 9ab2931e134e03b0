"""/api/v1 in /openapi.json: each served Svix route with its scope, shapes and statuses
(the table relay.api.openapi builds the document from, beside relay's own), and Svix's
two error shapes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from relay.api.described import Op
from relay.api.svix import models as m
from relay.config import Scope


class HttpErrorOut(BaseModel):
    """Every /api/v1 error but 422: relay.api.svix.errors."""

    code: str
    detail: str


class ValidationError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class HTTPValidationError(BaseModel):
    """A 422 of /api/v1: each problem's location (body, query or header, then the
    fields as sent), message and type."""

    detail: list[ValidationError]


ERROR_MODELS: tuple[type[BaseModel], ...] = (HttpErrorOut, HTTPValidationError)
BODY_ERRORS = (413, 422)  # a body is JSON whatever its content-type: no 415; bad JSON: 422
_ERRORS = {
    400: "The Host header is missing, repeated or not HOST[:PORT].",
    401: "Missing or unknown API key (`authentication_failed`).",
    403: "The key lacks the scope, the application's webhooks are disabled, or the "
         "request came from another site's page.",
    404: "No such object in the applications the key may see.",
    409: "Conflicts with the current state, or the idempotency-key was used for another "
         "request or is being answered.",
    413: "The body is larger than server.max_body_bytes.",
    421: "The Host header names a host relay does not serve ([server] allowed_hosts).",
    422: "Invalid fields, each with its location.",
    429: "A limit was reached, or too many failed API keys came from this address.",
    503: "relay is shutting down, or its database refused the operation.",
}


def error(status: int) -> tuple[str, type[BaseModel]]:
    return _ERRORS[status], HTTPValidationError if status == 422 else HttpErrorOut


_R: Scope = "webhooks:read"
_W: Scope = "webhooks:write"
_APP = "/api/v1/app/{app_id}"
_EP = f"{_APP}/endpoint/{{endpoint_id}}"
_MSG = f"{_APP}/msg/{{msg_id}}"
_TYPE = "/api/v1/event-type/{event_type_name}"


def _op(method: str, path: str, summary: str, answers: dict[int, Any], scope: Scope | None,
        *tags: str, **rest: Any) -> Op:
    errors = rest.pop("errors", ()) + ((409,) if method == "post" else ())
    return Op(method, path, summary, answers, scope, errors=errors, tags=("svix", *tags),
              dialect="svix", **rest)


OPERATIONS: tuple[Op, ...] = (
    _op("get", "/api/v1/health", "Health", {204: ("Serving.", None)}, None),
    _op("get", "/api/v1/app", "List applications (tenants)", {
        200: ("A page.", m.ListResponse[m.ApplicationOut])}, _R, "applications",
        query=m.ListQuery),
    _op("post", "/api/v1/app", "Create an application (a tenant)", {
        201: ("Created.", m.ApplicationOut),
        200: ("The application with that uid (`get_if_exists=true`).", m.ApplicationOut)},
        "admin", "applications", body=m.ApplicationIn, query=m.CreateQuery),
    _op("get", _APP, "Get an application", {200: ("The application.", m.ApplicationOut)},
        _R, "applications"),
    _op("put", _APP, "Update or create an application", {
        200: ("Updated.", m.ApplicationOut), 201: ("Created.", m.ApplicationOut)}, "admin",
        "applications", body=m.ApplicationIn, errors=(409,)),
    _op("patch", _APP, "Change an application's fields sent", {
        200: ("Changed.", m.ApplicationOut)}, "admin", "applications",
        body=m.ApplicationPatch, errors=(409,)),
    _op("delete", _APP, "Delete an application: its endpoints and keys; its messages stay "
        "until retention", {204: ("Deleted.", None)}, "admin", "applications",
        errors=(409,)),
    _op("get", "/api/v1/event-type", "List event types", {
        200: ("A page.", m.ListResponse[m.EventTypeOut])}, _R, "event types",
        query=m.EventTypesQuery),
    _op("post", "/api/v1/event-type", "Create an event type (or bring back an archived one)",
        {201: ("Created.", m.EventTypeOut)}, "admin", "event types", body=m.EventTypeIn),
    _op("get", _TYPE, "Get an event type", {200: ("The event type.", m.EventTypeOut)}, _R,
        "event types", query=m.EventTypeQuery),
    _op("put", _TYPE, "Update or create an event type", {
        200: ("Updated.", m.EventTypeOut), 201: ("Created.", m.EventTypeOut)}, "admin",
        "event types", body=m.EventTypeUpsert, errors=(409,)),
    _op("patch", _TYPE, "Change an event type's fields sent", {
        200: ("Changed.", m.EventTypeOut)}, "admin", "event types", body=m.EventTypePatch,
        errors=(409,)),
    _op("delete", _TYPE, "Archive an event type (`expunge=true`: delete it)", {
        204: ("Archived or deleted.", None)}, "admin", "event types", query=m.ExpungeQuery,
        errors=(409,)),
    _op("get", f"{_APP}/endpoint", "List endpoints, newest first", {
        200: ("A page.", m.ListResponse[m.EndpointOut])}, _R, "endpoints", query=m.ListQuery),
    _op("post", f"{_APP}/endpoint", "Create an endpoint", {
        201: ("Created.", m.EndpointOut)}, _W, "endpoints", body=m.EndpointFields,
        errors=(429,)),
    _op("get", _EP, "Get an endpoint (id or uid)", {200: ("The endpoint.", m.EndpointOut)},
        _R, "endpoints"),
    _op("put", _EP, "Update or create an endpoint", {
        200: ("Updated.", m.EndpointOut), 201: ("Created.", m.EndpointOut)}, _W,
        "endpoints", body=m.EndpointFields, errors=(409, 429)),
    _op("patch", _EP, "Change an endpoint's fields sent", {
        200: ("Changed.", m.EndpointOut)}, _W, "endpoints", body=m.EndpointPatch,
        errors=(409,)),
    _op("delete", _EP, "Delete an endpoint", {204: ("Deleted.", None)}, _W, "endpoints",
        errors=(409,)),
    _op("get", f"{_EP}/secret", "Reveal the signing secret (logged)", {
        200: ("The secret.", m.SecretOut)}, _W, "endpoints"),
    _op("post", f"{_EP}/secret/rotate", "Rotate the signing secret", {
        200: ("The new secret.", m.SecretOut)}, _W, "endpoints", body=m.RotateIn,
        body_required=False),
    _op("get", f"{_EP}/headers", "Get an endpoint's headers", {
        200: ("Its headers; sensitive ones named only.", m.HeadersOut)}, _R, "endpoints"),
    _op("put", f"{_EP}/headers", "Replace an endpoint's headers", {204: ("Set.", None)}, _W,
        "endpoints", body=m.HeadersIn, errors=(409,)),
    _op("patch", f"{_EP}/headers", "Change some of an endpoint's headers", {
        204: ("Set.", None)}, _W, "endpoints", body=m.HeadersPatch, errors=(409,)),
    _op("post", f"{_EP}/recover", "Send again what failed since a time", {
        202: ("Requeued.", m.RecoverOut)}, _W, "endpoints", body=m.RecoverIn),
    _op("post", f"{_EP}/send-example", "Send an example message to the endpoint", {
        202: ("The message.", m.MessageOut)}, _W, "endpoints", body=m.ExampleIn),
    _op("get", f"{_APP}/msg", "List messages, newest first", {
        200: ("A page.", m.ListResponse[m.MessageOut])}, _R, "messages",
        query=m.MessagesQuery),
    _op("post", f"{_APP}/msg", "Create a message", {202: ("Accepted.", m.MessageOut)},
        "events:write", "messages", body=m.MessageIn, query=m.ContentQuery,
        errors=(429,)),
    _op("get", _MSG, "Get a message (id or eventId)", {200: ("The message.", m.MessageOut)},
        _R, "messages", query=m.ContentQuery),
    _op("get", f"{_APP}/attempt/endpoint/{{endpoint_id}}", "List an endpoint's attempts", {
        200: ("A page.", m.ListResponse[m.AttemptOut])}, _R, "attempts",
        query=m.AttemptsQuery),
    _op("get", f"{_APP}/attempt/msg/{{msg_id}}", "List a message's attempts", {
        200: ("A page.", m.ListResponse[m.AttemptOut])}, _R, "attempts",
        query=m.AttemptsQuery),
    _op("get", f"{_MSG}/attempt/{{attempt_id}}", "Get an attempt", {
        200: ("The attempt.", m.AttemptOut)}, _R, "attempts", query=m.ContentQuery),
    _op("post", f"{_MSG}/endpoint/{{endpoint_id}}/resend", "Send a message again to one "
        "endpoint", {202: ("Queued.", m.Empty)}, _W, "attempts"),
    _op("post", "/api/v1/auth/app-portal-access/{app_id}", "A link to the tenant's portal", {
        200: ("The link and its token.", m.PortalOut)}, "admin", "portal", body=m.PortalIn,
        body_required=False),
)
