"""/v1/event-types: the catalog (the config file's types, those made through the API,
relay's own), readable by any key; creating, changing and deleting take an admin key.

Thin: each route parses its input with relay.models and calls
relay.operations.event_types, where the rules live (shared with the console and /api/v1).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from relay.api.common import answer, as_admin, body, operations_for, query
from relay.models import EventTypeIn, EventTypePatch, PageQuery, event_type_of
from relay.operations import event_types


async def list_event_types(request: Request) -> JSONResponse:
    relay = operations_for(request).relay
    return answer(await event_types.list_event_types(relay, query(request, PageQuery)))


async def get_event_type(request: Request) -> JSONResponse:
    relay = operations_for(request).relay
    return answer(event_type_of(event_types.get_event_type(relay, request.path_params["name"])))


async def event_type_sample(request: Request) -> JSONResponse:
    relay = operations_for(request).relay
    return answer(event_types.sample(relay, request.path_params["name"]))


async def create_event_type(request: Request) -> JSONResponse:
    relay = as_admin(request)
    given = await body(request, EventTypeIn)
    created = await event_types.create_event_type(
        relay, given.name, given.description, given.sample, given.schema_, given.deprecated)
    return answer(event_type_of(created), 201)


async def patch_event_type(request: Request) -> JSONResponse:
    relay = as_admin(request)
    name = request.path_params["name"]
    event_types.get_event_type(relay, name)  # 404 before the body's 422
    given = (await body(request, EventTypePatch)).model_dump(exclude_unset=True)
    changes = {k.rstrip("_"): v for k, v in given.items()}  # schema_ -> schema
    return answer(event_type_of(await event_types.change_event_type(relay, name, changes)))


async def delete_event_type(request: Request) -> Response:
    await event_types.delete_event_type(as_admin(request), request.path_params["name"])
    return Response(status_code=204)
