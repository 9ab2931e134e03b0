"""The storage rules of event types kept as data (relay.storage.event_types) as tables:
what both backends decide, checked without a database."""

from __future__ import annotations

import dataclasses

import pytest

from relay.errors import Conflict, NotFound
from relay.storage import event_types
from relay.types import EventTypeRow

TYPE = EventTypeRow("lead.qualified", "A lead qualified.", {"score": 0.9},
                    {"type": "object"}, False, False, True, 1.0, 2.0)
ARCHIVED = dataclasses.replace(TYPE, archived=True)


@pytest.mark.parametrize(
    ("stored", "unarchive", "decided"),
    [
        (None, False, "insert"),
        (None, True, "insert"),
        (TYPE, False, "event type 'lead.qualified' already exists"),
        (TYPE, True, "event type 'lead.qualified' already exists"),  # live: still taken
        (ARCHIVED, False, "event type 'lead.qualified' already exists (archived)"),
        (ARCHIVED, True, "replace"),  # Svix's create brings an archived type back
    ],
)
def test_creating_a_taken_name(stored: EventTypeRow | None, unarchive: bool,
                               decided: str) -> None:
    outcome = event_types.on_create("lead.qualified", stored, unarchive)
    if decided in ("insert", "replace"):
        assert outcome == decided
    else:
        assert isinstance(outcome, Conflict) and outcome.message == decided


def test_a_revived_type_is_the_new_one_with_the_old_creation_time() -> None:
    new = EventTypeRow("lead.qualified", "v2", {}, None, False, False, False, 9.0, 9.0)
    assert event_types.revived(new, ARCHIVED) == dataclasses.replace(new, created_at=1.0)


@pytest.mark.parametrize(
    ("changes", "columns"),
    [
        ({}, {}),
        ({"description": "d", "deprecated": True}, {"description": "d", "deprecated": True}),
        ({"sample": {"a": 1}, "schema": {"type": "object"}},
         {"sample": '{"a": 1}', "schema": '{"type": "object"}'}),
        ({"schema": None}, {"schema": None}),  # no schema: any object
        ({"archived": True, "enforced": False}, {"archived": True, "enforced": False}),
    ],
)
def test_changes_become_column_values(changes: dict[str, object],
                                      columns: dict[str, object]) -> None:
    assert event_types.event_type_changes(changes) == columns


@pytest.mark.parametrize("column", ["name", "created_at", "updated_at", "nope"])
def test_other_columns_are_not_updatable(column: str) -> None:
    with pytest.raises(ValueError, match=column):
        event_types.event_type_changes({column: "x"})


@pytest.mark.parametrize("row", [TYPE, ARCHIVED, dataclasses.replace(TYPE, schema=None)])
def test_rows_round_trip_through_their_columns(row: EventTypeRow) -> None:
    values = event_types.event_type_values(row)
    assert len(values) == len(event_types.EVENT_TYPE_COLS.split(","))
    sqlite_flags = tuple(int(v) if isinstance(v, bool) else v for v in values)
    assert event_types.event_type_row(sqlite_flags) == row


def test_a_missing_name_is_not_found() -> None:
    error = event_types.no_event_type("x.y")
    assert isinstance(error, NotFound) and error.message == "no event type 'x.y'"
