"""The config as text for people: the commented starter file (`relay init`,
config.example.toml) and `relay check`'s summary of a valid one (describe).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

from relay.config.model import Config, Loaded
from relay.config.values import DEFAULT_TENANT, format_duration

_HEADER = """\
# relay configuration. Every key is shown with its default; durations are strings like
# "500ms", "10s", "5m", "2h", "7d". Edits apply without a restart (file watch or SIGHUP),
# except [server] listen and [storage] path. Validate with: relay check --config FILE
"""

SECTION_HELP = {
    "server": "The HTTP side: ingest endpoint and management API.",
    "storage": "The durable queue.",
    "delivery": "Defaults for every endpoint.",
    "ui": "The web console at /ui/ and the tenant portal.",
    "tenants": "Tenants beyond `default` (which always exists).",
    "api_keys": "API keys. Without any, relay serves unauthenticated on loopback only.",
    "event_types": "Declared event types. When any are declared, ingest refuses others (422).",
    "operator": "Operational events (relay.*): what relay reports about itself "
    "(docs/operational-events.md).",
    "endpoints": "Subscribers. Uncomment and edit to add one.",
}


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{_toml_key(k)} = {toml_value(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    raise TypeError(f"cannot render {value!r}")


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else toml_value(key)


def _field_lines(model: type[BaseModel], prefix: str, example: bool) -> list[str]:
    lines = []
    for key, field in model.model_fields.items():
        name = field.alias or key
        help_text = field.description or ""
        if field.is_required():
            value = field.examples[0] if field.examples else None
            help_text += " Required."
        else:
            default = field.get_default(call_default_factory=True)
            value = default
            if field.examples and example:
                value = field.examples[0]
                if default not in (None, {}, []) and value != default:
                    help_text += f" Default: {toml_value(default)}."
        for chunk in _wrap(help_text):
            lines.append(f"{prefix}# {chunk}" if example else f"# {chunk}")
        if value is None:
            lines.append(f"{prefix}# {name} =")
        else:
            lines.append(f"{prefix}{name} = {toml_value(value)}")
    return lines


def _wrap(text: str, width: int = 86) -> list[str]:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, line] if line else lines


def render_example() -> str:
    """The commented starter config: every key of every section, defaults shown.

    Table sections are live with their defaults; array-of-table sections are commented
    examples ("# " before each key; "# # " before its help) so the file runs as is.
    """
    out = [_HEADER]
    for name, model, is_array in Config.sections():
        out.append(f"# {SECTION_HELP[name]}")
        if is_array:
            out.append(f"# [[{name}]]")
            out.extend(_field_lines(model, "# ", example=True))
        else:
            out.append(f"[{name}]")
            out.extend(_field_lines(model, "", example=False))
        out.append("")
    return "\n".join(out)


def describe(loaded: Loaded) -> list[str]:
    """What a valid config defines, for `relay check`."""
    cfg = loaded.config
    lines = [
        f"listen {cfg.server.listen}, database {cfg.storage.where}, "
        f"retention {format_duration(cfg.storage.retention)}",
        "tenants: " + ", ".join(sorted({DEFAULT_TENANT} | {t.id for t in cfg.tenants})),
        f"api keys: {len(cfg.api_keys)}"
        + ("" if cfg.api_keys else " (unauthenticated, loopback only)"),
        f"event types: {len(cfg.event_types)}",
    ]
    for event_type in cfg.event_types:
        if event_type.json_schema is not None:
            lines.append(f"  {event_type.name}: data checked against "
                         + (event_type.schema_file or "its schema"))
    lines.append(f"endpoints: {len(cfg.endpoints)}")
    for ep in cfg.endpoints:
        state = "" if ep.enabled else " (disabled)"
        order = ", fifo" if ep.ordering == "fifo" else ""
        lines.append(f"  {ep.id}: {ep.url} <- {', '.join(ep.events)} "
                     f"[{ep.signature}{order}]{state}")
    return lines

