"""The web console and the tenant portal at /ui/ (SPEC §9), on relay's own listener.

Server-rendered pages (Jinja2, autoescaped) over relay.operations, the same tenant-scoped
operations the JSON API calls: what a page may show or change is decided there, once.

Who is looking is a signed session cookie (relay.sessions): an operator (signed in with
an admin API key, or anyone on loopback when relay has no `[[api_keys]]`), a portal
visitor (opened a `/v1/portal-sessions` link: one tenant, maybe read-only), or nobody yet
(the cookie then only carries the nonce the login form's CSRF token is bound to). A
signed-in session also has a row in the database, read on every request: signing out,
idle time, and a config that no longer grants its key or tenant end it on every process.
The cookie is HttpOnly, SameSite=Strict, Secure unless relay is on loopback over http.
Every POST carries the session's CSRF token; every page has a CSP without inline scripts.

Pages that act in a tenant live under /ui/t/{tenant}/: an operator may open any tenant,
a portal session only its own (another tenant's pages are a plain 404 that names
nothing). The overview, which counts across tenants, is the operator's alone.
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from relay import auth
from relay.errors import (
    Forbidden,
    NotFound,
    PayloadTooLarge,
    RelayError,
    TooManyAuthFailures,
    Unauthorized,
    Unprocessable,
)
from relay.models import (
    PAGE_MAX,
    DeliveriesQuery,
    EventsQuery,
    PageQuery,
    RecoverIn,
    RotateIn,
    Webhook,
    WebhookIn,
    WebhookPatch,
    invalid,
    webhook_of,
)
from relay.operations import (
    WEBHOOK_STATES,
    Operations,
    WebhookState,
    delivery_number,
    list_webhooks,
    webhook_state,
)
from relay.runtime import Relay, timestamp
from relay.sessions import (
    KEY_NAME,
    Kind,
    Session,
    csrf_ok,
    csrf_token,
    decide,
    granted,
    new_key,
    new_session,
    sign,
    verify,
)
from relay.storage.base import Reads
from relay.types import CANCELLABLE, FINISHED, MinuteOutcomes, SessionRow, not_cancellable
from relay.ui import chart

COOKIE = "relay_session"
VISITOR_HOURS = 24  # a not-signed-in visitor's cookie (only a CSRF nonce)
# Sent by the endpoint page's automatic refresh of its deliveries: a tab left open is not
# use, so it does not keep a session from its idle end (a client sending it only ends its
# own session sooner).
REFRESH_HEADER = "x-relay-refresh"
PAGE = 25  # rows per page on the console's lists
RECENT = 10  # recent errors on the overview
HTMX = "htmx-2.0.4.min.js"
_HERE = Path(__file__).parent
_TEMPLATES = Jinja2Templates(env=jinja2.Environment(
    loader=jinja2.FileSystemLoader(_HERE / "templates"), autoescape=True,
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
_TEMPLATES.env.globals.update(retriable=FINISHED, cancellable=CANCELLABLE)


# --- who is looking ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Visit:
    relay: Relay
    key: bytes
    session: Session
    fresh: bool  # the cookie must be (re)set on the answer

    @property
    def operator(self) -> bool:
        return self.session.kind == "o"

    @property
    def csrf(self) -> str:
        return csrf_token(self.key, self.session)


class _SignIn(Exception):
    """Not signed in: GET pages send the visitor to the login form."""


def _key_digest(token: str) -> str:
    return hashlib.sha256(token.strip().encode()).hexdigest()


async def _live(request: Request, relay: Relay, session: Session, now: float) -> bool:
    """Whether a validly signed session still holds: this process's config still grants
    its key or tenant, and a signed-in session's row is live (signing out, idle time, and
    another process's config end it there). Its use is written when `decide` says so,
    except by the deliveries table's automatic refresh."""
    if not granted(relay.loaded, session):
        return False
    if not session.stored:
        return True
    row = await relay.store.get_session(session.nonce)
    if row is None or (row.kind, row.subject) != (session.kind, session.subject):
        return False
    decision = decide(row, now, relay.config.ui.session_idle)
    if decision == "touch" and not request.headers.get(REFRESH_HEADER):
        await relay.store.touch_session(row.id, now)
    return decision in ("live", "touch")


