"""/v1/webhooks/{id}/deliveries, /v1/deliveries/{id}, .../retry, .../cancel (SPEC §6)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from relay.api.common import answer, operations_for, query
from relay.models import DeliveriesQuery


async def list_deliveries(request: Request) -> JSONResponse:
    operations = operations_for(request)
    webhook_id = request.path_params["id"]
    await operations.own_webhook(webhook_id)  # 404 before the query's 422
    return answer(await operations.deliveries(webhook_id, query(request, DeliveriesQuery)))


async def get_delivery(request: Request) -> JSONResponse:
    return answer(await operations_for(request).delivery(request.path_params["id"]))


async def retry_delivery(request: Request) -> JSONResponse:
    return answer(await operations_for(request).retry(request.path_params["id"]), 202)


async def cancel_delivery(request: Request) -> JSONResponse:
    return answer(await operations_for(request).cancel(request.path_params["id"]))
