"""/api/v1/event-type...: relay's declared event types (the config's `[[event_types]]`),
read-only for now: creating, changing or deleting one answers 501 until event types
exist as data (SPEC §10). relay's own operational types (`relay.*`) are not listed."""

from __future__ import annotations

from starlette.responses import Response

from relay.api.svix import convert, pages
from relay.api.svix.calls import Call
from relay.api.svix.endpoints import answer
from relay.api.svix.models import ContentQuery, EventTypesQuery
from relay.delivery.operational import is_operational
from relay.errors import NotFound, NotImplementedYet
from relay.models import EventType, event_type_of
from relay.text import control_problem


def _types(call: Call) -> list[EventType]:
    return sorted((event_type_of(t) for t in call.relay.directory.catalog()
                   if not is_operational(t.name) and not t.archived), key=lambda t: t.name)


async def list_event_types(call: Call) -> Response:
    query = call.query(EventTypesQuery)
    order = pages.order(query, "ascending")
    types = _types(call)
    if order == "descending":
        types.reverse()
    scope = f"svix event types {order}"
    found, position, more = await pages.scan(
        pages.in_memory(types, lambda t: t.name), lambda t: True, lambda t: t.name,
        await pages.start(call.relay, scope, query.iterator), query.limit)
    data = [convert.event_type_out(t, query.with_content) for t in found]
    return answer(await pages.answer(call.relay, scope, data, position, more))


async def get_event_type(call: Call) -> Response:
    name = call.path("event_type_name")
    for event_type in _types(call):
        if event_type.name == name:
            with_content = call.query(ContentQuery).with_content
            return answer(convert.event_type_out(event_type, with_content))
    raise NotFound(f"no event type {name!r}")


async def change_event_type(call: Call) -> Response:
    """501; a name no event type can have (a control character) is a 404 first."""
    name = call.request.path_params.get("event_type_name", "")
    if control_problem(name):
        raise NotFound(f"no event type {name!r}")
    raise NotImplementedYet("relay does not create, change or delete event types through "
                            "/api/v1 yet: they are declared in relay's config file "
                            "([[event_types]])")
