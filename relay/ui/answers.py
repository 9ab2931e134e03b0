"""How a console page answers: the wrapper every route runs in (the visit, the CSRF check
on POST, errors as an HTML page, the security headers), the templates and their filters,
the message a finished change leaves, redirects."""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from relay.delivery.signing import SCHEMES
from relay.errors import RelayError, Unauthorized
from relay.operations import webhook_state
from relay.runtime import Relay, timestamp
from relay.types import CANCELLABLE, FINISHED
from relay.ui.forms import read_form
from relay.ui.security import (
    SignIn,
    Visit,
    finish,
    home_tenant,
    require_csrf,
    safe_next,
    visit_of,
)

PAGE = 25  # rows per page on the console's lists
HTMX = "htmx-2.0.4.min.js"
HERE = Path(__file__).parent
_TEMPLATES = Jinja2Templates(env=jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
    undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
))

# What a finished change says on the page it leads to (?done=KEY; n= a count).
_DONE = {
    "created": "Endpoint created.",
    "saved": "Changes saved.",
    "paused": "Paused: new deliveries are held until you resume.",
    "resumed": "Resumed: held deliveries are going out in order.",
    "enabled": "Re-enabled: failures reset, held deliveries are going out.",
    "deleted": "Endpoint deleted; its unfinished deliveries were cancelled.",
    "retried": "The delivery is queued again.",
    "cancelled": "Cancelled: relay will not send it again; a fifo endpoint moves on to the next.",
    "recovered": "{n} failed {deliveries} queued again.",
    "replayed": "{n} new {deliveries} queued.",
    "tenant-created": "Tenant created.",
    "tenant-disabled": "Disabled: its ingest and webhook routes answer 403 and its portal "
                       "sessions ended.",
    "tenant-enabled": "Enabled: its ingest and webhook routes work again.",
    "tenant-deleted": "Tenant deleted, with its endpoints ({n}) and API keys; its events "
                      "stay until retention.",
    "key-revoked": "API key revoked: relay refuses it from now on.",
    "type-created": "Event type created.",
    "type-deleted": "Event type deleted.",
}


def _when(value: str | None) -> str:
    """An API timestamp as people read it: 2026-04-14 16:29:48 UTC."""
    return "never" if value is None else value.replace("T", " ").replace("Z", " UTC")


def _clock(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(ts))


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


_TEMPLATES.env.filters.update(when=_when, pretty=_pretty, state=webhook_state, ts=timestamp,
                              clock=_clock)
# Which deliveries offer Retry and which Cancel: the states the store accepts for each.
_TEMPLATES.env.globals.update(retriable=FINISHED, cancellable=CANCELLABLE, schemes=SCHEMES)


def render(request: Request, visit: Visit, template: str, status: int = 200,
           **context: Any) -> Response:
    relay = visit.relay
    session = visit.session
    done = _DONE.get(request.query_params.get("done", ""))
    if done is not None:
        count = request.query_params.get("n", "")
        done = done.format(n=int(count) if count.isdigit() else "",
                           deliveries="delivery" if count == "1" else "deliveries")
    tenant = context.pop("tenant", None) or home_tenant(visit)
    base = {
        "ui": relay.config.ui, "csrf": visit.csrf, "kind": session.kind,
        "operator": visit.operator, "read_only": session.read_only,
        "can_write": not session.read_only and session.kind != "a",
        "signed_in": session.kind != "a", "open": relay.directory.open,
        "tenant": tenant, "tenants": _tenant_ids(relay) if visit.operator else [tenant],
        "done": done, "htmx": HTMX, "path": request.url.path,
    }
    return _TEMPLATES.TemplateResponse(request, template, {**base, **context},
                                       status_code=status)


def _tenant_ids(relay: Relay) -> list[str]:
    return list(relay.directory.tenants)  # default first


def see_other(url: str) -> Response:
    return RedirectResponse(url, status_code=303)


Handler = Callable[[Request, Visit], Awaitable[Response]]


def page(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A console route: the visit, the CSRF check on POST, errors as an HTML page."""

    async def run(request: Request) -> Response:
        visit = await visit_of(request)
        try:
            if request.method == "POST":
                form = await read_form(request, visit.relay.config.server.max_body_bytes)
                require_csrf(visit, form.get("csrf") or request.headers.get("x-csrf-token", ""))
                request.state.form = form
            response = await handler(request, visit)
        except SignIn:
            if request.method == "POST":
                response = _error(request, visit, Unauthorized("sign in first"))
            elif request.headers.get("hx-request"):  # a refresh: the page goes, not the box
                shown = urllib.parse.urlsplit(request.headers.get("hx-current-url", "")).path
                response = Response(status_code=204, headers={
                    "hx-redirect": "/ui/login?" + urllib.parse.urlencode(
                        {"next": safe_next(shown)})})
            else:
                response = see_other("/ui/login?" + urllib.parse.urlencode(
                    {"next": request.url.path}))
        except RelayError as exc:
            response = _error(request, visit, exc)
        return finish(request, getattr(request.state, "visit", visit), response)

    return run


def _error(request: Request, visit: Visit, exc: RelayError) -> Response:
    status = exc.status if 400 <= exc.status < 600 else 500
    return render(request, visit, "error.html", status, error=exc)


async def theme(request: Request) -> Response:
    """The accent colour of `[ui]` as a stylesheet (the CSP allows no inline style)."""
    relay: Relay = request.app.state.relay
    return Response(f":root {{ --accent: {relay.config.ui.accent}; }}\n",
                    media_type="text/css", headers={"cache-control": "no-cache"})
