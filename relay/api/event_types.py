"""GET /v1/event-types and /v1/event-types/{name}/sample: the config's catalog."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from relay.api.common import answer, operations_for
from relay.models import EventType, Page


async def list_event_types(request: Request) -> JSONResponse:
    return answer(Page[EventType](data=operations_for(request).event_types(), next=None))


async def event_type_sample(request: Request) -> JSONResponse:
    return answer(operations_for(request).sample(request.path_params["name"]))
