"""POST /v1/events and /v1/events/batch: validate, store, answer after the commit."""

from __future__ import annotations

import math
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)
from starlette.requests import Request
from starlette.responses import JSONResponse

from relay.auth import Principal, authenticate, tenant_for
from relay.config.values import TYPE_RE, NoControls, Text, key_path
from relay.delivery.operational import is_operational
from relay.errors import BadRequest, PayloadTooLarge, Unprocessable, UnsupportedMediaType
from relay.models import invalid
from relay.runtime import EventIn, Relay, timestamp
from relay.types import Ingested

MAX_BATCH = 500
_M = TypeVar("_M", bound=BaseModel)
# An idempotency key: the body's `id` or the Idempotency-Key header.
IdempotencyKey = Annotated[str, StringConstraints(min_length=1, max_length=255), NoControls]
_IDEMPOTENCY_KEY: TypeAdapter[str] = TypeAdapter(IdempotencyKey)


def finite(data: dict[str, Any]) -> dict[str, Any]:
    """An event's data, refused if a number in it is not finite: 1e400 parses as infinity,
    which JSON cannot carry on to receivers."""
    stack: list[Any] = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("numbers must be finite (1e400 overflows)")
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return data


class EventBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Annotated[str, StringConstraints(pattern=TYPE_RE, max_length=128)]
    data: Annotated[dict[str, Any], AfterValidator(finite)]
    id: IdempotencyKey | None = None
    tenant: Text | None = None


class BatchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[EventBody] = Field(min_length=1, max_length=MAX_BATCH)


async def read_body(request: Request, limit: int) -> bytes:
    """The raw JSON body: 415 unless JSON, 413 past `limit` (before reading all of it)."""
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaType(
            f"the body must be JSON with Content-Type: application/json "
            f"(got {content_type or 'no Content-Type'})"
        )
    return await read_limited(request, limit)


async def read_limited(request: Request, limit: int) -> bytes:
    """The raw body, 413 past `limit` (before reading all of it)."""
    too_large = f"the body is larger than {limit} bytes (server.max_body_bytes)"
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(too_large)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(too_large)
        chunks.append(chunk)
    return b"".join(chunks)


def parse(model: type[_M], body: bytes) -> _M:
    """400 for malformed JSON, 422 with every invalid field's path otherwise."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        if any(e["type"] == "json_invalid" for e in errors):
            raise BadRequest(f"the body is not valid JSON: {errors[0]['msg']}") from None
        raise invalid(exc) from None


def _event_in(relay: Relay, principal: Principal, body: EventBody, where: str,
              idem_header: str | None) -> EventIn:
    tenant = tenant_for(principal, body.tenant, relay.directory, f"{where}tenant")
    if is_operational(body.type):
        raise Unprocessable("the request has invalid fields", [{
            "path": f"{where}type",
            "message": f"{body.type!r}: types starting with 'relay.' are relay's own "
            "operational events (docs/operational-events.md)",
        }])
    declared = relay.directory.enforced  # the file's and data's, schemas compiled
    if declared:
        event_type = declared.get(body.type)
        if event_type is None:
            raise Unprocessable("the request has invalid fields", [{
                "path": f"{where}type",
                "message": f"unknown event type {body.type!r}; declared types: "
                + ", ".join(declared),
            }])
        if event_type.validator is not None:
            violations = [
                {"path": where + key_path(("data", *e.instance_path)), "message": e.message}
                for e in event_type.validator.iter_errors(body.data)]
            if violations:
                raise Unprocessable(f"data does not match the schema of {body.type}",
                                    violations)
    if body.id is not None and idem_header is not None and body.id != idem_header:
        raise Unprocessable("the request has invalid fields", [{
            "path": f"{where}id", "message": "differs from the Idempotency-Key header",
        }])
    return EventIn(body.type, body.data, tenant.id, body.id or idem_header)


def _answer(result: Ingested) -> dict[str, Any]:
    return {"id": result.id, "type": result.type, "timestamp": timestamp(result.created_at),
            "deliveries": result.deliveries}


def _idempotency_header(request: Request) -> str | None:
    """The Idempotency-Key header, held to the rules of the body's `id`."""
    value = request.headers.get("idempotency-key")
    if value is None:
        return None
    try:
        return _IDEMPOTENCY_KEY.validate_python(value)
    except ValidationError as exc:
        raise Unprocessable("the request has invalid fields", [
            {"path": "Idempotency-Key", "message": e["msg"].removeprefix("Value error, ")}
            for e in exc.errors(include_url=False)]) from None


async def post_event(request: Request) -> JSONResponse:
    relay: Relay = request.app.state.relay
    principal = authenticate(request, relay.directory, "events:write")
    body = parse(EventBody, await read_body(request, relay.config.server.max_body_bytes))
    event = _event_in(relay, principal, body, "", _idempotency_header(request))
    [result] = await relay.ingest([event])
    return JSONResponse(_answer(result), status_code=200 if result.duplicate else 202)


async def post_batch(request: Request) -> JSONResponse:
    relay: Relay = request.app.state.relay
    principal = authenticate(request, relay.directory, "events:write")
    body = parse(BatchBody, await read_body(request, relay.config.server.max_body_bytes))
    events, problems = [], []
    for i, ev in enumerate(body.events):  # every bad event named, none stored
        try:
            events.append(_event_in(relay, principal, ev, f"events[{i}].", None))
        except Unprocessable as exc:
            problems.extend(exc.details)
    if problems:
        raise Unprocessable("the request has invalid fields", problems)
    results = await relay.ingest(events)
    status = 200 if all(r.duplicate for r in results) else 202
    return JSONResponse({"events": [_answer(r) for r in results]}, status_code=status)
