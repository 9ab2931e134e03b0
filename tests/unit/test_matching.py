"""Event -> endpoint matching as tables: type patterns, filters (today's form, every
operator, nesting, missing paths, type mismatches) and the filter checks' key paths."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from relay.delivery.matching import OPERATORS, FilterError, compile_filter, type_matches


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
        # Operational events reach only patterns that name them (SPEC §5).
        (["*"], "relay.endpoint.disabled", False),
        (["relay.*"], "relay.endpoint.disabled", True),
        (["relay.endpoint.*"], "relay.endpoint.failing", True),
        (["relay.endpoint.disabled"], "relay.endpoint.disabled", True),
        (["relay.endpoint.disabled"], "relay.endpoint.failing", False),
        (["*", "relay.delivery.*"], "relay.delivery.exhausted", True),
        (["*", "relay.delivery.*"], "relay.endpoint.failing", False),
        (["*"], "relay", True),  # not below relay.: an ordinary type
        (["*"], "relayed.thing", True),
        (["relay.*"], "lead.qualified", False),
    ],
)
def test_type_patterns(patterns: list[str], event_type: str, expected: bool) -> None:
    assert type_matches(patterns, event_type) is expected


ENVELOPE: dict[str, Any] = {
    "id": "evt_1", "type": "lead.qualified", "tenant_id": "default",
    "timestamp": "2026-04-14T16:29:48Z",
    "data": {"campaign_id": "spring", "score": 1, "ratio": 0.87, "flag": True, "off": False,
             "none": None, "tags": ["a", "b"], "nested": {"x": "y", "n": 5},
             "phone": "+4915112345678", "big": 10**30},
}

TABLES = [
    # today's form: a value, or a list of accepted values
    ({}, True),
    ({"data.campaign_id": "spring"}, True),
    ({"data.campaign_id": ["fall", "spring"]}, True),
    ({"data.campaign_id": "fall"}, False),
    ({"data.campaign_id": []}, False),
    ({"data.missing": "x"}, False),
    ({"data.nested.x": "y", "type": "lead.qualified"}, True),
    ({"data.nested.x": "y", "type": "other"}, False),  # every path must match
    ({"data.score": 1.0}, True),
    ({"data.score": True}, False),  # JSON: true is not 1
    ({"data.flag": 1}, False),
    ({"data.flag": [1, 0]}, False),
    ({"data.score": [True]}, False),
    ({"data.campaign_id.deeper": "x"}, False),
    ({"data.score": "1"}, False),
    ({"data.tags": "a"}, False),  # a list value is not its elements
    ({"data.nested": "y"}, False),
    # $eq / $neq
    ({"data.campaign_id": {"$eq": "spring"}}, True),
    ({"data.score": {"$eq": 1}}, True),
    ({"data.ratio": {"$eq": 0.87}}, True),
    ({"data.flag": {"$eq": True}}, True),
    ({"data.flag": {"$eq": False}}, False),
    ({"data.off": {"$eq": 0}}, False),
    ({"data.campaign_id": {"$neq": "fall"}}, True),
    ({"data.campaign_id": {"$neq": "spring"}}, False),
    ({"data.score": {"$neq": "spring"}}, False),  # another kind: no match, even for $neq
    ({"data.flag": {"$neq": False}}, True),
    ({"data.flag": {"$neq": 1}}, False),
    ({"data.missing": {"$neq": "x"}}, False),
    ({"data.none": {"$neq": "x"}}, False),
    # $in / $nin
    ({"data.campaign_id": {"$in": ["fall", "spring"]}}, True),
    ({"data.campaign_id": {"$in": ["fall"]}}, False),
    ({"data.score": {"$in": [1.0, "x"]}}, True),
    ({"data.score": {"$in": [True]}}, False),
    ({"data.flag": {"$in": [1]}}, False),
    ({"data.flag": {"$in": [True, 1]}}, True),
    ({"data.tags": {"$in": ["a"]}}, False),
    ({"data.campaign_id": {"$nin": ["fall", "winter"]}}, True),
    ({"data.campaign_id": {"$nin": ["spring"]}}, False),
    ({"data.score": {"$nin": ["a", "b"]}}, False),  # no number listed: another kind
    ({"data.score": {"$nin": [2, "a"]}}, True),
    ({"data.missing": {"$nin": ["x"]}}, False),
    ({"data.nested": {"$nin": ["x"]}}, False),
    # $gt $gte $lt $lte: numbers with numbers, strings with strings
    ({"data.ratio": {"$gte": 0.8}}, True),
    ({"data.ratio": {"$gte": 0.87}}, True),
    ({"data.ratio": {"$gt": 0.87}}, False),
    ({"data.ratio": {"$lt": 1}}, True),
    ({"data.ratio": {"$lte": 0.5}}, False),
    ({"data.score": {"$gt": 0, "$lt": 2}}, True),  # every operator of a table holds
    ({"data.score": {"$gt": 0, "$lt": 1}}, False),
    ({"data.big": {"$gt": 10**29}}, True),
    ({"data.campaign_id": {"$gte": 0.8}}, False),  # a string against a number: no match
    ({"data.flag": {"$gte": 0}}, False),  # bool is not a number
    ({"data.none": {"$lt": 1}}, False),
    ({"data.tags": {"$gt": 0}}, False),
    ({"data.nested": {"$gt": "a"}}, False),
    ({"data.missing": {"$lt": 1}}, False),
    ({"timestamp": {"$gte": "2026-04-01T00:00:00Z"}}, True),
    ({"timestamp": {"$lt": "2026-04-01T00:00:00Z"}}, False),
    ({"data.score": {"$gte": "0"}}, False),  # a number against a string: no match
    # $exists
    ({"data.phone": {"$exists": True}}, True),
    ({"data.missing": {"$exists": True}}, False),
    ({"data.missing": {"$exists": False}}, True),
    ({"data.none": {"$exists": True}}, True),  # present, as null
    ({"data.phone": {"$exists": False}}, False),
    ({"data.phone.deeper": {"$exists": False}}, True),
    ({"data.tags.0": {"$exists": True}}, False),  # paths go into objects only
    # $prefix
    ({"data.phone": {"$prefix": "+49"}}, True),
    ({"data.phone": {"$prefix": "+1"}}, False),
    ({"data.phone": {"$prefix": ""}}, True),
    ({"data.score": {"$prefix": "1"}}, False),
    ({"data.missing": {"$prefix": ""}}, False),
    # $and / $or / $not, and nesting
    ({"$or": [{"data.campaign_id": "fall"}, {"data.score": {"$gte": 1}}]}, True),
    ({"$or": [{"data.campaign_id": "fall"}, {"data.score": {"$gt": 1}}]}, False),
    ({"$and": [{"data.campaign_id": "spring"}, {"data.score": 1}]}, True),
    ({"$and": [{"data.campaign_id": "spring"}, {"data.score": 2}]}, False),
    ({"$not": [{"data.campaign_id": "fall"}]}, True),
    ({"$not": [{"data.campaign_id": "spring"}]}, False),
    ({"$not": [{"data.campaign_id": "fall"}, {"data.score": 2}]}, True),  # neither
    ({"$not": [{"data.campaign_id": "fall"}, {"data.score": 1}]}, False),
    ({"$not": [{"data.missing": "x"}]}, True),
    ({"type": "lead.qualified", "$or": [{"data.flag": False}, {"data.off": False}]}, True),
    ({"type": "other", "$or": [{"data.flag": False}, {"data.off": False}]}, False),
    ({"$or": [{"$and": [{"data.score": 1}, {"data.nested.n": {"$gte": 5}}]},
              {"data.missing": {"$exists": True}}]}, True),
    ({"$or": [{"$not": [{"data.score": 1}]}, {"$and": [{"data.flag": False}]}]}, False),
    ({"$not": [{"$or": [{"data.score": 2}, {"data.nested.x": {"$prefix": "z"}}]}]}, True),
    # the issue's example
    ({"data.ratio": {"$gte": 0.8}, "data.campaign_id": {"$in": ["spring", "b"]},
      "data.phone": {"$exists": True}}, True),
]


@pytest.mark.parametrize(("spec", "expected"), TABLES)
def test_filters(spec: dict[str, Any], expected: bool) -> None:
    assert compile_filter(spec)(ENVELOPE) is expected


@pytest.mark.parametrize(("spec", "expected"), TABLES)
def test_filters_never_raise_whatever_the_envelope(spec: dict[str, Any],
                                                   expected: bool) -> None:
    """Replayed payloads and odd data: any JSON shape at any path is just no match."""
    f = compile_filter(spec)
    for data in ({}, {"data": None}, {"data": [1, 2]}, {"data": "x"}, {"data": {"nested": 3}},
                 {"data": {"score": {"a": 1}, "campaign_id": [["spring"]], "phone": None}}):
        assert f({"type": "t", **data}) in (True, False)


BAD = [
    # (filter, [(key path inside the filter, words of the message)])
    ({"data.score": {"$gtee": 1}}, [("data.score.$gtee", "unknown operator")]),
    ({"data.score": {"$gte": True}}, [("data.score.$gte", "not a boolean")]),
    ({"data.score": {"$gte": [1]}}, [("data.score.$gte", "must be a number or a string")]),
    ({"data.score": {"$gte": float("nan")}}, [("data.score.$gte", "finite")]),
    ({"data.score": {"$lt": date(2026, 1, 1)}}, [("data.score.$lt", "quote it")]),
    ({"data.score": {"$eq": {"a": 1}}}, [("data.score.$eq", "not a table")]),
    ({"data.score": {"$neq": [1]}}, [("data.score.$neq", "not a list")]),
    ({"data.score": {"$in": []}}, [("data.score.$in", "non-empty list")]),
    ({"data.score": {"$in": 1}}, [("data.score.$in", "non-empty list")]),
    ({"data.score": {"$nin": [1, [2]]}}, [("data.score.$nin[1]", "not a list")]),
    ({"data.score": {"$exists": 1}}, [("data.score.$exists", "true or false")]),
    ({"data.score": {"$prefix": 1}}, [("data.score.$prefix", "must be a string")]),
    ({"data.score": {}}, [("data.score", "empty operator table")]),
    ({"data": {"score": 1}}, [("data.score", "dotted path")]),
    ({"data.score": {"$or": []}}, [("data.score.$or", "beside the paths")]),
    ({"data.score": [1, {}]}, [("data.score[1]", "not a table")]),
    ({"data.score": float("inf")}, [("data.score", "finite")]),
    ({"data..score": 1}, [("data..score", "empty part")]),
    ({"": 1}, [("", "empty part")]),
    ({"$gte": 1}, [("$gte", "applies to a path")]),
    ({"$nor": []}, [("$nor", "unknown operator")]),
    ({"$or": {"a": 1}}, [("$or", "non-empty list of filter tables")]),
    ({"$and": []}, [("$and", "non-empty list")]),
    ({"$not": [1]}, [("$not[0]", "must be a filter table")]),
    ({"$or": [{}]}, [("$or[0]", "empty filter table")]),
    ({"$or": [{"$and": [{"a": {"$in": "x"}}]}]}, [("$or[0].$and[0].a.$in", "non-empty")]),
    # every problem at once
    ({"a": {"$gte": "x", "$bad": 1}, "b": {"$exists": "yes"}, "$or": [{"c": None}]},
     [("a.$bad", "unknown operator"), ("b.$exists", "true or false"),
      ("$or[0].c", "not null")]),
]


@pytest.mark.parametrize(("spec", "problems"), BAD)
def test_bad_filters_name_each_problem(spec: dict[str, Any],
                                       problems: list[tuple[str, str]]) -> None:
    with pytest.raises(FilterError) as info:
        compile_filter(spec)
    got = [(_path(loc), message) for loc, message in info.value.problems]
    assert [path for path, _ in got] == [path for path, _ in problems]
    for (_, message), (_, words) in zip(got, problems, strict=True):
        assert words in message


def _path(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def test_operator_names_are_the_grammar_the_api_documents() -> None:
    """The OpenAPI grammar (relay.config.endpoints.FilterOperators) lists exactly these
    operators."""
    from relay.config.endpoints import FilterOperators

    assert tuple(FilterOperators.__annotations__) == OPERATORS
