"""Event -> endpoint matching as tables."""

from __future__ import annotations

import pytest

from relay.delivery.matching import filter_matches, type_matches


@pytest.mark.parametrize(
    ("patterns", "event_type", "expected"),
    [
        (["*"], "anything.at.all", True),
        (["lead.qualified"], "lead.qualified", True),
        (["lead.qualified"], "lead.qualified.late", False),
        (["lead.*"], "lead.qualified", True),
        (["lead.*"], "lead.a.b", True),
        (["lead.*"], "lead", False),
        (["lead.*"], "leads.qualified", False),
        (["a", "b.*"], "b.c", True),
        (["a", "b.*"], "c", False),
    ],
)
def test_type_patterns(patterns: list[str], event_type: str, expected: bool) -> None:
    assert type_matches(patterns, event_type) is expected


ENVELOPE = {"type": "lead.qualified", "tenant_id": "default",
            "data": {"campaign_id": "spring", "score": 1, "flag": True, "nested": {"x": "y"}}}


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, True),
        ({"data.campaign_id": "spring"}, True),
        ({"data.campaign_id": ["fall", "spring"]}, True),
        ({"data.campaign_id": "fall"}, False),
        ({"data.missing": "x"}, False),
        ({"data.nested.x": "y", "type": "lead.qualified"}, True),
        ({"data.nested.x": "y", "type": "other"}, False),  # every path must match
        ({"data.score": 1.0}, True),
        ({"data.score": True}, False),  # JSON: true is not 1
        ({"data.flag": 1}, False),
        ({"data.campaign_id.deeper": "x"}, False),
    ],
)
def test_filters(filters: dict, expected: bool) -> None:
    assert filter_matches(filters, ENVELOPE) is expected
