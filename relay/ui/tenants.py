"""The operator's tenant pages: the list, one tenant with its keys, its form, and the
changes /v1/tenants offers (create, edit, disable and enable, delete after a confirm
page). A portal session never reaches them (security.admin_of); the file's tenants are
shown and left to the file, as relay.operations.tenants decides."""

from __future__ import annotations

import urllib.parse

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from relay.config.values import format_duration
from relay.directory import Tenant
from relay.directory_models import ApiKeysQuery, TenantIn, TenantPatch
from relay.errors import RelayError
from relay.models import PAGE_MAX, PageQuery, invalid
from relay.operations import keys, tenants
from relay.ui.answers import PAGE, page, render, see_other
from relay.ui.forms import fields, form_errors, invalid_field, read_query, tenant_form
from relay.ui.security import Visit, admin_of

EMPTY_FORM = {"id": "", "name": "", "metadata": "", "max_webhooks": "",
              "webhooks_enabled": "on"}


def _form_of(tenant: Tenant) -> dict[str, str]:
    """A tenant as its edit form shows it."""
    return {"id": tenant.id, "name": tenant.name,
            "metadata": "\n".join(f"{k}={v}" for k, v in tenant.metadata.items()),
            "max_webhooks": "" if tenant.max_webhooks is None else str(tenant.max_webhooks),
            "webhooks_enabled": "on" if tenant.webhooks_enabled else ""}


def _url(tenant_id: str) -> str:
    return "/ui/tenants/" + urllib.parse.quote(tenant_id, safe="")


@page
async def tenant_list(request: Request, visit: Visit) -> Response:
    relay = admin_of(visit)
    query = read_query(request, PageQuery, limit=PAGE)
    listed = await tenants.list_tenants(relay, query)
    return render(request, visit, "tenants.html", page=listed,
                  counts=tenants.webhook_counts(relay),
                  more=urllib.parse.urlencode({"after": listed.next or ""}))


@page
async def new_tenant(request: Request, visit: Visit) -> Response:
    admin_of(visit, change=True)
    return render(request, visit, "tenant_form.html", form=EMPTY_FORM, errors={},
                  editing=None)


def _invalid(request: Request, visit: Visit, form: dict[str, str], exc: RelayError,
             editing: Tenant | None) -> Response:
    """The form again, as sent, with each error beside its field (a 409 beside the id:
    the file has it, or a tenant has it already)."""
    errors = {"id": exc.message} if exc.status == 409 else form_errors(exc)
    return render(request, visit, "tenant_form.html", exc.status,
                  form={**EMPTY_FORM, **form, "webhooks_enabled": form.get(
                      "webhooks_enabled", "")}, errors=errors, editing=editing)


@page
async def create_tenant(request: Request, visit: Visit) -> Response:
    relay = admin_of(visit, change=True)
    form = fields(request)
    try:
        body = TenantIn.model_validate({"id": form.get("id", "").strip(), **tenant_form(form),
                                        "webhooks_enabled": bool(form.get("webhooks_enabled"))})
        created = await tenants.create_tenant(relay, body.id, body.name or body.id,
                                              body.metadata, body.max_webhooks,
                                              body.webhooks_enabled)
    except ValidationError as exc:
        return _invalid(request, visit, form, invalid(exc), None)
    except RelayError as exc:
        if exc.status not in (409, 422):
            raise
        return _invalid(request, visit, form, exc, None)
    return see_other(f"{_url(created.id)}?done=tenant-created")


@page
async def tenant(request: Request, visit: Visit) -> Response:
    relay = admin_of(visit)
    found = tenants.get_tenant(relay, request.path_params["id"])
    its_keys = await keys.list_keys(relay, ApiKeysQuery(limit=PAGE_MAX, tenant=found.id))
    return render(request, visit, "tenant.html", shown=found,
                  webhooks=tenants.webhook_counts(relay)[found.id], keys=its_keys,
                  where=relay.loaded.source or "the config file")


def _editable(visit: Visit, tenant_id: str) -> Tenant:
    """A data tenant to change; the file's get the operations' 409 before any form."""
    return tenants.data_tenant(admin_of(visit, change=True), tenant_id)


@page
async def edit_tenant(request: Request, visit: Visit) -> Response:
    found = _editable(visit, request.path_params["id"])
    return render(request, visit, "tenant_form.html", form=_form_of(found), errors={},
                  editing=found)


@page
async def save_tenant(request: Request, visit: Visit) -> Response:
    found = _editable(visit, request.path_params["id"])
    form = fields(request)
    try:
        given = tenant_form(form)
        patch = TenantPatch.model_validate({**given, "name": given["name"] or ""})
        await tenants.change_tenant(visit.relay, found.id, patch.model_dump(exclude_unset=True))
    except ValidationError as exc:
        return _invalid(request, visit, {**form, "id": found.id}, invalid(exc), found)
    except RelayError as exc:
        if exc.status != 422:
            raise
        return _invalid(request, visit, {**form, "id": found.id}, exc, found)
    return see_other(f"{_url(found.id)}?done=saved")


_STATES = {"disable": (False, "tenant-disabled"), "enable": (True, "tenant-enabled")}


@page
async def change_state(request: Request, visit: Visit) -> Response:
    relay = admin_of(visit, change=True)
    tenant_id = request.path_params["id"]
    wanted = fields(request).get("change", "")
    if wanted not in _STATES:
        raise invalid_field("change", f"one of {', '.join(_STATES)}")
    enabled, done = _STATES[wanted]
    await tenants.change_tenant(relay, tenant_id, {"webhooks_enabled": enabled})
    return see_other(f"{_url(tenant_id)}?done={done}")


@page
async def confirm_delete(request: Request, visit: Visit) -> Response:
    found = _editable(visit, request.path_params["id"])
    relay = visit.relay
    its_keys = [k for k in relay.directory.keys.values() if k.tenant == found.id]
    return render(request, visit, "tenant_delete.html", shown=found,
                  webhooks=tenants.webhook_counts(relay)[found.id], keys=len(its_keys),
                  retention=format_duration(relay.config.storage.retention))


@page
async def delete_tenant(request: Request, visit: Visit) -> Response:
    relay = admin_of(visit, change=True)
    removed = await tenants.delete_tenant(relay, request.path_params["id"])
    return see_other(f"/ui/tenants?done=tenant-deleted&n={len(removed.endpoints)}")
