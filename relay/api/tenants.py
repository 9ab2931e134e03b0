"""/v1/tenants: tenants as data, for admin keys (SPEC §10).

Thin: each route parses its input with relay.directory_models and calls
relay.operations.tenants, where the rules live (shared with the console and /api/v1).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from relay.api.common import answer, as_admin, body, query
from relay.directory_models import TenantIn, TenantPatch, tenant_of
from relay.models import PageQuery
from relay.operations import tenants


async def list_tenants(request: Request) -> JSONResponse:
    relay = as_admin(request)
    return answer(await tenants.list_tenants(relay, query(request, PageQuery)))


async def create_tenant(request: Request) -> JSONResponse:
    relay = as_admin(request)
    given = await body(request, TenantIn)
    tenant = await tenants.create_tenant(relay, given.id, given.name or given.id,
                                         given.metadata, given.max_webhooks,
                                         given.webhooks_enabled)
    return answer(tenant_of(tenant), 201)


async def get_tenant(request: Request) -> JSONResponse:
    relay = as_admin(request)
    return answer(tenant_of(tenants.get_tenant(relay, request.path_params["id"])))


async def patch_tenant(request: Request) -> JSONResponse:
    relay = as_admin(request)
    tenant_id = request.path_params["id"]
    tenants.get_tenant(relay, tenant_id)  # 404 before the body's 422
    given = (await body(request, TenantPatch)).model_dump(exclude_unset=True)
    return answer(tenant_of(await tenants.change_tenant(relay, tenant_id, given)))


async def delete_tenant(request: Request) -> Response:
    await tenants.delete_tenant(as_admin(request), request.path_params["id"])
    return Response(status_code=204)