async def _visit(request: Request) -> Visit:
    relay: Relay = request.app.state.relay
    key = await relay.secret_key(KEY_NAME, new_key)
    now = relay.clock()
    token = request.cookies.get(COOKIE)
    session = verify(key, token, now) if token else None
    if session is not None and await _live(request, relay, session, now):
        return Visit(relay, key, session, fresh=False)
    if not relay.loaded.api_keys:  # open, as the API is (relay refuses to listen beyond loopback)
        lifetime = relay.config.ui.session_lifetime
        return Visit(relay, key, new_session("o", "-", now + lifetime, False), True)
    return Visit(relay, key, new_session("a", "-", now + VISITOR_HOURS * 3600, False), True)


async def _end(visit: Visit) -> None:
    """End this browser's signed-in session on every process: its row goes."""
    if visit.session.stored:
        await visit.relay.store.end_session(visit.session.nonce)


async def _sign_in(visit: Visit, kind: Kind, subject: str, read_only: bool = False,
                   until: float | None = None) -> Session:
    """A new signed-in session (a new nonce, so a new CSRF token), stored: live until it is
    signed out, idle, `session_lifetime` (or `until`, if sooner) old, or its key or tenant
    is no longer granted. The session it replaces in this browser ends."""
    relay = visit.relay
    await _end(visit)
    now = relay.clock()
    expires_at = now + relay.config.ui.session_lifetime
    session = new_session(kind, subject, expires_at if until is None else min(until, expires_at),
                          read_only)
    await relay.store.add_session(SessionRow(session.nonce, kind, subject, now, now,
                                             session.expires_at))
    return session


def _switch(request: Request, visit: Visit, session: Session) -> Visit:
    """This answer starts `session` (sign-in, sign-out, portal entry): its cookie is set."""
    visit = Visit(visit.relay, visit.key, session, fresh=True)
    request.state.visit = visit
    return visit


def _ops(visit: Visit, tenant_id: str) -> Operations:
    """The operations of the tenant a page is in, for this visitor."""
    session = visit.session
    if session.kind == "a":
        raise _SignIn()
    if session.kind == "p" and tenant_id != session.subject:
        raise NotFound("no such page")
    tenant = visit.relay.config.tenant(tenant_id)
    if tenant is None:
        raise NotFound("no such page")
    if not tenant.webhooks_enabled:
        raise Forbidden(f"webhooks are disabled for tenant {tenant_id!r}")
    return Operations(visit.relay, tenant, can_write=not session.read_only)


def _home_tenant(visit: Visit) -> str:
    return visit.session.tenant or "default"


# --- answers -----------------------------------------------------------------------------


def _csp(visit: Visit) -> str:
    ui = visit.relay.config.ui
    images = "'self' data:"
    if ui.logo_url and ui.logo_url.startswith("https://"):
        parts = urllib.parse.urlsplit(ui.logo_url)
        images += f" https://{parts.netloc}"
    ancestors = "'none'"
    if visit.session.kind == "p" and ui.frame_ancestors:
        ancestors = "'self' " + " ".join(ui.frame_ancestors)
    return ("default-src 'none'; script-src 'self'; style-src 'self'; "
            f"img-src {images}; connect-src 'self'; form-action 'self'; base-uri 'none'; "
            f"frame-ancestors {ancestors}")


def _finish(request: Request, visit: Visit, response: Response) -> Response:
    response.headers["content-security-policy"] = _csp(visit)
    response.headers["x-content-type-options"] = "nosniff"
    # Portal links carry their token: never a Referer to another site. Same-origin
    # requests keep theirs, and with it a real Origin on POSTs (no-referrer makes a form's
    # Origin `null`, which relay.server.HostAndOrigin refuses).
    response.headers["referrer-policy"] = "same-origin"
    response.headers["cache-control"] = "no-store"
    if visit.fresh:
        relay = visit.relay
        response.set_cookie(
            COOKIE, sign(visit.key, visit.session),
            max_age=max(int(visit.session.expires_at - relay.clock()), 0), path="/ui/",
            httponly=True, samesite="strict",
            secure=not relay.config.server.is_loopback or request.url.scheme == "https",
        )
    return response


