"""The endpoint pages: the lists (a tenant's, and the operator's of every tenant), one
endpoint with its deliveries, its form, and the changes it offers (pause, resume,
re-enable, rotate, test, recover, delete)."""

from __future__ import annotations

import urllib.parse
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from relay.errors import RelayError
from relay.models import (
    DeliveriesQuery,
    PageQuery,
    RecoverIn,
    RotateIn,
    Webhook,
    WebhookIn,
    WebhookPatch,
    invalid,
)
from relay.operations import WEBHOOK_STATES, list_webhooks
from relay.ui.answers import PAGE, page, render, see_other
from relay.ui.forms import (
    EMPTY_FORM,
    chosen,
    fields,
    form_errors,
    form_of,
    invalid_field,
    read_query,
    spec_form,
    state_param,
)
from relay.ui.security import SignIn, Visit, home_tenant, operations_for


@page
async def endpoints_home(request: Request, visit: Visit) -> Response:
    """The operator's endpoints of every tenant (a tenant column, filters by tenant and
    state); a portal visitor goes to its own tenant's list."""
    if visit.session.kind == "a":
        raise SignIn()
    if not visit.operator:
        return see_other(f"/ui/t/{home_tenant(visit)}/endpoints")
    picked = request.query_params.get("tenant") or None
    if picked is not None:
        operations_for(visit, picked)  # a 404 for a tenant relay does not have
    query = read_query(request, PageQuery, limit=PAGE)
    state = state_param(request)
    listed = await list_webhooks(visit.relay, picked, query, state)
    return render(request, visit, "endpoints.html", tenant=picked, page=listed,
                  state=state, states=WEBHOOK_STATES, all_tenants=True, picked=picked,
                  more=urllib.parse.urlencode({k: v for k, v in {
                      "tenant": picked, "state": state, "after": listed.next}.items() if v}))


@page
async def endpoints(request: Request, visit: Visit) -> Response:
    tenant = request.path_params["tenant"]
    operations = operations_for(visit, tenant)
    query = read_query(request, PageQuery, limit=PAGE)
    state = state_param(request)
    listed = await operations.webhooks(query, state)
    return render(request, visit, "endpoints.html", tenant=tenant, page=listed,
                  state=state, states=WEBHOOK_STATES, all_tenants=False, picked=tenant,
                  more=urllib.parse.urlencode({k: v for k, v in {
                      "state": state, "after": listed.next}.items() if v}))


@page
async def new_endpoint(request: Request, visit: Visit) -> Response:
    tenant = request.path_params["tenant"]
    operations = operations_for(visit, tenant)
    operations.require_write()
    return render(request, visit, "endpoint_form.html", tenant=tenant, form=EMPTY_FORM,
                  errors={}, webhook=None)


@page
async def create_endpoint(request: Request, visit: Visit) -> Response:
    tenant = request.path_params["tenant"]
    operations = operations_for(visit, tenant)
    form = fields(request)
    try:
        body = WebhookIn.model_validate({"name": form.get("name", "").strip(),
                                         **chosen(form, "signature"), **spec_form(form)})
    except ValidationError as exc:
        return _invalid_form(request, visit, tenant, form, invalid(exc), None)
    try:
        given = body.model_dump(exclude_none=True)
        created = await operations.create(given.pop("name"), given)
    except RelayError as exc:
        if exc.status != 422:
            raise
        return _invalid_form(request, visit, tenant, form, exc, None)
    return render(request, visit, "secret.html", tenant=tenant, webhook=created,
                  secret=created.secret, rotated=None)


def _invalid_form(request: Request, visit: Visit, tenant: str, form: dict[str, str],
                  exc: RelayError, webhook: Webhook | None) -> Response:
    return render(request, visit, "endpoint_form.html", 422, tenant=tenant,
                  form={**EMPTY_FORM, **form}, errors=form_errors(exc), webhook=webhook)


async def _endpoint_page(request: Request, visit: Visit, status: int = 200,
                         **extra: Any) -> Response:
    tenant, webhook_id = request.path_params["tenant"], request.path_params["id"]
    operations = operations_for(visit, tenant)
    webhook = await operations.webhook(webhook_id)
    query = read_query(request, DeliveriesQuery, limit=PAGE)
    deliveries = await operations.deliveries(webhook_id, query)
    return render(
        request, visit, "endpoint.html", status, tenant=tenant, webhook=webhook,
        deliveries=deliveries, status_filter=query.status, live=query.after is None,
        secret_in_file=webhook.id in visit.relay.loaded.endpoint_secrets,
        event_types=[t.name for t in operations.event_types()],
        test=extra.pop("test", None), **extra,
    )


