"""The event pages: the list (by type and time, or straight to one id), one event with its
deliveries and replay."""

from __future__ import annotations

import urllib.parse

from starlette.requests import Request
from starlette.responses import Response

from relay.models import PAGE_MAX, EventsQuery, PageQuery
from relay.ui.answers import PAGE, page, render, see_other
from relay.ui.forms import fields, read_query
from relay.ui.security import Visit, operations_for


@page
async def events(request: Request, visit: Visit) -> Response:
    tenant = request.path_params["tenant"]
    operations = operations_for(visit, tenant)
    wanted = request.query_params.get("id", "").strip()
    if wanted:
        await operations.own_event(wanted)
        return see_other(f"/ui/t/{tenant}/events/{urllib.parse.quote(wanted)}")
    times = {name: request.query_params.get(name, "").strip() for name in ("since", "until")}
    # datetime-local fields: no zone, read as UTC (the console shows UTC throughout)
    query = read_query(request, EventsQuery, {k: v + "Z" for k, v in times.items() if v},
                       limit=PAGE)
    listed = await operations.events(query)
    kept = {k: v for k, v in {"type": query.type, **times}.items() if v}
    return render(request, visit, "events.html", tenant=tenant, page=listed,
                  type_filter=query.type or "", times=times,
                  more=urllib.parse.urlencode({**kept, "after": listed.next or ""}),
                  event_types=[t.name for t in operations.event_types()])


@page
async def event(request: Request, visit: Visit) -> Response:
    tenant, event_id = request.path_params["tenant"], request.path_params["id"]
    operations = operations_for(visit, tenant)
    found = await operations.event(event_id)
    deliveries = await operations.event_deliveries(event_id)
    webhooks = await operations.webhooks(PageQuery(limit=PAGE_MAX, after=None))
    return render(request, visit, "event.html", tenant=tenant, event=found,
                  deliveries=deliveries, webhooks=webhooks.data)


@page
async def replay(request: Request, visit: Visit) -> Response:
    tenant, event_id = request.path_params["tenant"], request.path_params["id"]
    target = fields(request).get("endpoint", "")
    replayed = await operations_for(visit, tenant).replay(event_id, [target] if target else None)
    return see_other(f"/ui/t/{tenant}/events/{event_id}?done=replayed"
                     f"&n={len(replayed.deliveries)}")
