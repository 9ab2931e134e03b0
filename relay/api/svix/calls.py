"""What every /api/v1 route does first: who calls (relay's API keys as bearer tokens),
in which application (a relay tenant), with which body and query, and, for a POST, the
answer its `idempotency-key` already has (idempotency.py).

Scopes (docs/svix.md, A2): reads `webhooks:read`, endpoint changes `webhooks:write`,
message create `events:write`, applications' and event types' changes and the
app-portal link `admin`. A key sees its own tenant; another tenant's `{app_id}` is a 404
for it, as another tenant's objects are on /v1.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from relay.api.ingest import read_limited
from relay.api.svix import idempotency
from relay.api.svix.errors import Invalid, invalid, problem
from relay.auth import Principal, authenticate
from relay.config import Scope
from relay.directory import Tenant
from relay.errors import Forbidden, NotFound
from relay.operations import Operations
from relay.runtime import Relay
from relay.text import control_problem

_M = TypeVar("_M", bound=BaseModel)
_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


@dataclass(frozen=True)
class Call:
    """One authenticated request: its caller, raw body (b"" for GET) and path values."""

    request: Request
    relay: Relay
    principal: Principal
    body: bytes

    def path(self, name: str) -> str:
        value: str = self.request.path_params[name]
        return value

    def parse(self, model: type[_M]) -> _M:
        """The body as `model`; none at all is `{}` (a bodiless POST has no content-type,
        so none is required); malformed JSON and invalid fields are Svix's 422."""
        try:
            data = json.loads(self.body) if self.body.strip() else {}
        except ValueError as exc:
            raise Invalid([problem("body", [], f"the body is not valid JSON: {exc}",
                                   "value_error.jsondecode")]) from None
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise invalid("body", exc) from None

    def query(self, model: type[_M]) -> _M:
        """The query as `model` (a control character in a value: 422)."""
        params = dict(self.request.query_params)
        if bad := [problem("query", [name], why) for name, value in params.items()
                   if (why := control_problem(value))]:
            raise Invalid(bad)
        try:
            return model.model_validate(params)
        except ValidationError as exc:
            raise invalid("query", exc) from None

    def admin(self) -> bool:
        return "admin" in self.principal.scopes

    def tenant(self, app_id: str, *, enabled: bool = True) -> Tenant:
        """The application `app_id` as the caller may see it: its own tenant, or any for
        an admin (another is a 404, as if it did not exist); with `enabled`, 403 when its
        webhooks are disabled. Applications are relay's tenants, named by id or uid
        (docs/svix.md)."""
        tenant = self.relay.directory.named(app_id) if not control_problem(app_id) else None
        if tenant is None or (tenant.id != self.principal.tenant and not self.admin()):
            raise NotFound(f"no application {app_id!r}")
        if enabled and not tenant.webhooks_enabled:
            raise Forbidden(f"webhooks are disabled for application {app_id!r}")
        return tenant

    def operations(self, app_id: str) -> Operations:
        """The operations in the application `app_id`, changes allowed to write keys."""
        return Operations(self.relay, self.tenant(app_id),
                          can_write=bool({"webhooks:write", "admin"} & self.principal.scopes))


Handler = Callable[[Call], Awaitable[Response]]


def owner(request: Request) -> str:
    """Whose idempotency keys these are: the sha256 of the bearer token (none: "")."""
    _, _, token = request.headers.get("authorization", "").partition(" ")
    return hashlib.sha256(token.strip().encode()).hexdigest() if token.strip() else ""


def route(scope: Scope, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette endpoint: authenticate for `scope`, read the body (content-type not
    required: the SDKs send none without a body), answer a POST's repeated
    idempotency-key from what it already has, else run `handler`."""
    async def endpoint(request: Request) -> Response:
        relay: Relay = request.app.state.relay
        principal = authenticate(request, relay.directory, scope)
        body = b""
        if request.method in _WITH_BODY:
            body = await read_limited(request, relay.config.server.max_body_bytes)
        call = Call(request, relay, principal, body)
        if request.method != "POST":
            return await handler(call)
        return await idempotency.answered(relay, request, owner(request), body,
                                          lambda: handler(call))

    return endpoint
