"""POST /v1/portal-sessions: a signed, expiring link to one tenant's portal (SPEC §6, §9)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field
from starlette.requests import Request
from starlette.responses import JSONResponse

from relay.api.common import answer, body
from relay.auth import authenticate, tenant_for
from relay.config.values import Text
from relay.models import Duration, StrictBody, Time
from relay.operations import portal_link
from relay.runtime import Relay

MAX_PORTAL_SESSION = 30 * 86400.0  # a month: longer-lived links belong in a login system


def _at_most_30d(seconds: float) -> float:
    if not 0 < seconds <= MAX_PORTAL_SESSION:
        raise ValueError("must be more than 0s and at most 30d")
    return seconds


class PortalSessionIn(StrictBody):
    tenant: Text = Field(description="The tenant whose endpoints the portal shows.",
                        examples=["acme"])
    expires_in: Annotated[Duration, AfterValidator(_at_most_30d)] = Field(
        "1h", validate_default=True,
        description="How long the link lasts, at most 30d; a session it opens ends then "
        "or sooner ([ui] session_idle, session_lifetime).")
    read_only: bool = Field(False, description="true: the portal shows but changes nothing.")


class PortalSession(BaseModel):
    url: str = Field(description="Open this to enter the portal; it carries the signed token.")
    expires_at: Time


async def create_portal_session(request: Request) -> JSONResponse:
    relay: Relay = request.app.state.relay
    principal = authenticate(request, relay.directory, "admin")
    given = await body(request, PortalSessionIn)
    tenant = tenant_for(principal, given.tenant, relay.directory)
    url, _, expires_at = await portal_link(relay, tenant.id, given.expires_in, given.read_only)
    return answer(PortalSession(url=url, expires_at=expires_at), 201)
