"""Signing in with an admin API key, signing out, and entering through a portal link."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from relay import auth
from relay.errors import TooManyAuthFailures, Unauthorized
from relay.sessions import granted, new_session, verify
from relay.ui.answers import page, render, see_other
from relay.ui.forms import fields
from relay.ui.security import (
    VISITOR_HOURS,
    Visit,
    end_session,
    key_digest,
    safe_next,
    sign_in,
    switch,
)


@page
async def login(request: Request, visit: Visit) -> Response:
    nxt = safe_next(request.query_params.get("next"))
    if visit.operator:
        return see_other(nxt)
    return render(request, visit, "login.html", next=nxt, error=None)


@page
async def login_post(request: Request, visit: Visit) -> Response:
    form = fields(request)
    nxt = safe_next(form.get("next"))
    try:  # failed sign-ins count with the API's failed keys (relay.throttle)
        auth.admit(request)
    except TooManyAuthFailures as exc:
        response = render(request, visit, "login.html", exc.status, next=nxt,
                          error=f"Too many failed sign-ins from this address: try again "
                          f"in {exc.retry_after} s.")
        response.headers.update(exc.headers)
        return response
    given = form.get("key", "").strip()
    digest = key_digest(given)
    relay = visit.relay
    key = relay.directory.key(digest)
    expired = key is not None and key.expired(relay.clock())
    if key is not None and not expired and "admin" in key.scopes:
        # A key that expires ends its session then.
        session = await sign_in(visit, "o", digest[:16], until=key.expires_at)
        switch(request, visit, session)
        return see_other(nxt)
    auth.failed(request, "expired" if expired else "not_admin" if key else
                "unknown" if given else "missing", given)
    return render(request, visit, "login.html", 401, next=nxt,
                  error="That is not an admin API key of this relay.")


@page
async def logout(request: Request, visit: Visit) -> Response:
    relay = visit.relay
    await end_session(visit)  # on every process, not only in this browser
    session = new_session("a", "-", relay.clock() + VISITOR_HOURS * 3600, False)
    switch(request, visit, session)
    return see_other("/ui/login")


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
    if link is None or link.kind != "p" or not granted(relay.directory, link):
        raise Unauthorized("this portal link is invalid or has expired: ask for a new one")
    session = await sign_in(visit, "p", link.subject, link.read_only, until=link.expires_at)
    visit = switch(request, visit, session)
    return render(request, visit, "portal.html", target=f"/ui/t/{link.subject}/endpoints")
