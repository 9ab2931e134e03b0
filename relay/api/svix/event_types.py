"""/api/v1/event-type...: relay's event types, made, changed and deleted by the
operations /v1/event-types and the console call (relay.operations.event_types).

As Svix: a type made here is documentation, not enforced at ingest (`enforced=False`:
docs/svix.md, A4); a delete archives it (`expunge=true` deletes it), an archived type is
shown only with `include_archived`, and a create over it brings it back; `schemas` is
Svix's versioned map, relay's one schema being version "1", and its first example is
the type's sample. The file's types answer 409, and relay's own (`relay.*`) are not
shown.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from starlette.responses import Response

from relay.api.svix import convert, errors, pages
from relay.api.svix.calls import Call
from relay.api.svix.endpoints import answer
from relay.api.svix.models import (
    EventTypeIn,
    EventTypePatch,
    EventTypeQuery,
    EventTypesQuery,
    EventTypeUpsert,
    ExpungeQuery,
    Schemas,
    is_name,
)
from relay.delivery.operational import is_operational
from relay.directory import EventType
from relay.errors import Conflict, NotFound, Unprocessable
from relay.operations import event_types
from relay.runtime import Relay
from relay.text import control_problem

# relay's fields (an operation's 422) by Svix's names.
_FIELDS = {"schema": "schemas.1", "sample": "schemas.1.examples[0]"}


@contextmanager
def _svix_fields() -> Iterator[None]:
    try:
        yield
    except Unprocessable as exc:
        raise errors.fields(exc, _FIELDS) from None


def _schema(schemas: Schemas | None) -> dict[str, Any] | None:
    return None if schemas is None else schemas.get("1")


def _sample(schema: dict[str, Any] | None) -> dict[str, Any]:
    """The schema's first example (Svix's), when it is an object: what send-example sends."""
    examples = None if schema is None else schema.get("examples")
    first = examples[0] if isinstance(examples, list) and examples else None
    return first if isinstance(first, dict) else {}


def _name(call: Call) -> str:
    """The path's name; one no event type can have (a control character) is a 404."""
    name = call.path("event_type_name")
    if control_problem(name):
        raise NotFound(f"no event type {name!r}")
    return name


def _find(relay: Relay, name: str, include_archived: bool) -> EventType:
    if is_operational(name):
        raise NotFound(f"no event type {name!r}")
    return event_types.get_event_type(relay, name, include_archived)


async def _create(relay: Relay, name: str, given: EventTypeUpsert) -> EventType:
    """A new type, or an archived one brought back with these fields."""
    schema = _schema(given.schemas)
    with _svix_fields():
        made = await event_types.create_event_type(
            relay, name, given.description, _sample(schema), schema, given.deprecated,
            enforced=False, unarchive=True)
    if given.archived:
        made = await event_types.change_event_type(relay, name, {"archived": True})
    return made


async def list_event_types(call: Call) -> Response:
    query = call.query(EventTypesQuery)
    order = pages.order(query, "ascending")
    types = sorted((t for t in call.relay.directory.catalog(query.include_archived)
                    if not is_operational(t.name)), key=lambda t: t.name)
    if order == "descending":
        types.reverse()
    scope = f"svix event types {order} {query.include_archived}"
    found, position, more = await pages.scan(
        pages.in_memory(types, lambda t: t.name), lambda t: True, lambda t: t.name,
        await pages.start(call.relay, scope, query.iterator), query.limit)
    data = [convert.event_type_out(t, query.with_content) for t in found]
    return answer(await pages.answer(call.relay, scope, data, position, more))


async def get_event_type(call: Call) -> Response:
    query = call.query(EventTypeQuery)
    event_type = _find(call.relay, _name(call), query.include_archived)
    return answer(convert.event_type_out(event_type, query.with_content))


async def create_event_type(call: Call) -> Response:
    """201; a name that exists, not archived: 409 `event_type_exists`, as Svix."""
    given = call.parse(EventTypeIn)
    try:
        made = await _create(call.relay, given.name, given)
    except Conflict as exc:
        return errors.answer(409, exc.message, "event_type_exists")
    return answer(convert.event_type_out(made), 201)


async def upsert_event_type(call: Call) -> Response:
    """PUT: every field replaced; a missing type is created (201)."""
    name = _name(call)
    given = call.parse(EventTypeUpsert)
    if is_operational(name) or not is_name(name):
        raise errors.Invalid([errors.problem(
            "path", ["event_type_name"], f"{name!r} cannot be an event type's name: "
            "letters, digits, '-', '_' and '.', not starting with 'relay.'")])
    if name not in call.relay.directory.event_types:
        return answer(convert.event_type_out(await _create(call.relay, name, given)), 201)
    schema = _schema(given.schemas)
    with _svix_fields():
        changed = await event_types.change_event_type(call.relay, name, {
            "description": given.description, "schema": schema, "sample": _sample(schema),
            "deprecated": given.deprecated, "archived": given.archived})
    return answer(convert.event_type_out(changed))


async def patch_event_type(call: Call) -> Response:
    """The fields sent change; null `schemas` clears the schema (and the sample)."""
    name = _find(call.relay, _name(call), include_archived=True).name
    given = call.parse(EventTypePatch)
    changes: dict[str, Any] = {k: getattr(given, k) for k in
                               ("description", "archived", "deprecated")
                               if getattr(given, k) is not None}
    if "schemas" in given.model_fields_set:
        changes["schema"] = _schema(given.schemas)
        changes["sample"] = _sample(changes["schema"])
    with _svix_fields():
        changed = await event_types.change_event_type(call.relay, name, changes)
    return answer(convert.event_type_out(changed))


async def delete_event_type(call: Call) -> Response:
    """Archived (Svix's delete), or with `expunge=true` deleted."""
    expunge = call.query(ExpungeQuery).expunge
    name = _find(call.relay, _name(call), include_archived=True).name
    await event_types.delete_event_type(call.relay, name, expunge=expunge)
    return Response(status_code=204)