def _render(request: Request, visit: Visit, template: str, status: int = 200,
            **context: Any) -> Response:
    relay = visit.relay
    session = visit.session
    done = _DONE.get(request.query_params.get("done", ""))
    if done is not None:
        count = request.query_params.get("n", "")
        done = done.format(n=int(count) if count.isdigit() else "",
                           deliveries="delivery" if count == "1" else "deliveries")
    tenant = context.pop("tenant", None) or _home_tenant(visit)
    base = {
        "ui": relay.config.ui, "csrf": visit.csrf, "kind": session.kind,
        "operator": visit.operator, "read_only": session.read_only,
        "can_write": not session.read_only and session.kind != "a",
        "signed_in": session.kind != "a", "open": not relay.loaded.api_keys,
        "tenant": tenant, "tenants": _tenant_ids(relay) if visit.operator else [tenant],
        "done": done, "htmx": HTMX, "path": request.url.path,
    }
    return _TEMPLATES.TemplateResponse(request, template, {**base, **context},
                                       status_code=status)


def _tenant_ids(relay: Relay) -> list[str]:
    return ["default", *(t.id for t in relay.config.tenants if t.id != "default")]


def _see_other(url: str) -> Response:
    return RedirectResponse(url, status_code=303)


Handler = Callable[[Request, Visit], Awaitable[Response]]


