"""/v1/webhooks...: list, create, change, delete, rotate, reveal the secret, test,
recover (SPEC §6).

Thin: each route parses its input with relay.models and calls relay.operations, where
the rules and the tenant scoping live (shared with the console).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from relay.api.common import answer, body, operations_for, query
from relay.models import PageQuery, RecoverIn, RotateIn, SendTestIn, WebhookIn, WebhookPatch


async def list_webhooks(request: Request) -> JSONResponse:
    operations = operations_for(request)
    return answer(await operations.webhooks(query(request, PageQuery)))


async def create_webhook(request: Request) -> JSONResponse:
    operations = operations_for(request)
    fields = (await body(request, WebhookIn)).model_dump()
    name: str = fields.pop("name")  # create_model's fields are not attributes to mypy
    return answer(await operations.create(name, fields), 201)


async def get_webhook(request: Request) -> JSONResponse:
    return answer(await operations_for(request).webhook(request.path_params["id"]))


async def patch_webhook(request: Request) -> JSONResponse:
    operations = operations_for(request)
    webhook_id = request.path_params["id"]
    await operations.own_webhook(webhook_id)  # 404 before the body's 422
    given = (await body(request, WebhookPatch)).model_dump(exclude_unset=True)
    return answer(await operations.change(webhook_id, given))


async def delete_webhook(request: Request) -> Response:
    await operations_for(request).delete(request.path_params["id"])
    return Response(status_code=204)


async def rotate_secret(request: Request) -> JSONResponse:
    operations = operations_for(request)
    webhook_id = request.path_params["id"]
    await operations.own_webhook(webhook_id)
    given = await body(request, RotateIn, optional=True)
    return answer(await operations.rotate(webhook_id, given.grace))


async def get_secret(request: Request) -> JSONResponse:
    """A GET that reveals what signs deliveries: write scope, as Svix's get_secret."""
    operations = operations_for(request, "webhooks:write")
    return answer(await operations.secret(request.path_params["id"]))


async def send_test(request: Request) -> JSONResponse:
    operations = operations_for(request)
    webhook_id = request.path_params["id"]
    await operations.own_webhook(webhook_id)
    given = await body(request, SendTestIn, optional=True)
    return answer(await operations.send_test(webhook_id, given.type))


async def recover_webhook(request: Request) -> JSONResponse:
    operations = operations_for(request)
    webhook_id = request.path_params["id"]
    await operations.own_webhook(webhook_id)
    given = await body(request, RecoverIn)
    return answer(await operations.recover(webhook_id, given.since.timestamp()), 202)