@page
async def endpoint(request: Request, visit: Visit) -> Response:
    return await _endpoint_page(request, visit)


@page
async def endpoint_deliveries(request: Request, visit: Visit) -> Response:
    """The deliveries table alone: what the endpoint page polls (htmx) to stay current."""
    tenant, webhook_id = request.path_params["tenant"], request.path_params["id"]
    operations = operations_for(visit, tenant)
    query = read_query(request, DeliveriesQuery, limit=PAGE)
    deliveries = await operations.deliveries(webhook_id, query)
    return render(request, visit, "_deliveries.html", tenant=tenant,
                  webhook_id=webhook_id, deliveries=deliveries, status_filter=query.status)


@page
async def edit_endpoint(request: Request, visit: Visit) -> Response:
    tenant, webhook_id = request.path_params["tenant"], request.path_params["id"]
    operations = operations_for(visit, tenant)
    webhook = await operations.webhook(webhook_id)
    operations.require_write()
    return render(request, visit, "endpoint_form.html", tenant=tenant,
                  form=form_of(webhook), errors={}, webhook=webhook)


@page
async def save_endpoint(request: Request, visit: Visit) -> Response:
    tenant, webhook_id = request.path_params["tenant"], request.path_params["id"]
    operations = operations_for(visit, tenant)
    webhook = await operations.webhook(webhook_id)
    form = fields(request)
    try:
        patch = WebhookPatch.model_validate({"name": form.get("name", "").strip(),
                                             **spec_form(form)})
        await operations.change(webhook_id, patch.model_dump(exclude_unset=True))
    except ValidationError as exc:
        return _invalid_form(request, visit, tenant, form, invalid(exc), webhook)
    except RelayError as exc:
        if exc.status != 422:
            raise
        return _invalid_form(request, visit, tenant, form, exc, webhook)
    return see_other(f"/ui/t/{tenant}/endpoints/{webhook_id}?done=saved")


_STATE_CHANGES = {
    "pause": ({"is_paused": True}, "paused"),
    "resume": ({"is_paused": False}, "resumed"),
    "enable": ({"is_active": True}, "enabled"),
}


@page
async def change_state(request: Request, visit: Visit) -> Response:
    tenant, webhook_id = request.path_params["tenant"], request.path_params["id"]
    wanted = fields(request).get("change", "")
    if wanted not in _STATE_CHANGES:
        raise invalid_field("change", f"one of {', '.join(_STATE_CHANGES)}")
    changes, done = _STATE_CHANGES[wanted]
    await operations_for(visit, tenant).change(webhook_id, changes)
    return see_other(f"/ui/t/{tenant}/endpoints/{webhook_id}?done={done}")


@page
async def rotate(request: Request, visit: Visit) -> Response:
    tenant, webhook_id = request.path_params["tenant"], request.path_params["id"]
    operations = operations_for(visit, tenant)
    try:
        body = RotateIn.model_validate({"grace": fields(request).get("grace") or None})
    except ValidationError as exc:
        raise invalid(exc) from None
    rotated = await operations.rotate(webhook_id, body.grace)
    webhook = await operations.webhook(webhook_id)
    return render(request, visit, "secret.html", tenant=tenant, webhook=webhook,
                  secret=rotated.secret, rotated=rotated)


@page
async def send_test(request: Request, visit: Visit) -> Response:
    tenant, webhook_id = request.path_params["tenant"], request.path_params["id"]
    operations = operations_for(visit, tenant)
    result = await operations.send_test(webhook_id, fields(request).get("type") or None)
    if request.headers.get("hx-request"):
        return render(request, visit, "_test_result.html", tenant=tenant, test=result)
    return await _endpoint_page(request, visit, test=result)


@page
async def recover(request: Request, visit: Visit) -> Response:
    tenant, webhook_id = request.path_params["tenant"], request.path_params["id"]
    operations = operations_for(visit, tenant)
    since = fields(request).get("since", "").strip()
    try:  # a datetime-local field: no zone, read as UTC (the console shows UTC throughout)
        body = RecoverIn.model_validate({"since": since + ("Z" if since else "")})
    except ValidationError as exc:
        raise invalid(exc) from None
    recovered = await operations.recover(webhook_id, body.since.timestamp())
    return see_other(f"/ui/t/{tenant}/endpoints/{webhook_id}?done=recovered"
                     f"&n={recovered.requeued}")


@page
async def delete_endpoint(request: Request, visit: Visit) -> Response:
    tenant, webhook_id = request.path_params["tenant"], request.path_params["id"]
    await operations_for(visit, tenant).delete(webhook_id)
    return see_other(f"/ui/t/{tenant}/endpoints?done=deleted")
