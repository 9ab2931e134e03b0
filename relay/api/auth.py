"""API keys, scopes and tenants: who is calling, and may they."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from starlette.requests import Request

from relay.config import DEFAULT_TENANT, SCOPES, Config, Loaded, TenantConfig
from relay.errors import Forbidden, Unauthorized, Unprocessable


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    tenant: str
    scopes: frozenset[str]


ANONYMOUS = Principal("anonymous", DEFAULT_TENANT, frozenset(SCOPES))


def authenticate(request: Request, loaded: Loaded, scope: str) -> Principal:
    """The caller's key, checked for `scope`. Without configured keys relay listens on
    loopback only (enforced at start), and every caller is an admin of `default`."""
    if not loaded.api_keys:
        return ANONYMOUS
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing API key: send the header `Authorization: Bearer KEY`")
    digest = hashlib.sha256(token.strip().encode()).hexdigest()
    for key in loaded.api_keys:
        if key.sha256 == digest:
            if scope not in key.scopes and "admin" not in key.scopes:
                raise Forbidden(f"API key {key.name!r} lacks the scope {scope!r}")
            return Principal(key.name, key.tenant, key.scopes)
    raise Unauthorized("unknown API key")


def tenant_for(principal: Principal, requested: str | None, config: Config,
               path: str = "tenant") -> TenantConfig:
    """The tenant a request acts in: the key's own, or another one for admin keys."""
    tenant_id = requested or principal.tenant
    if tenant_id != principal.tenant and "admin" not in principal.scopes:
        raise Forbidden(
            f"API key {principal.name!r} acts in tenant {principal.tenant!r}, not {tenant_id!r}"
        )
    tenant = config.tenant(tenant_id)
    if tenant is None:
        raise Unprocessable(
            "the request has invalid fields",
            [{"path": path, "message": f"unknown tenant {tenant_id!r}"}],
        )
    if not tenant.webhooks_enabled:
        raise Forbidden(f"webhooks are disabled for tenant {tenant_id!r}")
    return tenant
