"""Svix's API at /api/v1 (SPEC §11, docs/svix.md): a second dialect of relay's API, so
code written for Svix's SDKs runs against relay with only its server URL and token
changed. Every route translates to and from the operations /v1 and the console call
(relay.operations); none holds a rule of its own.

Its errors are Svix's (errors.py) on these paths only, the Host and Origin checks'
refusals included (`serves`); /v1 keeps relay's. The routes of Svix's products relay
does not serve answer a 404 naming the product (`NOT_SERVED`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, Router, request_response
from starlette.types import ASGIApp

from relay.api.svix import (
    applications,
    attempts,
    endpoints,
    errors,
    event_types,
    messages,
    portal,
)
from relay.api.svix.calls import route
from relay.config import Scope

PREFIX = "/api/v1"
INGEST_PREFIX = "/ingest/api/v1"
_R: Scope = "webhooks:read"
_W: Scope = "webhooks:write"
_APP = "/app/{app_id}"
_EP = f"{_APP}/endpoint/{{endpoint_id}}"
_MSG = f"{_APP}/msg/{{msg_id}}"
_TYPE = "/event-type/{event_type_name}"
_ANY = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]

# Svix's products and features relay does not serve: (path under /api/v1, what).
NOT_SERVED: tuple[tuple[str, str], ...] = (
    ("/stream{rest:path}", "Stream (streaming)"),
    ("/auth/stream{rest:path}", "Stream (streaming)"),
    ("/connector{rest:path}", "connectors"),
    ("/stats{rest:path}", "statistics"),
    (f"{_EP}/stats", "statistics"),
    (f"{_EP}/attempt-stats", "statistics"),
    ("/environment{rest:path}", "environments"),
    ("/operational-webhook{rest:path}", "operational webhooks"),
    ("/background-task{rest:path}", "background tasks"),
    (f"{_APP}/integration{{rest:path}}", "integrations"),
    (f"{_APP}/destination{{rest:path}}", "destinations"),
    (f"{_APP}/poller{{rest:path}}", "polling endpoints"),
    (f"{_APP}/autoconfig{{rest:path}}", "autoconfig"),
    (f"{_EP}/transformation", "transformations"),
    (f"{_EP}/mtls{{rest:path}}", "endpoint mTLS"),
    (f"{_EP}/oauth{{rest:path}}", "endpoint OAuth"),
    (f"{_EP}/bulk-replay", "bulk replay"),
    (f"{_EP}/replay-missing", "replay-missing"),
    (f"{_EP}/msg", "endpoint message lists"),
    (f"{_MSG}/endpoint", "message endpoint lists"),
    (f"{_APP}/msg/search", "message search"),
    (f"{_APP}/msg/bulk-expunge", "expunge"),
    (f"{_APP}/msg/expunge-all-contents", "expunge"),
    (f"{_MSG}/content", "expunge"),
    (f"{_MSG}/attempt/{{attempt_id}}/content", "expunge"),
    (f"{_APP}/msg/precheck{{rest:path}}", "message precheck"),
    ("/auth/app/{app_id}/expire-all", "app portal token expiry"),
    ("/auth/logout", "app portal token expiry"),
    ("/event-type/import/openapi", "event type import from OpenAPI"),
)


def not_served(what: str, prefix: str = PREFIX) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return errors.answer(404, f"relay does not serve Svix's {what} API "
                             f"({prefix}{request.url.path.removeprefix(prefix)})")
    return endpoint


async def health(request: Request) -> Response:
    return Response(status_code=204)


# What /api/v1 serves (described in /openapi.json: relay.api.svix.openapi).
SERVED: list[BaseRoute] = [
    Route("/health", health, methods=["GET", "HEAD"]),
    Route("/health/", health, methods=["GET", "HEAD"]),
    Route("/app", route(_R, applications.list_applications), methods=["GET"]),
    Route("/app", route("admin", applications.create_application), methods=["POST"]),
    Route(_APP, route(_R, applications.get_application), methods=["GET"]),
    Route(_APP, route("admin", applications.upsert_application), methods=["PUT"]),
    Route(_APP, route("admin", applications.patch_application), methods=["PATCH"]),
    Route(_APP, route("admin", applications.delete_application), methods=["DELETE"]),
    Route("/event-type", route(_R, event_types.list_event_types), methods=["GET"]),
    Route("/event-type", route("admin", event_types.create_event_type), methods=["POST"]),
    Route(_TYPE, route(_R, event_types.get_event_type), methods=["GET"]),
    Route(_TYPE, route("admin", event_types.upsert_event_type), methods=["PUT"]),
    Route(_TYPE, route("admin", event_types.patch_event_type), methods=["PATCH"]),
    Route(_TYPE, route("admin", event_types.delete_event_type), methods=["DELETE"]),
    Route(f"{_APP}/endpoint", route(_R, endpoints.list_endpoints), methods=["GET"]),
    Route(f"{_APP}/endpoint", route(_W, endpoints.create_endpoint), methods=["POST"]),
    Route(_EP, route(_R, endpoints.get_endpoint), methods=["GET"]),
    Route(_EP, route(_W, endpoints.update_endpoint), methods=["PUT"]),
    Route(_EP, route(_W, endpoints.patch_endpoint), methods=["PATCH"]),
    Route(_EP, route(_W, endpoints.delete_endpoint), methods=["DELETE"]),
    Route(f"{_EP}/secret", route(_W, endpoints.get_secret), methods=["GET"]),
    Route(f"{_EP}/secret/rotate", route(_W, endpoints.rotate_secret), methods=["POST"]),
    Route(f"{_EP}/headers", route(_R, endpoints.get_headers), methods=["GET"]),
    Route(f"{_EP}/headers", route(_W, endpoints.put_headers), methods=["PUT"]),
    Route(f"{_EP}/headers", route(_W, endpoints.patch_headers), methods=["PATCH"]),
    Route(f"{_EP}/recover", route(_W, endpoints.recover), methods=["POST"]),
    Route(f"{_EP}/send-example", route(_W, messages.send_example), methods=["POST"]),
    Route(f"{_APP}/msg", route(_R, messages.list_messages), methods=["GET"]),
    Route(f"{_APP}/msg", route("events:write", messages.create_message), methods=["POST"]),
    Route(_MSG, route(_R, messages.get_message), methods=["GET"]),
    Route(f"{_APP}/attempt/endpoint/{{endpoint_id}}", route(_R, attempts.by_endpoint),
          methods=["GET"]),
    Route(f"{_APP}/attempt/msg/{{msg_id}}", route(_R, attempts.by_message), methods=["GET"]),
    Route(f"{_MSG}/attempt/{{attempt_id}}", route(_R, attempts.get_attempt), methods=["GET"]),
    Route(f"{_MSG}/endpoint/{{endpoint_id}}/resend", route(_W, attempts.resend),
          methods=["POST"]),
    Route("/auth/app-portal-access/{app_id}", route("admin", portal.app_portal_access),
          methods=["POST"]),
]
# The not-served paths first: some would otherwise reach a served route's path values
# (`/msg/search` a message id).
ROUTES: list[BaseRoute] = [
    *(Route(path, not_served(what), methods=_ANY) for path, what in NOT_SERVED), *SERVED]


def serves(path: str) -> bool:
    """Whether a path is Svix's (its errors then take Svix's shape)."""
    return any(path == p or path.startswith(p + "/") for p in (PREFIX, INGEST_PREFIX))


def create_app() -> ASGIApp:
    """The ASGI app to mount at /api/v1: a router with Svix's error handlers, and no
    Starlette application of its own, so `request.app` stays relay's (its state: the
    running relay, the failed-keys throttle)."""
    return errors.ServerErrors(ExceptionMiddleware(Router(routes=ROUTES),
                                                   handlers=errors.HANDLERS))


def ingest_app() -> ASGIApp:
    """What /ingest/api/v1 (Svix's ingest sources) answers: a 404 naming it."""
    return errors.ServerErrors(request_response(not_served("Ingest (ingest sources)",
                                                           INGEST_PREFIX)))
