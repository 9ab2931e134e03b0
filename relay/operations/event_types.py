"""Event types (SPEC §10): what /v1/event-types, the console and Svix's event types
(/api/v1) do, each rule once. Free of HTTP: callers authorise (reads: any key; changes:
an admin's) and translate the answers, the directory's `EventType`s.

The catalog is the directory's: the file's `[[event_types]]`, those made through the
API, and relay's own operational events, never merged. The file's and relay's are
read-only here (409 naming the file); a name the file declares cannot be created. A
schema given here must compile and the sample match it, each problem with its path,
before anything is stored: ingest then checks it at once on this process and within a
second on the others. Svix's layer creates types with `enforced=False` (its schemas are
documentation, and such a type counts neither for the unknown-type rule nor for schema
checks), deletes by archiving (`expunge=False`), and creates over an archived type with
`unarchive=True`.
"""

from __future__ import annotations

from typing import Any

from relay.config.event_types import compile_schema, sample_problems
from relay.config.values import key_path
from relay.delivery.matching import Loc
from relay.delivery.operational import is_operational
from relay.directory import EventType
from relay.errors import Conflict, NotFound, Unprocessable
from relay.models import EventType as EventTypeOut
from relay.models import Page, PageQuery, Sample, event_type_of
from relay.operations.pages import Order, sorted_page
from relay.runtime import Relay
from relay.types import EventTypeRow

_SCOPE = "event-types"


def _ordered(types: list[EventType]) -> list[tuple[Order, EventType]]:
    rank = {"config": 0, "api": 1, "relay": 2}
    return [((rank[t.source], t.created_at if t.source == "api" else i, t.name), t)
            for i, t in enumerate(types)]


async def list_event_types(relay: Relay, query: PageQuery) -> Page[EventTypeOut]:
    """A page of the catalog. Its cursor carries the last type's place in the order,
    not an index, so a page resumes in place after types before it went away."""
    data, cursor = await sorted_page(relay, _SCOPE, _ordered(relay.directory.catalog()), query)
    return Page[EventTypeOut](data=[event_type_of(t) for t in data], next=cursor)


def get_event_type(relay: Relay, name: str, include_archived: bool = False) -> EventType:
    event_type = relay.directory.event_types.get(name)
    if event_type is None or (event_type.archived and not include_archived):
        raise NotFound(f"no event type {name!r}")
    return event_type


def sample(relay: Relay, name: str) -> Sample:
    return Sample(type=name, data=get_event_type(relay, name).sample)


def _read_only(relay: Relay, event_type: EventType, what: str) -> Conflict:
    if event_type.source == "relay":
        return Conflict(f"event type {event_type.name!r} is one of relay's own operational "
                        f"events: {what}")
    where = relay.loaded.source or "the config file"
    return Conflict(f"event type {event_type.name!r} is declared in {where}: {what}")


def data_type(relay: Relay, name: str) -> EventType:
    """The data type `name`, archived too; Conflict for the file's or relay's own."""
    event_type = get_event_type(relay, name, include_archived=True)
    if event_type.source != "api":
        raise _read_only(relay, event_type, "change it in the file, not through the API")
    return event_type


def _problems(schema: dict[str, Any] | None, sample: dict[str, Any],
              enforced: bool) -> list[dict[str, str]]:
    """Each problem of a schema (it must compile, when enforced) and of the sample (JSON,
    and matching an enforced schema), with its path in the body."""
    def at(field: str, found: list[tuple[Loc, str]]) -> list[dict[str, str]]:
        return [{"path": key_path((field, *loc)), "message": msg} for loc, msg in found]

    validator = None
    if enforced and schema is not None:
        validator, found = compile_schema(schema)
        if validator is None:
            return at("schema", found)
    return at("sample", sample_problems(validator, sample))


def _valid(schema: dict[str, Any] | None, sample: dict[str, Any], enforced: bool) -> None:
    if problems := _problems(schema, sample, enforced):
        raise Unprocessable("the request has invalid fields", problems)


async def create_event_type(relay: Relay, name: str, description: str = "",
                            sample: dict[str, Any] | None = None,
                            schema: dict[str, Any] | None = None, deprecated: bool = False,
                            *, enforced: bool = True, unarchive: bool = False) -> EventType:
    """A new event type, checked at ingest (when `enforced`) on this process when this
    returns, on the others within a second. `unarchive`: an archived type of that name
    is replaced (Svix's create), else any stored one is a Conflict."""
    if is_operational(name):
        raise Unprocessable("the request has invalid fields", [{
            "path": "name", "message": f"{name!r}: types starting with 'relay.' are relay's "
            "own operational events (docs/operational-events.md)"}])
    existing = relay.directory.event_types.get(name)
    if existing is not None and existing.source != "api":
        raise _read_only(relay, existing, "it exists already; choose another name")
    sample = {} if sample is None else sample
    _valid(schema, sample, enforced)
    now = relay.clock()
    await relay.keeper.create_event_type(EventTypeRow(
        name, description, sample, schema, deprecated, False, enforced, now, now), unarchive)
    return get_event_type(relay, name)


async def change_event_type(relay: Relay, name: str, changes: dict[str, Any]) -> EventType:
    """Set the given fields (relay.storage.event_types.EVENT_TYPE_UPDATABLE) of a data
    type; the schema and sample it ends with are checked as on create."""
    before = data_type(relay, name)
    after = {"schema": before.schema, "sample": before.sample,
             "enforced": before.enforced, **changes}
    if {"schema", "sample", "enforced"} & changes.keys():
        _valid(after["schema"], after["sample"], after["enforced"])
    await relay.keeper.change_event_type(name, changes)
    return get_event_type(relay, name, include_archived=True)


async def delete_event_type(relay: Relay, name: str, *, expunge: bool = True) -> None:
    """Delete a data type: gone (`expunge`), or archived (Svix's delete: kept, neither
    listed nor checked at ingest, brought back by a create with `unarchive`)."""
    data_type(relay, name)
    if expunge:
        await relay.keeper.delete_event_type(name)
    else:
        await relay.keeper.change_event_type(name, {"archived": True})
