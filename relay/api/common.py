"""What every management route does first: who calls, in which tenant, with which body."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from relay.api.ingest import parse, read_body
from relay.auth import authenticate, tenant_for
from relay.config import Scope
from relay.errors import Unprocessable
from relay.models import invalid
from relay.operations import Operations
from relay.runtime import Relay
from relay.text import control_problem

_M = TypeVar("_M", bound=BaseModel)


def operations_for(request: Request, scope: Scope | None = None) -> Operations:
    """The caller's operations: `scope`, by default `webhooks:read` for GET and
    `webhooks:write` for the rest; the key's tenant (403 when its webhooks are disabled)."""
    relay: Relay = request.app.state.relay
    if scope is None:
        scope = "webhooks:read" if request.method == "GET" else "webhooks:write"
    principal = authenticate(request, relay.directory, scope)
    return Operations(relay, tenant_for(principal, None, relay.directory),
                      can_write=bool({"webhooks:write", "admin"} & principal.scopes))


def as_admin(request: Request) -> Relay:
    """The running relay, for a caller with the `admin` scope (tenants, API keys)."""
    relay: Relay = request.app.state.relay
    authenticate(request, relay.directory, "admin")
    return relay


async def body(request: Request, model: type[_M], *, optional: bool = False) -> _M:
    """The JSON body; where every field is optional, no body at all means defaults."""
    relay: Relay = request.app.state.relay
    headers = request.headers
    if (optional and "content-type" not in headers and "transfer-encoding" not in headers
            and headers.get("content-length", "0") == "0"):
        return model()
    return parse(model, await read_body(request, relay.config.server.max_body_bytes))


def query(request: Request, model: type[_M]) -> _M:
    """The query parameters as `model`; a control character in any of them is a 422
    (relay.text), whatever the parameter's type (int("5\x85") would read 5)."""
    params = dict(request.query_params)
    if bad := [{"path": name, "message": problem} for name, value in params.items()
               if (problem := control_problem(value))]:
        raise Unprocessable("the request has invalid fields", bad)
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise invalid(exc) from None


def answer(model: BaseModel, status: int = 200) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json"), status_code=status)
