"""/api/v1/app/{app_id}/endpoint...: Svix's endpoints over relay's webhook operations.

An endpoint created (or created by an upsert) here is signed and shaped as Svix sends:
`signature = "svix"`, `payload = "data"`; one made elsewhere keeps its own and is
listed too. Mapping (docs/svix.md): description = name, eventTypes = events (none: `*`),
throttleRate = rate_limit, disabled = not is_active (held, as relay holds a disabled
endpoint's deliveries), uid, metadata, channels, headers, secret as given.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter, ValidationError
from starlette.responses import JSONResponse, Response

from relay.api.svix import convert, pages
from relay.api.svix.calls import Call
from relay.api.svix.errors import Invalid, problem
from relay.api.svix.models import (
    EndpointFields,
    EndpointPatch,
    HeadersIn,
    HeadersOut,
    HeadersPatch,
    ListQuery,
    Out,
    RecoverIn,
    RecoverOut,
    RotateIn,
    SecretOut,
)
from relay.config.endpoints import Headers
from relay.errors import NotFound
from relay.ids import ulid
from relay.models import Webhook, webhook_of
from relay.operations import Operations
from relay.runtime import timestamp

# Svix's own (what it sends and reads): header names its endpoints' headers never show.
SENSITIVE = frozenset({"authorization", "x-api-key", "x-auth-token", "www-authenticate",
                       "proxy-authenticate", "proxy-authorization"})
_HEADERS: TypeAdapter[dict[str, str]] = TypeAdapter(Headers)
_ID_PREFIX = "ep_"  # relay's endpoint ids: a uid may not look like one


def answer(model: Out, status: int = 200) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json"), status_code=status)


def known_types(operations: Operations, names: list[str] | None) -> None:
    """The event types an endpoint names must exist when relay declares any (without
    declared types, as ingest, every name is a type)."""
    declared = {t.name for t in operations.event_types()}
    if not names or not operations.relay.config.event_types:
        return
    if missing := [n for n in names if n not in declared]:
        raise Invalid([problem("body", ["eventTypes"], "The following event types don't "
                               f"exist: {', '.join(missing)}")])


def _uid(uid: str | None) -> str | None:
    if uid is not None and uid.startswith(_ID_PREFIX):
        raise Invalid([problem("body", ["uid"], f"a uid may not start with {_ID_PREFIX!r} "
                               "(relay's endpoint ids do)")])
    return uid


def _secret(secret: str | None) -> str | None:
    """Svix takes a secret with or without `whsec_`; relay stores it with."""
    return secret if secret is None or secret.startswith("whsec_") else f"whsec_{secret}"


def _settings(given: EndpointFields | EndpointPatch, fields: set[str]) -> dict[str, Any]:
    """The relay webhook fields of the Svix fields sent (`fields`), by relay's names: a
    null clears uid, throttleRate, eventTypes (every type), channels and metadata, and
    changes nothing else (a URL cannot be cleared)."""
    out: dict[str, Any] = {}
    for svix, relay_name in (("event_types", "events"), ("channels", "channels"),
                             ("throttle_rate", "rate_limit"), ("uid", "uid")):
        if svix in fields:
            out[relay_name] = getattr(given, svix)
    if "metadata" in fields:
        out["metadata"] = given.metadata or {}
    for svix, relay_name in (("url", "url"), ("description", "name")):
        if svix in fields and getattr(given, svix) is not None:
            out[relay_name] = getattr(given, svix)
    if "disabled" in fields and given.disabled is not None:
        out["is_active"] = not given.disabled
    return out


async def _create(operations: Operations, given: EndpointFields, uid: str | None,
                  ) -> Webhook:
    known_types(operations, given.event_types)
    created = await operations.create(given.description, {
        "url": given.url, "events": given.event_types, "channels": given.channels,
        "headers": given.headers or {}, "rate_limit": given.throttle_rate,
        "signature": "svix", "payload": "data"},
        secret=_secret(given.secret), uid=_uid(uid), metadata=given.metadata)
    if given.disabled:
        return await operations.change(created.id, {"is_active": False})
    return created


async def list_endpoints(call: Call) -> Response:
    operations = call.operations(call.path("app_id"))
    query = call.query(ListQuery)
    order = pages.order(query, "descending")
    rows = await operations.store.list_endpoints(operations.tenant.id)
    if order == "descending":
        rows.reverse()
    scope = f"svix endpoints {operations.tenant.id} {order}"
    found, position, more = await pages.scan(
        pages.in_memory(rows, lambda r: r.id), lambda r: True, lambda r: r.id,
        await pages.start(call.relay, scope, query.iterator), query.limit)
    data = [convert.endpoint_out(webhook_of(row, 0)) for row in found]
    return answer(await pages.answer(call.relay, scope, data, position, more))


async def create_endpoint(call: Call) -> Response:
    operations = call.operations(call.path("app_id"))
    given = call.parse(EndpointFields)
    return answer(convert.endpoint_out(await _create(operations, given, given.uid)), 201)


async def get_endpoint(call: Call) -> Response:
    operations = call.operations(call.path("app_id"))
    return answer(convert.endpoint_out(await operations.webhook(call.path("endpoint_id"))))


async def update_endpoint(call: Call) -> Response:
    """PUT: every field replaced (the uid kept when none is sent; headers and the secret
    are not among Svix's fields here); a missing endpoint is created, its uid the one
    sent or else the path's (docs/svix.md, A7)."""
    operations = call.operations(call.path("app_id"))
    ref = call.path("endpoint_id")
    given = call.parse(EndpointFields)
    try:
        row = await operations.own_webhook(ref)
    except NotFound:
        uid = given.uid or ref
        return answer(convert.endpoint_out(await _create(operations, given, uid)), 201)
    known_types(operations, given.event_types)
    fields = set(EndpointFields.model_fields) - {"headers", "secret"}
    if "uid" not in given.model_fields_set:
        fields.discard("uid")
    changes = _settings(given, fields)
    _uid(changes.get("uid"))
    return answer(convert.endpoint_out(await operations.change(row.id, changes)))


async def patch_endpoint(call: Call) -> Response:
    operations = call.operations(call.path("app_id"))
    row = await operations.own_webhook(call.path("endpoint_id"))
    given = call.parse(EndpointPatch)
    if "event_types" in given.model_fields_set:
        known_types(operations, given.event_types)
    changes = _settings(given, set(given.model_fields_set))
    _uid(changes.get("uid"))
    return answer(convert.endpoint_out(await operations.change(row.id, changes)))


async def delete_endpoint(call: Call) -> Response:
    await call.operations(call.path("app_id")).delete(call.path("endpoint_id"))
    return Response(status_code=204)


async def get_secret(call: Call) -> Response:
    operations = call.operations(call.path("app_id"))
    secret = await operations.secret(call.path("endpoint_id"))
    return answer(SecretOut(key=secret.secret))


async def rotate_secret(call: Call) -> Response:
    """Svix's default grace is 24 h (relay's own API's: none); the answer is the new key
    (docs/svix.md, A8)."""
    operations = call.operations(call.path("app_id"))
    row = await operations.own_webhook(call.path("endpoint_id"))
    given = call.parse(RotateIn)
    rotated = await operations.rotate(row.id, float(given.grace_period_seconds),
                                      _secret(given.key))
    return answer(SecretOut(key=rotated.secret))


async def get_headers(call: Call) -> Response:
    operations = call.operations(call.path("app_id"))
    headers = (await operations.own_webhook(call.path("endpoint_id"))).spec.headers
    return answer(HeadersOut(
        headers={k: v for k, v in headers.items() if k.lower() not in SENSITIVE},
        sensitive=[k for k in headers if k.lower() in SENSITIVE]))


async def _set_headers(operations: Operations, webhook_id: str,
                       headers: dict[str, str]) -> Response:
    """Set an endpoint's headers, checked as relay checks them (422 at headers.NAME)."""
    try:
        checked = _HEADERS.validate_python(headers)
    except ValidationError as exc:
        raise Invalid([problem("body", ["headers", *e["loc"]], e["msg"])
                       for e in exc.errors(include_url=False)]) from None
    await operations.change(webhook_id, {"headers": checked})
    return Response(status_code=204)


async def put_headers(call: Call) -> Response:
    operations = call.operations(call.path("app_id"))
    row = await operations.own_webhook(call.path("endpoint_id"))
    return await _set_headers(operations, row.id, call.parse(HeadersIn).headers)


async def patch_headers(call: Call) -> Response:
    """Merged into the endpoint's: a null value, or a name in deleteHeaders, removes one
    (names compared ignoring case, as HTTP does)."""
    operations = call.operations(call.path("app_id"))
    row = await operations.own_webhook(call.path("endpoint_id"))
    given = call.parse(HeadersPatch)
    gone = {k.lower() for k, v in given.headers.items() if v is None}
    gone |= {k.lower() for k in given.delete_headers}
    changed = {k.lower() for k in given.headers}
    merged = {k: v for k, v in row.spec.headers.items()
              if k.lower() not in gone and k.lower() not in changed}
    merged |= {k: v for k, v in given.headers.items() if v is not None}
    return await _set_headers(operations, row.id, merged)


async def recover(call: Call) -> Response:
    """Svix answers a background task; relay requeues at once, so it is finished."""
    operations = call.operations(call.path("app_id"))
    row = await operations.own_webhook(call.path("endpoint_id"))
    given = call.parse(RecoverIn)
    await operations.recover(row.id, given.since.timestamp(),
                             None if given.until is None else given.until.timestamp())
    now = call.relay.clock()
    return answer(RecoverOut(id=f"qtask_{ulid(now)}", status="finished",
                             updated_at=timestamp(now)), 202)
