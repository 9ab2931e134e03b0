"""POST /api/v1/auth/app-portal-access/{app_id}: a link opening relay's own portal for
the tenant (Svix's open-source server answers a placeholder), minted as
/v1/portal-sessions mints one (operations.portal_link)."""

from __future__ import annotations

from starlette.responses import Response

from relay.api.svix import applications
from relay.api.svix.calls import Call
from relay.api.svix.endpoints import answer
from relay.api.svix.models import PortalIn, PortalOut
from relay.operations import portal_link

_MANAGE = "ManageEndpoint"  # the capability without which Svix's portal only looks


async def app_portal_access(call: Call) -> Response:
    """`readOnly`, or `capabilities` without ManageEndpoint: a read-only portal; `expiry`
    seconds (Svix's default 7 days); `application` creates {app_id} when it does not
    exist (as Svix)."""
    app_id = call.path("app_id")
    given = call.parse(PortalIn)
    await applications.ensure(call, app_id, given.application)
    tenant = call.tenant(app_id)
    read_only = given.read_only or (given.capabilities is not None
                                    and _MANAGE not in given.capabilities)
    url, token, _ = await portal_link(call.relay, tenant.id, float(given.expiry), read_only)
    return answer(PortalOut(url=url, token=token))
