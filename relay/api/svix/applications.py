"""/api/v1/app...: Svix's applications are relay's tenants, made, changed and deleted
by the operations /v1/tenants and the console call (relay.operations.tenants), whose
rules hold here too: the file's tenants (`default` among them) answer 409 to a change.

Ids (docs/svix.md, A1): an application made here takes its `uid` as its tenant id when
the uid fits relay's tenant ids and no tenant has it, else `app_<ulid>`; a uid may not
start with `app_` (Svix's rule). `{app_id}` is the id or the uid. `throttleRate` is
kept and shown, not enforced (A10).
"""

from __future__ import annotations

import re
from typing import Any

from starlette.responses import Response

from relay.api.svix import convert, pages
from relay.api.svix.calls import Call
from relay.api.svix.endpoints import answer
from relay.api.svix.errors import Invalid, problem
from relay.api.svix.models import (
    ApplicationIn,
    ApplicationPatch,
    CreateQuery,
    ListQuery,
    is_name,
)
from relay.config.values import ID_RE
from relay.directory import Tenant
from relay.errors import Conflict, Forbidden, NotFound
from relay.ids import ulid
from relay.operations import tenants
from relay.runtime import Relay
from relay.text import control_problem

_PREFIX = "app_"  # the ids relay makes for applications: a uid may not look like one


def _tenants(call: Call) -> list[Tenant]:
    """Every tenant an admin sees, or the caller's own."""
    found = list(call.relay.directory.tenants.values())
    if not call.admin():
        found = [t for t in found if t.id == call.principal.tenant]
    return sorted(found, key=lambda t: t.id)


def _uid(uid: str | None, loc: list[str]) -> str | None:
    if uid is not None and uid.startswith(_PREFIX):
        raise Invalid([problem("body", loc, f"a uid may not start with {_PREFIX!r} "
                               "(relay's application ids do)")])
    return uid


async def _create(relay: Relay, given: ApplicationIn, uid: str | None) -> Tenant:
    """A new tenant: its id the uid when that can be a tenant id no tenant has."""
    tenant_id = f"{_PREFIX}{ulid(relay.clock())}"
    if uid is not None and re.fullmatch(ID_RE, uid) and relay.directory.named(uid) is None:
        tenant_id = uid
    return await tenants.create_tenant(relay, tenant_id, given.name, given.metadata or {},
                                       None, True, uid=uid, throttle_rate=given.throttle_rate)


async def ensure(call: Call, app_id: str, given: ApplicationIn | None) -> None:
    """Svix's `application` on a message or a portal link: with no application named
    `app_id`, it is created, when its uid is `app_id` (else 422, as Svix) and the key is
    an admin's."""
    if given is None or control_problem(app_id) or (
            call.relay.directory.named(app_id) is not None):
        return
    if given.uid != app_id:
        raise Invalid([problem("body", ["application", "uid"],
                               f"no application {app_id!r} exists, and this one's uid is "
                               f"not {app_id!r}", "application_uid_mismatch")])
    if not call.admin():
        raise Forbidden("creating an application takes an admin key")
    await _create(call.relay, given, _uid(given.uid, ["application", "uid"]))


async def list_applications(call: Call) -> Response:
    query = call.query(ListQuery)
    order = pages.order(query, "ascending")
    found = _tenants(call)
    if order == "descending":
        found.reverse()
    scope = f"svix applications {call.principal.name} {order}"
    page, position, more = await pages.scan(
        pages.in_memory(found, lambda t: t.id), lambda t: True, lambda t: t.id,
        await pages.start(call.relay, scope, query.iterator), query.limit)
    data = [convert.application_out(t) for t in page]
    return answer(await pages.answer(call.relay, scope, data, position, more))


async def get_application(call: Call) -> Response:
    return answer(convert.application_out(call.tenant(call.path("app_id"), enabled=False)))


async def create_application(call: Call) -> Response:
    """201; a uid an application has (as id or uid): 200 with it for `get_if_exists=true`
    (Svix's get_or_create), else 409."""
    get_if_exists = call.query(CreateQuery).get_if_exists
    given = call.parse(ApplicationIn)
    uid = _uid(given.uid, ["uid"])
    existing = None if uid is None else call.relay.directory.named(uid)
    if existing is not None:
        if not get_if_exists:
            raise Conflict("An application with that id or uid already exists")
        return answer(convert.application_out(existing))
    return answer(convert.application_out(await _create(call.relay, given, uid)), 201)


async def upsert_application(call: Call) -> Response:
    """PUT: every field replaced (the uid kept when none is sent); a missing application
    is created, its uid the one sent or else the path's (docs/svix.md, A7)."""
    app_id = call.path("app_id")
    if control_problem(app_id):
        raise NotFound(f"no application {app_id!r}")
    given = call.parse(ApplicationIn)
    uid = _uid(given.uid, ["uid"])
    tenant = call.relay.directory.named(app_id)
    if tenant is None:
        if uid is None and is_name(app_id) and not app_id.startswith(_PREFIX):
            uid = app_id
        return answer(convert.application_out(await _create(call.relay, given, uid)), 201)
    changes = {"name": given.name, "metadata": given.metadata or {},
               "throttle_rate": given.throttle_rate}
    if "uid" in given.model_fields_set:
        changes["uid"] = uid
    return answer(convert.application_out(
        await tenants.change_tenant(call.relay, tenant.id, changes)))


async def patch_application(call: Call) -> Response:
    """The fields sent change; a null uid or throttleRate clears it."""
    tenant = call.tenant(call.path("app_id"), enabled=False)
    given = call.parse(ApplicationPatch)
    sent = given.model_fields_set
    changes: dict[str, Any] = {k: getattr(given, k) for k in ("uid", "throttle_rate")
                               if k in sent}
    _uid(changes.get("uid"), ["uid"])
    if given.name is not None:
        changes["name"] = given.name
    if "metadata" in sent:
        changes["metadata"] = given.metadata or {}
    return answer(convert.application_out(
        await tenants.change_tenant(call.relay, tenant.id, changes)))


async def delete_application(call: Call) -> Response:
    """relay's tenant delete: its webhooks (unfinished deliveries cancelled) and keys go,
    its events stay until retention."""
    tenant = call.tenant(call.path("app_id"), enabled=False)
    await tenants.delete_tenant(call.relay, tenant.id)
    return Response(status_code=204)
