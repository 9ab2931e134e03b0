"""Svix's error answers, on /api/v1 only: `{"code", "detail"}`, and for 422 the list
`{"detail": [{"loc", "msg", "type"}]}` its SDKs parse into HTTPValidationError.

relay's own errors (RelayError) keep their status and message; their code becomes Svix's
for that status. A relay 422 names fields by relay's paths ("events", "headers.X-A",
"events[0]"): they become Svix locations (["body", "eventTypes"], ...). Every answer is
JSON: the Python SDK parses any error body as JSON and crashes on anything else.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from relay.errors import BadRequest, RelayError, Unprocessable
from relay.logs import log

# Svix's codes by status (its server's error.rs); others keep relay's code.
CODES = {400: "generic_error", 401: "authentication_failed", 403: "insufficient access",
         404: "not_found", 405: "method_not_allowed", 409: "conflict",
         413: "payload_too_large", 500: "server_error"}
# relay's field names where Svix's differ (a relay 422's paths, renamed).
_FIELDS = {"events": "eventTypes", "rate_limit": "throttleRate", "name": "description"}
_PART = re.compile(r"\[\d+\]|[^.\[]+")


class Invalid(Exception):
    """A request Svix would answer 422: each problem's location, message and type."""

    def __init__(self, detail: list[dict[str, Any]]) -> None:
        super().__init__(detail)
        self.detail = detail


def problem(where: str, loc: Sequence[str | int], msg: str,
            kind: str = "value_error") -> dict[str, Any]:
    """One 422 problem: `where` is "body", "query", "path" or "header"."""
    return {"loc": [where, *(f"[{p}]" if isinstance(p, int) else p for p in loc)],
            "msg": msg, "type": kind}


def invalid(where: str, exc: ValidationError) -> Invalid:
    """A pydantic failure (of a model with Svix's aliases) as Svix's 422."""
    return Invalid([problem(where, e["loc"], e["msg"].removeprefix("Value error, "))
                    for e in exc.errors(include_url=False)])


def body(status: int, detail: str, code: str | None = None) -> dict[str, str]:
    return {"code": code or CODES.get(status, "generic_error"), "detail": detail}


def answer(status: int, detail: str, code: str | None = None,
           headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body(status, detail, code), status_code=status, headers=headers)


def fields(exc: Unprocessable, names: Mapping[str, str] = _FIELDS) -> Invalid:
    """An operation's 422 (its fields by relay's paths) as Svix's, in the body: each
    path's first name renamed as `names` says (a new name may be a path itself)."""
    def loc(path: str) -> list[str]:
        first, *rest = _PART.findall(path) or [""]
        return [*_PART.findall(names.get(first, first)), *rest]

    return Invalid([problem("body", loc(str(d.get("path", ""))),
                            str(d.get("message", exc.message))) for d in exc.details]
                   or [problem("body", [], exc.message)])


def refusal(exc: RelayError) -> Response:
    """A RelayError as Svix answers it (also the Host and Origin checks' refusals)."""
    if isinstance(exc, Unprocessable):
        return _invalid_answer(fields(exc).detail)
    if isinstance(exc, BadRequest):  # malformed JSON: Svix answers 422, not 400
        return _invalid_answer([problem("body", [], exc.message, "value_error.jsondecode")])
    code = CODES.get(exc.status, exc.code)
    return answer(exc.status, exc.message, code, exc.headers)


def _invalid_answer(detail: list[dict[str, Any]]) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=422)


async def relay_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RelayError)
    return refusal(exc)


async def invalid_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Invalid)
    return _invalid_answer(exc.detail)


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own: a path no route has (404), a method its route does not take."""
    assert isinstance(exc, HTTPException)
    detail = "Entity not found" if exc.status_code == 404 else str(exc.detail)
    return answer(exc.status_code, detail, headers=exc.headers)


HANDLERS = {RelayError: relay_error, Invalid: invalid_request, HTTPException: http_error}


class ServerErrors:
    """The 500 of /api/v1: logged, answered in Svix's shape, and not raised further (the
    main app would log it again)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:
            log("internal_error", logging.ERROR, path=scope.get("path"), error=repr(exc))
            logging.getLogger("relay").exception("unhandled error", exc_info=exc)
            if not started:
                await answer(500, "internal error; see relay's log")(scope, receive, send)
