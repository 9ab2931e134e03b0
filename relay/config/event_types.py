"""[[event_types]]: declared event types and the JSON Schema each one's `data` must match.

A schema is compiled once, when the config loads (compile_schema); ingest only runs the
compiled validator. docs/schemas-and-filters.md describes what a schema may use.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import jsonschema_rs
from pydantic import Field, PrivateAttr, ValidationInfo, model_validator

from relay.config.values import TYPE_RE, Section, invalid_at, key_path
from relay.delivery.matching import Loc


def _not_json(value: Any, loc: Loc = ()) -> list[tuple[Loc, str]]:
    """Where a value read from TOML or a file cannot be JSON (a TOML date or time, inf)."""
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in _not_json(item, (*loc, key))]
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in _not_json(item, (*loc, i))]
    if isinstance(value, float) and not math.isfinite(value):
        return [(loc, "must be a finite number")]
    if value is None or isinstance(value, str | int | float):
        return []
    return [(loc, f"a TOML {type(value).__name__} is not JSON; write it as a string")]


SCHEMA_DRAFT = "https://json-schema.org/draft/2020-12/schema"
# Checks a schema against the 2020-12 meta-schema, reporting every error (compiling a
# validator stops at the first). The meta-schemas are built into jsonschema-rs: offline.
_META_SCHEMA = jsonschema_rs.Draft202012Validator({"$ref": SCHEMA_DRAFT}, offline=True)


def compile_schema(schema: dict[str, Any]) -> tuple[jsonschema_rs.Validator | None,
                                                     list[tuple[Loc, str]]]:
    """A JSON Schema compiled for ingest, or every problem with its path in the schema.

    Draft 2020-12 only; `format` is asserted (an unknown format name is an error, not a
    silent pass); `$ref` reaches only into the schema itself: nothing is fetched.
    """
    problems = _not_json(schema)
    declared = schema.get("$schema", SCHEMA_DRAFT)
    if declared not in (SCHEMA_DRAFT, SCHEMA_DRAFT + "#"):
        problems.append((("$schema",), f"relay validates with JSON Schema draft 2020-12: "
                         f"set {SCHEMA_DRAFT} or leave $schema out"))
    if problems:
        return None, problems
    problems = [(tuple(e.instance_path), e.message) for e in _META_SCHEMA.iter_errors(schema)]
    if problems:
        return None, problems
    try:
        return jsonschema_rs.Draft202012Validator(
            schema, validate_formats=True, ignore_unknown_formats=False, offline=True,
        ), []
    except jsonschema_rs.ValidationError as exc:  # an unresolvable $ref, a bad pattern
        message = exc.message.partition("\n")[0]
        if isinstance(exc.kind, jsonschema_rs.ValidationErrorKind.Referencing):
            message += " ($ref reaches only inside the schema, e.g. #/$defs/NAME)"
        return None, [(tuple(exc.instance_path), message)]


def sample_problems(validator: jsonschema_rs.Validator | None,
                    sample: dict[str, Any]) -> list[tuple[Loc, str]]:
    """Where a type's sample is not JSON or does not match its compiled schema."""
    problems = _not_json(sample)
    if problems or validator is None:
        return problems
    return [(tuple(e.instance_path), e.message) for e in validator.iter_errors(sample)]


class EventTypeConfig(Section):
    name: str = Field(
        pattern=TYPE_RE, max_length=128, description="Event type name.",
        examples=["lead.qualified"],
    )
    description: str = Field("", description="What the event means, for API users.",
                             examples=["A lead crossed the qualification threshold."])
    sample: dict[str, Any] = Field(
        default_factory=dict, description="Example `data`, sent by test deliveries; must "
        "match the schema.",
        examples=[{"lead_id": "lead_4c88e100", "score": 0.87}],
    )
    schema_: dict[str, Any] | None = Field(
        None, alias="schema",
        description="JSON Schema (draft 2020-12) that every event's `data` must match: "
        "ingest answers 422 naming each violation's path. `format` is checked "
        "(email, date-time, uuid, ...); `$ref` reaches only inside the schema. See "
        "docs/schemas-and-filters.md.",
        examples=[{"type": "object", "required": ["lead_id", "score"], "properties": {
            "lead_id": {"type": "string"},
            "score": {"type": "number", "minimum": 0, "maximum": 1}}}],
    )
    schema_file: str | None = Field(
        None, description="A JSON file holding the schema, relative to the config file; "
        "instead of schema. Read at start and on every reload.",
    )
    _schema: dict[str, Any] | None = PrivateAttr(None)
    _validator: jsonschema_rs.Validator | None = PrivateAttr(None)

    @property
    def json_schema(self) -> dict[str, Any] | None:
        """The schema `data` must match (inline or read from schema_file); None: any."""
        return self._schema

    @property
    def validator(self) -> jsonschema_rs.Validator | None:
        """The schema compiled once, at config load; ingest only runs it."""
        return self._validator

    @model_validator(mode="after")
    def _compile_schema(self, info: ValidationInfo) -> EventTypeConfig:
        if self._validator is not None:  # an instance validated again (inside Config)
            return self
        if self.schema_ is not None and self.schema_file is not None:
            raise invalid_at("event type", [(("schema_file",), "set schema or "
                                             "schema_file, not both")])
        if self.schema_file is not None:
            schema = self._read_schema_file(info.context)
        elif self.schema_ is not None:
            schema = self.schema_
        else:
            return self
        validator, problems = compile_schema(schema)
        if validator is None:
            if self.schema_file is None:
                raise invalid_at("event type", [(("schema", *loc), msg) for loc, msg in problems])
            raise invalid_at("event type", [(("schema_file",), f"{self.schema_file}: "
                                             f"{key_path(loc)}: {msg}") for loc, msg in problems])
        problems = sample_problems(validator, self.sample)
        if problems:
            hint = "" if "sample" in self.model_fields_set else " (no sample given: {} is used)"
            raise invalid_at("event type", [(("sample", *loc), msg + hint)
                                            for loc, msg in problems])
        self._schema, self._validator = schema, validator
        return self

    def _read_schema_file(self, context: Any) -> dict[str, Any]:
        assert self.schema_file is not None
        base = context.get("config_dir") if isinstance(context, dict) else None
        path = Path(base or ".") / self.schema_file
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise invalid_at("event type", [(("schema_file",), f"cannot read {path}: "
                                             f"{exc.strerror}")]) from None
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
            raise invalid_at("event type", [(("schema_file",), f"{path} is not JSON: "
                                             f"{exc}")]) from None
        if not isinstance(schema, dict):
            raise invalid_at("event type", [(("schema_file",), f"{path} must hold a JSON "
                                             "object (a schema)")])
        return schema

