"""Which endpoints an event goes to. Pure.

An event matches an endpoint when the tenants are equal, one of the endpoint's `events`
patterns matches the type (`*`, `prefix.*` for any type below prefix, or the exact name),
and every `filter` path into the envelope holds an accepted value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

_MISSING = object()


def type_matches(patterns: Sequence[str], event_type: str) -> bool:
    for pattern in patterns:
        if pattern == "*" or pattern == event_type:
            return True
        if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
            return True
    return False


def _lookup(envelope: Mapping[str, Any], path: str) -> Any:
    value: Any = envelope
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _same(a: Any, b: Any) -> bool:
    """JSON equality without Python's True == 1."""
    return (type(a) is type(b) and a == b) or (
        isinstance(a, int | float) and isinstance(b, int | float)
        and not isinstance(a, bool) and not isinstance(b, bool) and a == b
    )


def filter_matches(filters: Mapping[str, Any], envelope: Mapping[str, Any]) -> bool:
    for path, accepted in filters.items():
        value = _lookup(envelope, path)
        if value is _MISSING:
            return False
        options = accepted if isinstance(accepted, list) else [accepted]
        if not any(_same(value, option) for option in options):
            return False
    return True
