"""/api/v1/app...: Svix's applications are relay's tenants, read-only for now.

The tenants are the config file's (`[[tenants]]`, and `default`): listed and read here;
creating, changing or deleting one answers 501 until tenants exist as data (SPEC §10).
`get_or_create` of an application that exists answers it, so code written for Svix runs
against a tenant the config defines.
"""

from __future__ import annotations

from starlette.responses import Response

from relay.api.svix import convert, pages
from relay.api.svix.calls import Call
from relay.api.svix.endpoints import answer
from relay.api.svix.models import ApplicationIn, CreateQuery, ListQuery
from relay.directory import Tenant
from relay.errors import Conflict, NotFound, NotImplementedYet
from relay.text import control_problem

_NOT_YET = ("relay does not create, change or delete applications through /api/v1 yet: "
            "they are the tenants of relay's config file ([[tenants]])")


def _tenants(call: Call) -> list[Tenant]:
    """Every tenant an admin sees, or the caller's own."""
    tenants = list(call.relay.directory.tenants.values())
    if not call.admin():
        tenants = [t for t in tenants if t.id == call.principal.tenant]
    return sorted(tenants, key=lambda t: t.id)


async def list_applications(call: Call) -> Response:
    query = call.query(ListQuery)
    order = pages.order(query, "ascending")
    tenants = _tenants(call)
    if order == "descending":
        tenants.reverse()
    scope = f"svix applications {call.principal.name} {order}"
    found, position, more = await pages.scan(
        pages.in_memory(tenants, lambda t: t.id), lambda t: True, lambda t: t.id,
        await pages.start(call.relay, scope, query.iterator), query.limit)
    data = [convert.application_out(t) for t in found]
    return answer(await pages.answer(call.relay, scope, data, position, more))


async def get_application(call: Call) -> Response:
    return answer(convert.application_out(call.tenant(call.path("app_id"), enabled=False)))


async def create_application(call: Call) -> Response:
    """An application that exists (its uid is a tenant's id): 200 with it for
    `get_if_exists=true` (Svix's get_or_create), else 409; a new one: 501."""
    given = call.parse(ApplicationIn)
    existing = None if given.uid is None else call.relay.directory.named(given.uid)
    if existing is None:
        raise NotImplementedYet(_NOT_YET)
    if not call.query(CreateQuery).get_if_exists:
        raise Conflict("An application with that id or uid already exists")
    return answer(convert.application_out(existing))


async def change_application(call: Call) -> Response:
    """PUT, PATCH, DELETE: an application that exists is config-defined (409, as relay
    answers a change to a config endpoint); PUT of another (Svix creates it) is 501, a
    PATCH or DELETE of one that does not exist 404."""
    app_id = call.path("app_id")
    tenant = None if control_problem(app_id) else call.relay.directory.named(app_id)
    if tenant is not None:
        raise Conflict(f"application {tenant.id!r} is a tenant of relay's config file: "
                       "change it there")
    if call.request.method != "PUT" or control_problem(app_id):
        raise NotFound(f"no application {app_id!r}")
    raise NotImplementedYet(_NOT_YET)
