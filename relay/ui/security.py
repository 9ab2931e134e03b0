"""Who is looking at the console, and what every answer carries to keep them safe.

Who is looking is a signed session cookie (relay.sessions): an operator (signed in with
an admin API key, or anyone on loopback when relay has no `[[api_keys]]`), a portal
visitor (opened a `/v1/portal-sessions` link: one tenant, maybe read-only), or nobody yet
(the cookie then only carries the nonce the login form's CSRF token is bound to). A
signed-in session also has a row in the database, read on every request: signing out,
idle time, and a config that no longer grants its key or tenant end it on every process.
The cookie is HttpOnly, SameSite=Strict, Secure unless relay is on loopback over http.
Every POST carries the session's CSRF token; every page has a CSP without inline scripts.
"""

from __future__ import annotations

import hashlib
import urllib.parse
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from relay.errors import Forbidden, NotFound
from relay.operations import Operations
from relay.runtime import Relay
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
from relay.storage.base import Sessions
from relay.types import SessionRow

COOKIE = "relay_session"
VISITOR_HOURS = 24  # a not-signed-in visitor's cookie (only a CSRF nonce)
# Sent by the endpoint page's automatic refresh of its deliveries: a tab left open is not
# use, so it does not keep a session from its idle end (a client sending it only ends its
# own session sooner).
REFRESH_HEADER = "x-relay-refresh"


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


class SignIn(Exception):
    """Not signed in: GET pages send the visitor to the login form."""


def key_digest(token: str) -> str:
    return hashlib.sha256(token.strip().encode()).hexdigest()


def _sessions(relay: Relay) -> Sessions:
    """The store's role the console's sign-ins use: the session rows."""
    return relay.store


async def _live(request: Request, relay: Relay, session: Session, now: float) -> bool:
    """Whether a validly signed session still holds: this process's config still grants
    its key or tenant, and a signed-in session's row is live (signing out, idle time, and
    another process's config end it there). Its use is written when `decide` says so,
    except by the deliveries table's automatic refresh."""
    if not granted(relay.directory, session):
        return False
    if not session.stored:
        return True
    row = await _sessions(relay).get_session(session.nonce)
    if row is None or (row.kind, row.subject) != (session.kind, session.subject):
        return False
    decision = decide(row, now, relay.config.ui.session_idle)
    if decision == "touch" and not request.headers.get(REFRESH_HEADER):
        await _sessions(relay).touch_session(row.id, now)
    return decision in ("live", "touch")


async def visit_of(request: Request) -> Visit:
    """Who sent `request`: its cookie's live session, else a new one (the operator's on an
    open relay, a visitor's otherwise)."""
    relay: Relay = request.app.state.relay
    key = await relay.secret_key(KEY_NAME, new_key)
    now = relay.clock()
    token = request.cookies.get(COOKIE)
    session = verify(key, token, now) if token else None
    if session is not None and await _live(request, relay, session, now):
        return Visit(relay, key, session, fresh=False)
    if relay.directory.open:  # as the API is (relay refuses to listen beyond loopback then)
        lifetime = relay.config.ui.session_lifetime
        return Visit(relay, key, new_session("o", "-", now + lifetime, False), True)
    return Visit(relay, key, new_session("a", "-", now + VISITOR_HOURS * 3600, False), True)


def require_csrf(visit: Visit, given: str) -> None:
    """Forbidden unless `given` is this session's CSRF token (every POST carries it)."""
    if not csrf_ok(visit.key, visit.session, given):
        raise Forbidden("the form's security token is missing or out of date: "
                        "reload the page and try again")


async def end_session(visit: Visit) -> None:
    """End this browser's signed-in session on every process: its row goes."""
    if visit.session.stored:
        await _sessions(visit.relay).end_session(visit.session.nonce)


async def sign_in(visit: Visit, kind: Kind, subject: str, read_only: bool = False,
                  until: float | None = None) -> Session:
    """A new signed-in session (a new nonce, so a new CSRF token), stored: live until it is
    signed out, idle, `session_lifetime` (or `until`, if sooner) old, or its key or tenant
    is no longer granted. The session it replaces in this browser ends."""
    relay = visit.relay
    await end_session(visit)
    now = relay.clock()
    expires_at = now + relay.config.ui.session_lifetime
    session = new_session(kind, subject, expires_at if until is None else min(until, expires_at),
                          read_only)
    await _sessions(relay).add_session(SessionRow(session.nonce, kind, subject, now, now,
                                                   session.expires_at))
    return session


def switch(request: Request, visit: Visit, session: Session) -> Visit:
    """This answer starts `session` (sign-in, sign-out, portal entry): its cookie is set."""
    visit = Visit(visit.relay, visit.key, session, fresh=True)
    request.state.visit = visit
    return visit


def operations_for(visit: Visit, tenant_id: str) -> Operations:
    """The operations of the tenant a page is in, for this visitor."""
    session = visit.session
    if session.kind == "a":
        raise SignIn()
    if session.kind == "p" and tenant_id != session.subject:
        raise NotFound("no such page")
    tenant = visit.relay.directory.tenant(tenant_id)
    if tenant is None:
        raise NotFound("no such page")
    if not tenant.webhooks_enabled:
        raise Forbidden(f"webhooks are disabled for tenant {tenant_id!r}")
    return Operations(visit.relay, tenant, can_write=not session.read_only)


def admin_of(visit: Visit, change: bool = False) -> Relay:
    """The running relay, for an operator: tenants, API keys and changes to event types
    are an admin's (as the API's `as_admin`). A portal session gets the plain 404 of a
    page it may not see; `change` also refuses a read-only session."""
    session = visit.session
    if session.kind == "a":
        raise SignIn()
    if not visit.operator:
        raise NotFound("no such page")
    if change and session.read_only:
        raise Forbidden("this session is read-only")
    return visit.relay


def home_tenant(visit: Visit) -> str:
    return visit.session.tenant or "default"


def safe_next(value: str | None) -> str:
    """Where to go after signing in: only a path of the console, never another site."""
    if value and value.startswith("/ui/") and not value.startswith("//"):
        return value
    return "/ui/"


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


def finish(request: Request, visit: Visit, response: Response) -> Response:
    """What every console answer carries: its security headers, and the cookie when the
    session is new."""
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
