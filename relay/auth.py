"""API keys, scopes and tenants: who is calling, and may they. Both read the directory
(relay.directory: the config file's keys and tenants and those made through the API),
never the database."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from starlette.requests import Request

from relay.config import DEFAULT_TENANT, SCOPES, Scope
from relay.directory import Directory, Tenant
from relay.errors import Forbidden, TooManyAuthFailures, Unauthorized, Unprocessable
from relay.logs import log
from relay.metrics import AuthFailure
from relay.runtime import timestamp
from relay.throttle import Throttle


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    tenant: str
    scopes: frozenset[Scope]


ANONYMOUS = Principal("anonymous", DEFAULT_TENANT, frozenset(SCOPES))


def authenticate(request: Request, directory: Directory, scope: Scope) -> Principal:
    """The caller's key, checked for `scope`. Without keys in the config file relay
    listens on loopback only (a rule of the config's validation), and a caller without a
    key is an admin of `default`; a key sent is checked all the same. A source that
    failed too often is refused before its key is looked at (`admit`)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip() if scheme.lower() == "bearer" else ""
    if directory.open and not token:
        return ANONYMOUS
    admit(request)
    if not token:
        failed(request, "missing", "")
        raise Unauthorized("missing API key: send the header `Authorization: Bearer KEY`")
    key = directory.key(hashlib.sha256(token.encode()).hexdigest())
    if key is None:
        failed(request, "unknown", token)
        raise Unauthorized("unknown API key")
    if key.expired(now := request.app.state.relay.clock()):
        failed(request, "expired", token)
        raise Unauthorized(f"API key {key.name!r} expired at "
                           f"{timestamp(key.expires_at or now)}")
    if scope not in key.scopes and "admin" not in key.scopes:
        raise Forbidden(f"API key {key.name!r} lacks the scope {scope!r}")
    return Principal(key.name, key.tenant, key.scopes)


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def admit(request: Request) -> None:
    """TooManyAuthFailures (429, Retry-After) when the caller's address failed to
    authenticate too often (relay.throttle); the API and the console's sign-in."""
    throttle: Throttle = request.app.state.auth_throttle
    address = _address(request)
    refused = throttle.check(address)
    if refused is None:
        return
    request.app.state.relay.metrics.auth_failure("throttled")
    if refused.report:
        log("auth_throttled", logging.WARNING, source=address, refused=refused.report,
            retry_after=refused.retry_after)
    raise TooManyAuthFailures(refused.retry_after)


def key_prefix(key: str) -> str:
    """What a log may show of a key that failed: its first 8 characters, at most a
    quarter of it (a near miss of a real key must not give much of it away), printable
    ASCII only (it is whatever the client sent)."""
    return _printable(key[:min(8, len(key) // 4)])


def _printable(text: str) -> str:
    return "".join(c if c.isascii() and c.isprintable() else "?" for c in text)


def failed(request: Request, reason: AuthFailure, key: str) -> None:
    """Count, log and throttle one failed authentication from the caller's address, with
    `key` (what it sent, "" for none)."""
    throttle: Throttle = request.app.state.auth_throttle
    address = _address(request)
    outcome = throttle.fail(address, key)
    request.app.state.relay.metrics.auth_failure(reason)
    if outcome.log:
        log("auth_failed", logging.WARNING, reason=reason, key_prefix=key_prefix(key) or None,
            source=address, path=_printable(request.url.path[:200]))
    if outcome.throttled:
        log("auth_throttled", logging.WARNING, source=address,
            retry_after=outcome.retry_after)
    elif outcome.report:  # the source's summary: throttled or not
        log("auth_throttled" if outcome.retry_after else "auth_failed", logging.WARNING,
            source=address, refused=outcome.report, retry_after=outcome.retry_after or None)


def tenant_for(principal: Principal, requested: str | None, directory: Directory,
               path: str = "tenant") -> Tenant:
    """The tenant a request acts in: the key's own, or another one for admin keys."""
    tenant_id = requested or principal.tenant
    if tenant_id != principal.tenant and "admin" not in principal.scopes:
        raise Forbidden(
            f"API key {principal.name!r} acts in tenant {principal.tenant!r}, not {tenant_id!r}"
        )
    tenant = directory.tenant(tenant_id)
    if tenant is None:
        raise Unprocessable(
            "the request has invalid fields",
            [{"path": path, "message": f"unknown tenant {tenant_id!r}"}],
        )
    if not tenant.webhooks_enabled:
        raise Forbidden(f"webhooks are disabled for tenant {tenant_id!r}")
    return tenant
