"""A delivery's page (its attempts) and what it offers: retry, and cancel with its confirm
step."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from relay.operations import delivery_number
from relay.types import CANCELLABLE, not_cancellable
from relay.ui.answers import page, render, see_other
from relay.ui.security import Visit, operations_for


@page
async def delivery(request: Request, visit: Visit) -> Response:
    tenant, ref = request.path_params["tenant"], request.path_params["id"]
    operations = operations_for(visit, tenant)
    detail = await operations.delivery(ref)
    return render(request, visit, "delivery.html", tenant=tenant, delivery=detail)


@page
async def retry(request: Request, visit: Visit) -> Response:
    tenant, ref = request.path_params["tenant"], request.path_params["id"]
    await operations_for(visit, tenant).retry(ref)
    return see_other(f"/ui/t/{tenant}/deliveries/{ref}?done=retried")


@page
async def confirm_cancel(request: Request, visit: Visit) -> Response:
    """Cancel's confirm step: a page of its own (no script dialog), saying what it does."""
    tenant, ref = request.path_params["tenant"], request.path_params["id"]
    operations = operations_for(visit, tenant)
    operations.require_write()
    detail = await operations.delivery(ref)
    if detail.status not in CANCELLABLE:
        raise not_cancellable(delivery_number(ref), detail.status)
    webhook = await operations.webhook(detail.webhook_id)
    return render(request, visit, "cancel.html", tenant=tenant, delivery=detail,
                  webhook=webhook)


@page
async def cancel(request: Request, visit: Visit) -> Response:
    tenant, ref = request.path_params["tenant"], request.path_params["id"]
    await operations_for(visit, tenant).cancel(ref)
    return see_other(f"/ui/t/{tenant}/deliveries/{ref}?done=cancelled")
