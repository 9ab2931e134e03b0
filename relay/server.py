"""The Starlette application: routes, and the one place errors become responses."""

from __future__ import annotations

import logging
from typing import Any

from starlette.applications import Starlette
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from relay import hosts
from relay.api import (
    deliveries,
    event_types,
    events,
    ingest,
    keys,
    openapi,
    portal,
    probes,
    svix,
    tenants,
    webhooks,
)
from relay.api.svix import errors as svix_errors
from relay.errors import BadHost, CrossOrigin, MisdirectedRequest, RelayError
from relay.logs import log
from relay.runtime import Relay
from relay.throttle import Throttle
from relay.ui import routes as ui

_CODES = {404: "not_found", 405: "method_not_allowed"}


def error_body(code: str, message: str, details: list[Any] | None = None) -> dict[str, Any]:
    """The only shape of an error answer: {"error": {code, message, details}}."""
    return {"error": {"code": code, "message": message, "details": details or []}}


async def _relay_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RelayError)
    return JSONResponse(error_body(exc.code, exc.message, exc.details), status_code=exc.status,
                        headers=exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if svix.serves(request.url.path):  # a path Svix's API's mount did not take (a newline)
        return await svix_errors.http_error(request, exc)
    code = _CODES.get(exc.status_code, "http_error")
    message = "no such route" if exc.status_code == 404 else str(exc.detail)
    return JSONResponse(error_body(code, message), status_code=exc.status_code,
                        headers=exc.headers)


async def _server_error(request: Request, exc: Exception) -> Response:
    log("internal_error", logging.ERROR, path=request.url.path, error=repr(exc))
    logging.getLogger("relay").exception("unhandled error", exc_info=exc)
    return JSONResponse(error_body("internal", "internal error; see relay's log"),
                        status_code=500)


class _EventId(Convertor[str]):
    """`evt_...` only, so /v1/events/batch stays the batch route (GET there is a 405)."""

    regex = "evt_[0-9a-z]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("event_id", _EventId())

ROUTES = [
    Route("/v1/events", ingest.post_event, methods=["POST"]),
    Route("/v1/events/batch", ingest.post_batch, methods=["POST"]),
    Route("/v1/events", events.list_events, methods=["GET"]),
    Route("/v1/events/{id:event_id}", events.get_event, methods=["GET"]),
    Route("/v1/events/{id:event_id}/replay", events.replay_event, methods=["POST"]),
    Route("/v1/webhooks", webhooks.list_webhooks, methods=["GET"]),
    Route("/v1/webhooks", webhooks.create_webhook, methods=["POST"]),
    Route("/v1/webhooks/{id}", webhooks.get_webhook, methods=["GET"]),
    Route("/v1/webhooks/{id}", webhooks.patch_webhook, methods=["PATCH"]),
    Route("/v1/webhooks/{id}", webhooks.delete_webhook, methods=["DELETE"]),
    Route("/v1/webhooks/{id}/rotate-secret", webhooks.rotate_secret, methods=["POST"]),
    Route("/v1/webhooks/{id}/secret", webhooks.get_secret, methods=["GET"]),
    Route("/v1/webhooks/{id}/test", webhooks.send_test, methods=["POST"]),
    Route("/v1/webhooks/{id}/recover", webhooks.recover_webhook, methods=["POST"]),
    Route("/v1/webhooks/{id}/deliveries", deliveries.list_deliveries, methods=["GET"]),
    Route("/v1/deliveries/{id}", deliveries.get_delivery, methods=["GET"]),
    Route("/v1/deliveries/{id}/retry", deliveries.retry_delivery, methods=["POST"]),
    Route("/v1/deliveries/{id}/cancel", deliveries.cancel_delivery, methods=["POST"]),
    Route("/v1/event-types", event_types.list_event_types, methods=["GET"]),
    Route("/v1/event-types", event_types.create_event_type, methods=["POST"]),
    Route("/v1/event-types/{name}", event_types.get_event_type, methods=["GET"]),
    Route("/v1/event-types/{name}", event_types.patch_event_type, methods=["PATCH"]),
    Route("/v1/event-types/{name}", event_types.delete_event_type, methods=["DELETE"]),
    Route("/v1/event-types/{name}/sample", event_types.event_type_sample, methods=["GET"]),
    Route("/v1/portal-sessions", portal.create_portal_session, methods=["POST"]),
    Route("/v1/tenants", tenants.list_tenants, methods=["GET"]),
    Route("/v1/tenants", tenants.create_tenant, methods=["POST"]),
    Route("/v1/tenants/{id}", tenants.get_tenant, methods=["GET"]),
    Route("/v1/tenants/{id}", tenants.patch_tenant, methods=["PATCH"]),
    Route("/v1/tenants/{id}", tenants.delete_tenant, methods=["DELETE"]),
    Route("/v1/api-keys", keys.list_keys, methods=["GET"]),
    Route("/v1/api-keys", keys.create_key, methods=["POST"]),
    Route("/v1/api-keys/{id}", keys.revoke_key, methods=["DELETE"]),
    Route("/healthz", probes.healthz, methods=["GET"]),
    Route("/readyz", probes.readyz, methods=["GET"]),
    Route("/metrics", probes.metrics, methods=["GET"]),
    Route("/openapi.json", openapi.serve, methods=["GET"]),
]


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class HostAndOrigin:
    """Checks on every request before any route runs, reading the config per request (a
    reload applies at once).

    Host: every request must name one of relay's own hosts (the config's
    `server.host_names`): else 421, or 400 for a missing, repeated or malformed Host.
    DNS rebinding needs a name of the attacker's own there, so the probes
    (hosts.PROBE_PATHS) also answer an IP address, and a request without a Host (or an
    empty one: HAProxy's default check is HTTP/1.0 without it).

    Origin: a change (any method but GET, HEAD, OPTIONS) whose `Origin`, or without one
    `Referer`, is not relay's own origin is refused (403) before its key or CSRF token is
    looked at: a page of another site can send a POST that needs no preflight (no body,
    a form) to relay on loopback, which without [[api_keys]] trusts it. relay's own
    origins: public_url's, and the scheme and Host the request came with. `null` (a
    sandboxed frame, a page sending no referrer) is not one. Neither header (curl, SDKs,
    the relay CLI): nothing to check; keys and CSRF tokens decide."""

    def __init__(self, app: ASGIApp, relay: Relay) -> None:
        self.app = app
        self.relay = relay

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = self._refusal(scope)
            if refusal is not None:
                response = (svix_errors.refusal(refusal) if svix.serves(scope["path"]) else
                            JSONResponse(error_body(refusal.code, refusal.message),
                                         status_code=refusal.status))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> RelayError | None:
        found: dict[bytes, list[bytes]] = {}
        for name, value in scope["headers"]:
            if name in (b"host", b"origin", b"referer"):
                found.setdefault(name, []).append(value)
        values = found.get(b"host", [])
        probe = scope["path"] in hosts.PROBE_PATHS
        if probe and values in ([], [b""]):
            return None
        if len(values) != 1:
            return BadHost("send exactly one Host header" if values else
                           "the request has no Host header: send Host: HOST[:PORT]")
        text = values[0].decode("latin-1")
        try:
            host, _ = hosts.parse_host_header(text)
        except ValueError as exc:
            return BadHost(f"the Host header is not HOST[:PORT]: {exc}")
        server = self.relay.config.server
        allowed = server.host_names
        if host not in allowed and hosts.ANY not in allowed \
                and not (probe and hosts.is_address(host)):
            return MisdirectedRequest(
                f"relay does not serve the host {host[:100]!r}: if it is a name of this "
                "relay, add it to [server] allowed_hosts (or set [server] public_url) in "
                "relay's config")
        sent = found.get(b"origin") or found.get(b"referer")
        if scope["method"] in _SAFE_METHODS or not sent:
            return None
        given = sent[0].decode("latin-1")
        if hosts.origin(given) in {hosts.origin(server.base_url),
                                   hosts.origin(f"{scope['scheme']}://{text}")} - {None}:
            return None
        return CrossOrigin(
            f"this request was sent from another site ({given[:100]!r}), not from relay's "
            f"own pages ({hosts.origin(server.base_url)}): open relay at its own address; "
            "if that is another one, set [server] public_url to it")


def create_app(relay: Relay) -> Starlette:
    """The HTTP side: the API (ROUTES, described by /openapi.json), Svix's API at /api/v1
    (relay.api.svix) and the console at /ui/, behind the Host and Origin checks. The
    caller starts and stops `relay` (relay.process, tests)."""
    app = Starlette(
        routes=[*ROUTES, Mount("/ui", routes=ui.ROUTES),
                Mount(svix.PREFIX, app=svix.create_app()),
                Mount(svix.INGEST_PREFIX, app=svix.ingest_app())],
        middleware=[Middleware(HostAndOrigin, relay=relay)],
        exception_handlers={
            RelayError: _relay_error,
            HTTPException: _http_error,
            Exception: _server_error,
        },
    )
    app.state.relay = relay
    app.state.auth_throttle = Throttle()  # failed keys per address (relay.auth)
    return app
