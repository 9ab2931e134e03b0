"""The storage rules of event types kept as data (SPEC §10), each decided once as a pure
function both backends apply, as relay.storage.directory does for tenants and keys; and
the columns and row mappers both backends read them with.

Event types are part of the directory: every write bumps `directory_changes.version` in
its own transaction, so every process rebuilds its snapshot (relay.directory), with the
schemas compiled once there.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from relay.errors import Conflict, NotFound
from relay.types import EventTypeRow, Row

# The columns behind EventTypeRow, in its fields' order.
EVENT_TYPE_COLS = ("name, description, sample, schema, deprecated, archived, enforced, "
                   "created_at, updated_at")
# The columns update_event_type may set (updated_at is set by every update).
EVENT_TYPE_UPDATABLE = frozenset({"description", "sample", "schema", "deprecated", "archived",
                                  "enforced"})
_JSON = frozenset({"sample", "schema"})


def event_type_row(row: Row) -> EventTypeRow:
    """An EventTypeRow from the columns of EVENT_TYPE_COLS (SQLite's flags are 0/1)."""
    return EventTypeRow(name=row[0], description=row[1], sample=json.loads(row[2]),
                        schema=None if row[3] is None else json.loads(row[3]),
                        deprecated=bool(row[4]), archived=bool(row[5]), enforced=bool(row[6]),
                        created_at=row[7], updated_at=row[8])


def event_type_values(event_type: EventTypeRow) -> tuple[Any, ...]:
    """The values of EVENT_TYPE_COLS for an insert."""
    return (event_type.name, event_type.description, json.dumps(event_type.sample),
            None if event_type.schema is None else json.dumps(event_type.schema),
            event_type.deprecated, event_type.archived, event_type.enforced,
            event_type.created_at, event_type.updated_at)


def event_type_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    """The column values an update writes, in the order given; ValueError for a column
    not EVENT_TYPE_UPDATABLE (a caller's mistake, not a request's)."""
    unknown = set(changes) - EVENT_TYPE_UPDATABLE
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    return {k: json.dumps(v) if k in _JSON and v is not None else v
            for k, v in changes.items()}


Create = Literal["insert", "replace"]


def on_create(name: str, stored: EventTypeRow | None, unarchive: bool) -> Create | Conflict:
    """What creating `name` does, given the stored type of that name: a new name is
    inserted; an existing one is a Conflict, except an archived one when `unarchive`
    (Svix's create: it brings an archived type back, replaced whole by the new one,
    which keeps the old `created_at`)."""
    if stored is None:
        return "insert"
    if unarchive and stored.archived:
        return "replace"
    archived = " (archived)" if stored.archived else ""
    return Conflict(f"event type {name!r} already exists{archived}")


def revived(new: EventTypeRow, stored: EventTypeRow) -> EventTypeRow:
    """The row an unarchiving create writes over `stored` (on_create's "replace")."""
    return EventTypeRow(new.name, new.description, new.sample, new.schema, new.deprecated,
                        new.archived, new.enforced, stored.created_at, new.updated_at)


def no_event_type(name: str) -> NotFound:
    """The answer for a name that no stored event type has."""
    return NotFound(f"no event type {name!r}")
