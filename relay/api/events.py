"""GET /v1/events, /v1/events/{id}, POST /v1/events/{id}/replay (SPEC §6); ingest is in
relay.api.ingest."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from relay.api.common import answer, body, operations_for, query
from relay.models import EventsQuery, ReplayIn


async def list_events(request: Request) -> JSONResponse:
    operations = operations_for(request)
    return answer(await operations.events(query(request, EventsQuery)))


async def get_event(request: Request) -> JSONResponse:
    return answer(await operations_for(request).event(request.path_params["id"]))


async def replay_event(request: Request) -> JSONResponse:
    operations = operations_for(request)
    event_id = request.path_params["id"]
    await operations.own_event(event_id)  # 404 before the body's 422
    given = await body(request, ReplayIn, optional=True)
    return answer(await operations.replay(event_id, given.endpoints), 202)