def page(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A console route: the visit, the CSRF check on POST, errors as an HTML page."""

    async def run(request: Request) -> Response:
        visit = await _visit(request)
        try:
            if request.method == "POST":
                form = await _form(request, visit.relay.config.server.max_body_bytes)
                given = form.get("csrf") or request.headers.get("x-csrf-token", "")
                if not csrf_ok(visit.key, visit.session, given):
                    raise Forbidden("the form's security token is missing or out of date: "
                                    "reload the page and try again")
                request.state.form = form
            response = await handler(request, visit)
        except _SignIn:
            if request.method == "POST":
                response = _error(request, visit, Unauthorized("sign in first"))
            elif request.headers.get("hx-request"):  # a refresh: the page goes, not the box
                shown = urllib.parse.urlsplit(request.headers.get("hx-current-url", "")).path
                response = Response(status_code=204, headers={
                    "hx-redirect": "/ui/login?" + urllib.parse.urlencode({"next": _next(shown)})})
            else:
                response = _see_other("/ui/login?" + urllib.parse.urlencode(
                    {"next": request.url.path}))
        except RelayError as exc:
            response = _error(request, visit, exc)
        return _finish(request, getattr(request.state, "visit", visit), response)

    return run


def _error(request: Request, visit: Visit, exc: RelayError) -> Response:
    status = exc.status if 400 <= exc.status < 600 else 500
    return _render(request, visit, "error.html", status, error=exc)


async def _form(request: Request, limit: int) -> dict[str, str]:
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


def _fields(request: Request) -> dict[str, str]:
    form: dict[str, str] = request.state.form
    return form


def _query(request: Request, model: type[BaseModel], read: dict[str, str] | None = None,
           **defaults: Any) -> Any:
    """The page's query parameters as `model`; `read` replaces some as the page read them."""
    params = {k: v for k, v in request.query_params.items() if v != "" and k in
              model.model_fields}
    try:
        return model.model_validate({**defaults, **params, **(read or {})})
    except ValidationError as exc:
        raise invalid(exc) from None


# --- sign in, portal entry, theme -----------------------------------------------------------


@page
async def login(request: Request, visit: Visit) -> Response:
    nxt = _next(request.query_params.get("next"))
    if visit.operator:
        return _see_other(nxt)
    return _render(request, visit, "login.html", next=nxt, error=None)


def _next(value: str | None) -> str:
    """Only a path of the console: never another site."""
    if value and value.startswith("/ui/") and not value.startswith("//"):
        return value
    return "/ui/"


@page
async def login_post(request: Request, visit: Visit) -> Response:
    form = _fields(request)
    nxt = _next(form.get("next"))
    try:  # failed sign-ins count with the API's failed keys (relay.throttle)
        auth.admit(request)
    except TooManyAuthFailures as exc:
        response = _render(request, visit, "login.html", exc.status, next=nxt,
                           error=f"Too many failed sign-ins from this address: try again "
                           f"in {exc.retry_after} s.")
        response.headers.update(exc.headers)
        return response
    given = form.get("key", "").strip()
    digest = _key_digest(given)
    relay = visit.relay
    for key in relay.loaded.api_keys:
        if key.sha256 == digest and "admin" in key.scopes:
            session = await _sign_in(visit, "o", digest[:16])
            _switch(request, visit, session)
            return _see_other(nxt)
    known = any(key.sha256 == digest for key in relay.loaded.api_keys)
    auth.failed(request, "not_admin" if known else "unknown" if given else "missing", given)
    return _render(request, visit, "login.html", 401, next=nxt,
                   error="That is not an admin API key of this relay.")


@page
async def logout(request: Request, visit: Visit) -> Response:
    relay = visit.relay
    await _end(visit)  # on every process, not only in this browser
    session = new_session("a", "-", relay.clock() + VISITOR_HOURS * 3600, False)
    _switch(request, visit, session)
    return _see_other("/ui/login")


@page
async def portal(request: Request, visit: Visit) -> Response:
    """The link of POST /v1/portal-sessions: its token (stateless, valid until its
    expiry) starts a stored session for this browser, which ends with the link or sooner
    (`[ui] session_idle`, `session_lifetime`, the tenant disabled). The answer is a page
    that moves on by itself (meta refresh), not a redirect: a SameSite=Strict cookie set
    while arriving from another site is only sent once the browser navigates from relay's
    own page."""
    relay = visit.relay
    token = request.query_params.get("token", "")
    link = verify(visit.key, token, relay.clock())
    if link is None or link.kind != "p" or not granted(relay.loaded, link):
        raise Unauthorized("this portal link is invalid or has expired: ask for a new one")
    session = await _sign_in(visit, "p", link.subject, link.read_only, until=link.expires_at)
    visit = _switch(request, visit, session)
    return _render(request, visit, "portal.html", target=f"/ui/t/{link.subject}/endpoints")


async def theme(request: Request) -> Response:
    relay: Relay = request.app.state.relay
    return Response(f":root {{ --accent: {relay.config.ui.accent}; }}\n",
                    media_type="text/css", headers={"cache-control": "no-cache"})


# --- overview ----------------------------------------------------------------------------


class _LastHour:
    """The chart's counts per minute. A minute that ended more than SETTLED seconds ago no
    longer changes (an attempt is recorded within its timeout of starting, 10 s by
    default), so each is read from the store once per process and kept; every overview
    then counts only the last few minutes' attempts instead of the whole hour's (an
    attempt recorded later than SETTLED after it started is left out of its minute)."""

    SETTLED = 120.0

    def __init__(self) -> None:
        self._closed: dict[int, MinuteOutcomes] = {}
        self._upto = 0  # minutes before this are in _closed

    async def read(self, store: Reads, now: float) -> list[MinuteOutcomes]:
        first = (int(now) // 60 - chart.MINUTES + 1) * 60
        settled = int(now - self.SETTLED) // 60 * 60
        if self._upto < first:
            self._closed.clear()
            self._upto = first
        fresh = await store.outcomes_per_minute(float(self._upto))
        if self._upto < settled:
            self._closed.update({int(b.minute): b for b in fresh if b.minute < settled})
            self._upto = settled
        for minute in [m for m in self._closed if m < first]:
            del self._closed[minute]
        recent = [b for b in fresh if b.minute >= self._upto]
        return [*sorted(self._closed.values(), key=lambda b: b.minute), *recent]


def _last_hour(request: Request) -> _LastHour:
    cached: _LastHour | None = getattr(request.app.state, "console_last_hour", None)
    if cached is None:
        cached = request.app.state.console_last_hour = _LastHour()
    return cached


@page
async def overview(request: Request, visit: Visit) -> Response:
    if visit.session.kind == "p":
        return _see_other(f"/ui/t/{visit.session.subject}/endpoints")
    if not visit.operator:
        raise _SignIn()
    relay = visit.relay
    store = relay.store
    now = relay.clock()
    counts = await store.counts()
    buckets = await _last_hour(request).read(store, now)
    failures = await store.recent_failures(now - 3600, RECENT)
    rows = await store.list_endpoints()
    pending = await store.pending_counts([row.id for row in rows])
    webhooks = [webhook_of(row, pending[row.id]) for row in rows]
    trouble = [w for w in webhooks if webhook_state(w) in ("failing", "disabled")]
    return _render(
        request, visit, "overview.html",
        counts={state: counts.get(state, 0) for state in (
            "pending", "delivering", "held", "succeeded", "failed", "cancelled")},
        chart=chart.svg(buckets, now), summary=chart.summarise(buckets),
        failures=failures, trouble=trouble, endpoints=len(webhooks), webhooks=webhooks,
    )


@page
async def endpoints_home(request: Request, visit: Visit) -> Response:
    """The operator's endpoints of every tenant (a tenant column, filters by tenant and
    state); a portal visitor goes to its own tenant's list."""
    if visit.session.kind == "a":
        raise _SignIn()
    if not visit.operator:
        return _see_other(f"/ui/t/{_home_tenant(visit)}/endpoints")
    picked = request.query_params.get("tenant") or None
    if picked is not None:
        _ops(visit, picked)  # a 404 for a tenant relay does not have
    query = _query(request, PageQuery, limit=PAGE)
    state = _state_param(request)
    listed = await list_webhooks(visit.relay, picked, query, state)
    return _render(request, visit, "endpoints.html", tenant=picked, page=listed,
                   state=state, states=WEBHOOK_STATES, all_tenants=True, picked=picked,
                   more=urllib.parse.urlencode({k: v for k, v in {
                       "tenant": picked, "state": state, "after": listed.next}.items() if v}))


def _state_param(request: Request) -> WebhookState | None:
    given = request.query_params.get("state") or None
    state = next((s for s in WEBHOOK_STATES if s == given), None)
    if given is not None and state is None:
        raise _invalid_field("state", f"one of {', '.join(WEBHOOK_STATES)}")
    return state


# --- endpoints ---------------------------------------------------------------------------


@page
async def endpoints(request: Request, visit: Visit) -> Response:
    tenant = request.path_params["tenant"]
    ops = _ops(visit, tenant)
    query = _query(request, PageQuery, limit=PAGE)
    state = _state_param(request)
    listed = await ops.webhooks(query, state)
    return _render(request, visit, "endpoints.html", tenant=tenant, page=listed,
                   state=state, states=WEBHOOK_STATES, all_tenants=False, picked=tenant,
                   more=urllib.parse.urlencode({k: v for k, v in {
                       "state": state, "after": listed.next}.items() if v}))


def _invalid_field(path: str, message: str) -> RelayError:
    return Unprocessable("the request has invalid fields", [{"path": path, "message": message}])


def _lines(text: str) -> list[str]:
    return [part.strip() for part in text.replace(",", "\n").splitlines() if part.strip()]


def _chosen(form: dict[str, str], *names: str) -> dict[str, str]:
    """The form's choices (select fields) that were sent: one left out keeps its default
    on create and its current value on edit, as a field left out of the API's body."""
    return {name: form[name] for name in names if form.get(name)}


def _spec_form(form: dict[str, str]) -> dict[str, Any]:
    """The endpoint form's fields as the API's body would carry them."""
    filter_text = form.get("filter", "").strip()
    try:
        filters = json.loads(filter_text) if filter_text else {}
    except json.JSONDecodeError as exc:
        raise _invalid_field("filter", f"not valid JSON: {exc.msg}") from None
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
            raise _invalid_field("headers", f"line {n}: write it as Name: value")
        if name.strip(" \t") in headers:
            raise _invalid_field("headers", f"line {n}: {name.strip()} is given twice")
        headers[name.strip(" \t")] = value.strip(" \t")
    schedule = _lines(form.get("retry_schedule", ""))
    return {
        "url": form.get("url", "").strip(), "events": _lines(form.get("events", "")),
        "filter": filters, "headers": headers,
        "timeout": form.get("timeout", "").strip() or None,
        "retry_schedule": schedule or None,
        "rate_limit": form.get("rate_limit", "").strip() or None,
        **_chosen(form, "ordering"),
    }


def _form_errors(exc: RelayError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for detail in exc.details:
        if isinstance(detail, dict):
            path = str(detail.get("path", "")).split(".")[0].split("[")[0]
            errors.setdefault(path, str(detail.get("message", "")))
    return errors or {"": exc.message}


_EMPTY_FORM = {"name": "", "url": "", "events": "*", "filter": "", "headers": "",
               "timeout": "", "retry_schedule": "", "rate_limit": "",
               "signature": "standard-webhooks", "ordering": "none"}


def _form_of(webhook: Webhook) -> dict[str, str]:
    return {
        "name": webhook.name, "url": webhook.url, "events": ", ".join(webhook.events),
        "filter": json.dumps(webhook.filter) if webhook.filter else "",
        "headers": "\n".join(f"{k}: {v}" for k, v in webhook.headers.items()),
        "timeout": webhook.timeout or "",
        "retry_schedule": ", ".join(webhook.retry_schedule or []),
        "rate_limit": "" if webhook.rate_limit is None else f"{webhook.rate_limit:g}",
        "signature": webhook.signature, "ordering": webhook.ordering,
    }


@page
async def new_endpoint(request: Request, visit: Visit) -> Response:
    tenant = request.path_params["tenant"]
    ops = _ops(visit, tenant)
    ops.require_write()
    return _render(request, visit, "endpoint_form.html", tenant=tenant, form=_EMPTY_FORM,
                   errors={}, webhook=None)


@page
async def create_endpoint(request: Request, visit: Visit) -> Response:
    tenant = request.path_params["tenant"]
    ops = _ops(visit, tenant)
    form = _fields(request)
    try:
        body = WebhookIn.model_validate({"name": form.get("name", "").strip(),
                                         **_chosen(form, "signature"), **_spec_form(form)})
    except ValidationError as exc:
        return _invalid_form(request, visit, tenant, form, invalid(exc), None)
    try:
        fields = body.model_dump(exclude_none=True)
        created = await ops.create(fields.pop("name"), fields)
    except RelayError as exc:
        if exc.status != 422:
            raise
        return _invalid_form(request, visit, tenant, form, exc, None)
    return _render(request, visit, "secret.html", tenant=tenant, webhook=created,
                   secret=created.secret, rotated=None)


def _invalid_form(request: Request, visit: Visit, tenant: str, form: dict[str, str],
                  exc: RelayError, webhook: Webhook | None) -> Response:
    return _render(request, visit, "endpoint_form.html", 422, tenant=tenant,
                   form={**_EMPTY_FORM, **form}, errors=_form_errors(exc), webhook=webhook)


async def _endpoint_page(request: Request, visit: Visit, status: int = 200,
                         **extra: Any) -> Response:
    tenant, webhook_id = request.path_params["tenant"], request.path_params["id"]
    ops = _ops(visit, tenant)
    webhook = await ops.webhook(webhook_id)
    query = _query(request, DeliveriesQuery, limit=PAGE)
    deliveries = await ops.deliveries(webhook_id, query)
    return _render(
        request, visit, "endpoint.html", status, tenant=tenant, webhook=webhook,
        deliveries=deliveries, status_filter=query.status, live=query.after is None,
        secret_in_file=webhook.id in visit.relay.loaded.endpoint_secrets,
        event_types=[t.name for t in ops.event_types()],
        test=extra.pop("test", None), **extra,
    )


@page
async def endpoint(request: Request, visit: Visit) -> Response:
    return await _endpoint_page(request, visit)


@page
async def endpoint_deliveries(request: Request, visit: Visit) -> Response:
    """The deliveries table alone: what the endpoint page polls (htmx) to stay current."""
    tenant, webhook_id = request.path_params["tenant"], request.path_params["id"]
    ops = _ops(visit, tenant)
    query = _query(request, DeliveriesQuery, limit=PAGE)
    deliveries = await ops.deliveries(webhook_id, query)
    return _render(request, visit, "_deliveries.html", tenant=tenant,
                   webhook_id=webhook_id, deliveries=deliveries, status_filter=query.status)


@page
async def edit_endpoint(request: Request, visit: Visit) -> Response:
    tenant, webhook_id = request.path_params["tenant"], request.path_params["id"]
    ops = _ops(visit, tenant)
    webhook = await ops.webhook(webhook_id)
    ops.require_write()
    return _render(request, visit, "endpoint_form.html", tenant=tenant,
                   form=_form_of(webhook), errors={}, webhook=webhook)


@page
async def save_endpoint(request: Request, visit: Visit) -> Response:
    tenant, webhook_id = request.path_params["tenant"], request.path_params["id"]
    ops = _ops(visit, tenant)
    webhook = await ops.webhook(webhook_id)
    form = _fields(request)
    try:
        patch = WebhookPatch.model_validate({"name": form.get("name", "").strip(),
                                             **_spec_form(form)})
        await ops.change(webhook_id, patch.model_dump(exclude_unset=True))
    except ValidationError as exc:
        return _invalid_form(request, visit, tenant, form, invalid(exc), webhook)
    except RelayError as exc:
        if exc.status != 422:
            raise
        return _invalid_form(request, visit, tenant, form, exc, webhook)
    return _see_other(f"/ui/t/{tenant}/endpoints/{webhook_id}?done=saved")


_STATE_CHANGES = {
    "pause": ({"is_paused": True}, "paused"),
    "resume": ({"is_paused": False}, "resumed"),
    "enable": ({"is_active": True}, "enabled"),
}


@page
async def change_state(request: Request, visit: Visit) -> Response:
    tenant, webhook_id = request.path_params["tenant"], request.path_params["id"]
    wanted = _fields(request).get("change", "")
    if wanted not in _STATE_CHANGES:
        raise _invalid_field("change", f"one of {', '.join(_STATE_CHANGES)}")
    changes, done = _STATE_CHANGES[wanted]
    await _ops(visit, tenant).change(webhook_id, changes)
    return _see_other(f"/ui/t/{tenant}/endpoints/{webhook_id}?done={done}")


@page
async def rotate(request: Request, visit: Visit) -> Response:
    tenant, webhook_id = request.path_params["tenant"], request.path_params["id"]
    ops = _ops(visit, tenant)
    try:
        body = RotateIn.model_validate({"grace": _fields(request).get("grace") or None})
    except ValidationError as exc:
        raise invalid(exc) from None
    rotated = await ops.rotate(webhook_id, body.grace)
    webhook = await ops.webhook(webhook_id)
    return _render(request, visit, "secret.html", tenant=tenant, webhook=webhook,
                   secret=rotated.secret, rotated=rotated)


@page
async def send_test(request: Request, visit: Visit) -> Response:
    tenant, webhook_id = request.path_params["tenant"], request.path_params["id"]
    ops = _ops(visit, tenant)
    result = await ops.send_test(webhook_id, _fields(request).get("type") or None)
    if request.headers.get("hx-request"):
        return _render(request, visit, "_test_result.html", tenant=tenant, test=result)
    return await _endpoint_page(request, visit, test=result)


@page
async def recover(request: Request, visit: Visit) -> Response:
    tenant, webhook_id = request.path_params["tenant"], request.path_params["id"]
    ops = _ops(visit, tenant)
    since = _fields(request).get("since", "").strip()
    try:  # a datetime-local field: no zone, read as UTC (the console shows UTC throughout)
        body = RecoverIn.model_validate({"since": since + ("Z" if since else "")})
    except ValidationError as exc:
        raise invalid(exc) from None
    recovered = await ops.recover(webhook_id, body.since.timestamp())
    return _see_other(f"/ui/t/{tenant}/endpoints/{webhook_id}?done=recovered"
                      f"&n={recovered.requeued}")


@page
async def delete_endpoint(request: Request, visit: Visit) -> Response:
    tenant, webhook_id = request.path_params["tenant"], request.path_params["id"]
    await _ops(visit, tenant).delete(webhook_id)
    return _see_other(f"/ui/t/{tenant}/endpoints?done=deleted")


# --- deliveries and events -----------------------------------------------------------------


@page
async def delivery(request: Request, visit: Visit) -> Response:
    tenant, ref = request.path_params["tenant"], request.path_params["id"]
    ops = _ops(visit, tenant)
    detail = await ops.delivery(ref)
    return _render(request, visit, "delivery.html", tenant=tenant, delivery=detail)


@page
async def retry(request: Request, visit: Visit) -> Response:
    tenant, ref = request.path_params["tenant"], request.path_params["id"]
    await _ops(visit, tenant).retry(ref)
    return _see_other(f"/ui/t/{tenant}/deliveries/{ref}?done=retried")


@page
async def confirm_cancel(request: Request, visit: Visit) -> Response:
    """Cancel's confirm step: a page of its own (no script dialog), saying what it does."""
    tenant, ref = request.path_params["tenant"], request.path_params["id"]
    ops = _ops(visit, tenant)
    ops.require_write()
    detail = await ops.delivery(ref)
    if detail.status not in CANCELLABLE:
        raise not_cancellable(delivery_number(ref), detail.status)
    webhook = await ops.webhook(detail.webhook_id)
    return _render(request, visit, "cancel.html", tenant=tenant, delivery=detail,
                   webhook=webhook)


@page
async def cancel(request: Request, visit: Visit) -> Response:
    tenant, ref = request.path_params["tenant"], request.path_params["id"]
    await _ops(visit, tenant).cancel(ref)
    return _see_other(f"/ui/t/{tenant}/deliveries/{ref}?done=cancelled")


@page
async def events(request: Request, visit: Visit) -> Response:
    tenant = request.path_params["tenant"]
    ops = _ops(visit, tenant)
    wanted = request.query_params.get("id", "").strip()
    if wanted:
        await ops.own_event(wanted)
        return _see_other(f"/ui/t/{tenant}/events/{urllib.parse.quote(wanted)}")
    times = {name: request.query_params.get(name, "").strip() for name in ("since", "until")}
    # datetime-local fields: no zone, read as UTC (the console shows UTC throughout)
    query = _query(request, EventsQuery, {k: v + "Z" for k, v in times.items() if v},
                   limit=PAGE)
    listed = await ops.events(query)
    kept = {k: v for k, v in {"type": query.type, **times}.items() if v}
    return _render(request, visit, "events.html", tenant=tenant, page=listed,
                   type_filter=query.type or "", times=times,
                   more=urllib.parse.urlencode({**kept, "after": listed.next or ""}),
                   event_types=[t.name for t in ops.event_types()])


@page
async def event(request: Request, visit: Visit) -> Response:
    tenant, event_id = request.path_params["tenant"], request.path_params["id"]
    ops = _ops(visit, tenant)
    found = await ops.event(event_id)
    deliveries = await ops.event_deliveries(event_id)
    webhooks = await ops.webhooks(PageQuery(limit=PAGE_MAX, after=None))
    return _render(request, visit, "event.html", tenant=tenant, event=found,
                   deliveries=deliveries, webhooks=webhooks.data)


@page
async def replay(request: Request, visit: Visit) -> Response:
    tenant, event_id = request.path_params["tenant"], request.path_params["id"]
    target = _fields(request).get("endpoint", "")
    replayed = await _ops(visit, tenant).replay(event_id, [target] if target else None)
    return _see_other(f"/ui/t/{tenant}/events/{event_id}?done=replayed"
                      f"&n={len(replayed.deliveries)}")


@page
async def event_types(request: Request, visit: Visit) -> Response:
    tenant = _home_tenant(visit)
    ops = _ops(visit, tenant)
    return _render(request, visit, "event_types.html", tenant=tenant, types=ops.event_types())


_T = "/t/{tenant}"
ROUTES: list[BaseRoute] = [
    Route("/", overview, methods=["GET"]),
    Route("/login", login, methods=["GET"]),
    Route("/login", login_post, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/portal", portal, methods=["GET"]),
    Route("/theme.css", theme, methods=["GET"]),
    Route("/endpoints", endpoints_home, methods=["GET"]),
    Route("/event-types", event_types, methods=["GET"]),
    Route(f"{_T}/endpoints", endpoints, methods=["GET"]),
    Route(f"{_T}/endpoints", create_endpoint, methods=["POST"]),
    Route(f"{_T}/endpoints/new", new_endpoint, methods=["GET"]),
    Route(f"{_T}/endpoints/{{id}}", endpoint, methods=["GET"]),
    Route(f"{_T}/endpoints/{{id}}/deliveries", endpoint_deliveries, methods=["GET"]),
    Route(f"{_T}/endpoints/{{id}}/edit", edit_endpoint, methods=["GET"]),
    Route(f"{_T}/endpoints/{{id}}/edit", save_endpoint, methods=["POST"]),
    Route(f"{_T}/endpoints/{{id}}/state", change_state, methods=["POST"]),
    Route(f"{_T}/endpoints/{{id}}/rotate", rotate, methods=["POST"]),
    Route(f"{_T}/endpoints/{{id}}/test", send_test, methods=["POST"]),
    Route(f"{_T}/endpoints/{{id}}/recover", recover, methods=["POST"]),
    Route(f"{_T}/endpoints/{{id}}/delete", delete_endpoint, methods=["POST"]),
    Route(f"{_T}/deliveries/{{id}}", delivery, methods=["GET"]),
    Route(f"{_T}/deliveries/{{id}}/retry", retry, methods=["POST"]),
    Route(f"{_T}/deliveries/{{id}}/cancel", confirm_cancel, methods=["GET"]),
    Route(f"{_T}/deliveries/{{id}}/cancel", cancel, methods=["POST"]),
    Route(f"{_T}/events", events, methods=["GET"]),
    Route(f"{_T}/events/{{id}}", event, methods=["GET"]),
    Route(f"{_T}/events/{{id}}/replay", replay, methods=["POST"]),
    Mount("/static", StaticFiles(directory=_HERE / "static"), name="ui-static"),
]
