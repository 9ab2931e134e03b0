"""Config checks of event-type schemas and endpoint filters: every problem at its key path."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from relay import config as cfgmod
from relay.errors import ConfigError

SCHEMA = {"type": "object", "required": ["lead_id"],
          "properties": {"lead_id": {"type": "string"},
                         "score": {"type": "number", "minimum": 0, "maximum": 1}}}


def errors_of(data: dict[str, Any], config_dir: Path | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        cfgmod.validate(data, {}, config_dir)
    return [str(d) for d in info.value.details]


def event_type(**fields: Any) -> dict[str, Any]:
    return {"event_types": [{"name": "lead.qualified", "sample": {"lead_id": "l1"}, **fields}]}


def test_inline_schema_is_compiled_at_load() -> None:
    [declared] = cfgmod.validate(event_type(schema=SCHEMA), {}).config.event_types
    assert declared.json_schema == SCHEMA
    assert declared.validator is not None
    assert declared.validator.is_valid({"lead_id": "x", "score": 0.5})
    assert not declared.validator.is_valid({"lead_id": "x", "score": 2})
    plain = cfgmod.validate({"event_types": [{"name": "a"}]}, {}).config.event_types[0]
    assert plain.json_schema is None and plain.validator is None


def test_schema_file_is_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "lead.json").write_text(json.dumps(SCHEMA))
    (tmp_path / "relay.toml").write_text(
        '[[event_types]]\nname = "lead.qualified"\nschema_file = "schemas/lead.json"\n'
        'sample = { lead_id = "l1", score = 0.5 }\n')
    loaded = cfgmod.load(tmp_path / "relay.toml", {})  # from another working directory
    assert loaded.config.event_types[0].json_schema == SCHEMA
    assert "lead.qualified: data checked against schemas/lead.json" in "\n".join(
        cfgmod.describe(loaded))


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": "numbr"}, "event_types[0].schema.type: "),
        ({"properties": {"score": {"type": "number", "minimum": "low"}}},
         'event_types[0].schema.properties.score.minimum: "low" is not of type "number"'),
        ({"required": "lead_id"}, 'event_types[0].schema.required: "lead_id" is not of type'),
        ({"properties": {"id": {"pattern": "([a-"}}},
         "event_types[0].schema.properties.id.pattern: "),
        ({"format": "emial"}, "event_types[0].schema.format: Unknown format: 'emial'"),
        ({"$ref": "https://schemas.example/lead.json"}, "event_types[0].schema: "),
        ({"$ref": "#/$defs/missing"}, "event_types[0].schema: "),
        ({"$schema": "http://json-schema.org/draft-07/schema#"},
         "event_types[0].schema.$schema: relay validates with JSON Schema draft 2020-12"),
        ({"const": float("inf")}, "event_types[0].schema.const: must be a finite number"),
    ],
)
def test_invalid_schema_named_with_its_path(schema: dict[str, Any], expected: str) -> None:
    [line] = errors_of(event_type(schema=schema))
    assert line.startswith(expected), line


def test_every_schema_error_at_once() -> None:
    lines = errors_of(event_type(schema={"properties": {"a": {"type": "numbr"},
                                                         "b": {"minimum": "x"}},
                                         "required": "a"}))
    assert [line.split(":")[0] for line in lines] == [
        "event_types[0].schema.properties.a.type", "event_types[0].schema.properties.b.minimum",
        "event_types[0].schema.required"]


def test_toml_dates_are_not_json(tmp_path: Path) -> None:
    data = tomllib.loads('[[event_types]]\nname = "a"\nschema = { const = 2026-01-01 }\n'
                         '[[event_types]]\nname = "b"\nsample = { at = 2026-01-01T10:00:00Z }\n'
                         'schema = { type = "object" }\n')
    assert errors_of(data) == [
        "event_types[0].schema.const: a TOML date is not JSON; write it as a string",
        "event_types[1].sample.at: a TOML datetime is not JSON; write it as a string"]


def test_sample_must_match_its_schema() -> None:
    lines = errors_of(event_type(schema=SCHEMA, sample={"lead_id": 7, "score": 1.5}))
    assert lines == ['event_types[0].sample.lead_id: 7 is not of type "string"',
                     "event_types[0].sample.score: 1.5 is greater than the maximum of 1"]
    [line] = errors_of({"event_types": [{"name": "a", "schema": SCHEMA}]})
    assert line == ('event_types[0].sample: "lead_id" is a required property '
                    "(no sample given: {} is used)")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "cannot read "),
        ("{not json", " is not JSON: "),
        ("[1, 2]", " must hold a JSON object"),
        (json.dumps({"type": "object", "properties": {"a": {"type": 5}}}),
         "lead.json: properties.a.type: "),
    ],
)
def test_bad_schema_file(tmp_path: Path, content: str | None, expected: str) -> None:
    if content is not None:
        (tmp_path / "lead.json").write_text(content)
    [line] = errors_of(event_type(schema_file="lead.json"), tmp_path)
    assert line.startswith("event_types[0].schema_file: ") and expected in line, line


def test_schema_and_schema_file_exclusive(tmp_path: Path) -> None:
    (tmp_path / "lead.json").write_text(json.dumps(SCHEMA))
    assert errors_of(event_type(schema=SCHEMA, schema_file="lead.json"), tmp_path) == [
        "event_types[0].schema_file: set schema or schema_file, not both"]


def test_errors_of_every_section_reported_together() -> None:
    lines = errors_of({
        **event_type(schema={"type": "numbr"}),
        "endpoints": [{"id": "a", "url": "https://a.example/",
                       "filter": {"data.score": {"$gte": True}}}],
    })
    assert [line.split(":")[0] for line in lines] == [
        "event_types[0].schema.type", "endpoints[0].filter.data.score.$gte"]


@pytest.mark.parametrize(
    ("filter_", "expected"),
    [
        ({"data.score": {"$gtee": 0.8}}, "endpoints[0].filter.data.score.$gtee: unknown operator"),
        ({"data.score": {"$gte": "high", "$lt": [1]}},
         "endpoints[0].filter.data.score.$lt: must be a number or a string, not a list"),
        ({"$or": [{"data.a": 1}, {"data.b": {"$in": []}}]},
         "endpoints[0].filter.$or[1].data.b.$in: must be a non-empty list"),
        ({"data": {"campaign_id": "x"}}, "endpoints[0].filter.data.campaign_id: not an operator"),
        ("data.a", "endpoints[0].filter: must be a table of dotted paths"),
    ],
)
def test_bad_filter_named_with_its_key_path(filter_: Any, expected: str) -> None:
    [line] = errors_of({"endpoints": [{"id": "a", "url": "https://a.example/",
                                       "filter": filter_}]})
    assert line.startswith(expected), line


def test_filter_operator_tables_from_toml_are_kept_as_written() -> None:
    data = tomllib.loads("""
[[endpoints]]
id = "a"
url = "https://a.example/"
filter = { "data.qualification.score" = { "$gte" = 0.8 }, "data.campaign_id" = { "$in" = ["a", "b"] }, "data.phone" = { "$exists" = true }, "$or" = [{ "type" = "lead.qualified" }, { "data.vip" = true }] }
""")  # noqa: E501
    [endpoint] = cfgmod.validate(data, {}).config.endpoints
    assert endpoint.filter == data["endpoints"][0]["filter"]
