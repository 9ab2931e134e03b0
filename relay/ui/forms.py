"""Forms and query strings to the operations' models and back: the console sends what the
API's body would carry, so the same pydantic models and checks judge both, and a refusal
comes back as an error beside the field it names."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from relay.config import SCOPES
from relay.errors import PayloadTooLarge, RelayError, Unprocessable
from relay.models import Webhook, invalid
from relay.operations import WEBHOOK_STATES, WebhookState
from relay.types import EndpointSpec


async def read_form(request: Request, limit: int) -> dict[str, str]:
    """A urlencoded form (the console's only kind), first value of each field."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"the form is larger than {limit} bytes")
    pairs = urllib.parse.parse_qsl(body.decode("utf-8", errors="replace"),
                                   keep_blank_values=True)
    form: dict[str, str] = {}
    for name, value in pairs:
        form.setdefault(name, value)
    return form


def fields(request: Request) -> dict[str, str]:
    """The form of this POST, as `answers.page` read it."""
    form: dict[str, str] = request.state.form
    return form


def read_query(request: Request, model: type[BaseModel], read: dict[str, str] | None = None,
          **defaults: Any) -> Any:
    """The page's query parameters as `model`; `read` replaces some as the page read them."""
    params = {k: v for k, v in request.query_params.items() if v != "" and k in
              model.model_fields}
    try:
        return model.model_validate({**defaults, **params, **(read or {})})
    except ValidationError as exc:
        raise invalid(exc) from None


def state_param(request: Request) -> WebhookState | None:
    given = request.query_params.get("state") or None
    state = next((s for s in WEBHOOK_STATES if s == given), None)
    if given is not None and state is None:
        raise invalid_field("state", f"one of {', '.join(WEBHOOK_STATES)}")
    return state


def invalid_field(path: str, message: str) -> RelayError:
    return Unprocessable("the request has invalid fields", [{"path": path, "message": message}])


def _lines(text: str) -> list[str]:
    return [part.strip() for part in text.replace(",", "\n").splitlines() if part.strip()]


def chosen(form: dict[str, str], *names: str) -> dict[str, str]:
    """The form's choices (select fields) that were sent: one left out keeps its default
    on create and its current value on edit, as a field left out of the API's body."""
    return {name: form[name] for name in names if form.get(name)}


def spec_form(form: dict[str, str]) -> dict[str, Any]:
    """The endpoint form's fields as the API's body would carry them."""
    filter_text = form.get("filter", "").strip()
    try:
        filters = json.loads(filter_text) if filter_text else {}
    except json.JSONDecodeError as exc:
        raise invalid_field("filter", f"not valid JSON: {exc.msg}") from None
    # One header a line (a browser sends CRLF); only LF ends a line, so any other
    # control character stays in its line for the validator to name. The spaces around
    # the name and value are the form's syntax (as in HTTP), not part of them.
    headers: dict[str, str] = {}
    for n, line in enumerate(form.get("headers", "").split("\n"), 1):
        line = line.removesuffix("\r")
        if not line.strip(" \t"):
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip(" \t"):
            raise invalid_field("headers", f"line {n}: write it as Name: value")
        if name.strip(" \t") in headers:
            raise invalid_field("headers", f"line {n}: {name.strip()} is given twice")
        headers[name.strip(" \t")] = value.strip(" \t")
    schedule = _lines(form.get("retry_schedule", ""))
    return {
        "url": form.get("url", "").strip(), "events": _lines(form.get("events", "")),
        "filter": filters, "headers": headers,
        "timeout": form.get("timeout", "").strip() or None,
        "retry_schedule": schedule or None,
        "rate_limit": form.get("rate_limit", "").strip() or None,
        **chosen(form, "ordering"),
    }


def _json_field(form: dict[str, str], name: str) -> Any:
    """A JSON textarea; empty is None."""
    text = form.get(name, "").strip()
    try:
        return json.loads(text) if text else None
    except json.JSONDecodeError as exc:
        raise invalid_field(name, f"not valid JSON: {exc.msg}") from None


def _metadata(text: str) -> dict[str, str]:
    """`key=value` lines (blank ones skipped) as the API's metadata map."""
    metadata: dict[str, str] = {}
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        key, sep, value = line.removesuffix("\r").partition("=")
        if not sep or not key.strip():
            raise invalid_field("metadata", f"line {n}: write it as key=value")
        if key.strip() in metadata:
            raise invalid_field("metadata", f"line {n}: {key.strip()} is given twice")
        metadata[key.strip()] = value.strip()
    return metadata


def tenant_form(form: dict[str, str]) -> dict[str, Any]:
    """The tenant form's fields as /v1/tenants' body would carry them (an empty name is
    the API's default on create, the id)."""
    return {"name": form.get("name", "").strip() or None,
            "metadata": _metadata(form.get("metadata", "")),
            "max_webhooks": form.get("max_webhooks", "").strip() or None}


def key_form(form: dict[str, str]) -> dict[str, Any]:
    """The API key form as /v1/api-keys' body would carry it: one checkbox a scope, and
    the expiry a datetime-local field, read as UTC (the console shows UTC throughout)."""
    expires = form.get("expires_at", "").strip()
    return {"name": form.get("name", "").strip(), "tenant": form.get("tenant", ""),
            "scopes": [s for s in SCOPES if form.get(f"scope-{s}")],
            "expires_at": expires + "Z" if expires else None}


def event_type_form(form: dict[str, str]) -> dict[str, Any]:
    """The event type form as /v1/event-types' body would carry it."""
    sample = _json_field(form, "sample")
    return {"description": form.get("description", "").strip(),
            "sample": {} if sample is None else sample, "schema": _json_field(form, "schema"),
            "deprecated": bool(form.get("deprecated"))}


def form_errors(exc: RelayError) -> dict[str, str]:
    """A 422's details by form field (its path's first part); "" for one naming none."""
    errors: dict[str, str] = {}
    for detail in exc.details:
        if isinstance(detail, dict):
            path = str(detail.get("path", "")).split(".")[0].split("[")[0]
            errors.setdefault(path, str(detail.get("message", "")))
    return errors or {"": exc.message}


EMPTY_FORM = {"name": "", "url": "", "events": ", ".join(EndpointSpec.events), "filter": "",
              "headers": "", "timeout": "", "retry_schedule": "", "rate_limit": "",
              "signature": EndpointSpec.signature, "ordering": EndpointSpec.ordering}


def form_of(webhook: Webhook) -> dict[str, str]:
    """A webhook as its edit form shows it."""
    return {
        "name": webhook.name, "url": webhook.url, "events": ", ".join(webhook.events),
        "filter": json.dumps(webhook.filter) if webhook.filter else "",
        "headers": "\n".join(f"{k}: {v}" for k, v in webhook.headers.items()),
        "timeout": webhook.timeout or "",
        "retry_schedule": ", ".join(webhook.retry_schedule or []),
        "rate_limit": "" if webhook.rate_limit is None else f"{webhook.rate_limit:g}",
        "signature": webhook.signature, "ordering": webhook.ordering,
    }
