"""The config's value types and checks: durations, sizes, names and ids, the base of
every section model, and how a problem is reported at its key path.

The section modules build their keys from these; relay.models reads the same types for
the API, so a duration or an id means the same in the file and in a request.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ValidationError,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from relay.delivery.matching import Loc
from relay.text import control_problem

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
DURATION_RE = re.compile(r"^ *(\d+(?:\.\d+)?) *(ms|s|m|h|d) *$")
TYPE_RE = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"
ID_RE = r"^[A-Za-z0-9_-]{1,64}$"
PATTERN_RE = r"^(\*|[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*(\.\*)?)$"
CHANNEL_RE = r"^[A-Za-z0-9._-]{1,128}$"  # Svix's channel names
MAX_CHANNELS = 10  # an endpoint's channels, at most (Svix's limit)
DEFAULT_TENANT = "default"


def parse_duration(value: Any) -> float:
    """"500ms", "10s", "5m", "2h", "7d" -> seconds. Bare numbers are refused: a unit is required."""
    if isinstance(value, str):
        match = DURATION_RE.match(value)
        if match:
            return float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    raise ValueError(f"{value!r} is not a duration; use a number and unit: 500ms, 10s, 5m, 2h, 7d")


def format_duration(seconds: float) -> str:
    """The shortest exact duration string for `seconds` (inverse of parse_duration)."""
    for unit in ("d", "h", "m", "s"):
        count = seconds / _DURATION_UNITS[unit]
        if count >= 1 and count == int(count):
            return f"{int(count)}{unit}"
    return f"{round(seconds * 1000)}ms"


Duration = Annotated[float, BeforeValidator(parse_duration)]


def _no_controls(value: str) -> str:
    if problem := control_problem(value):
        raise ValueError(problem)
    return value


# A string relay stores or looks up (an id, key, name, cursor): no control characters
# (relay.text; PostgreSQL cannot store NUL in text). NoControls goes after any
# StringConstraints, which then keep their own messages.
NoControls = AfterValidator(_no_controls)
Text = Annotated[str, NoControls]


_SIZE_UNITS = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}
SIZE_RE = re.compile(r"^\s*(\d+)\s*(B|KB|MB|GB)\s*$")


def parse_size(value: Any) -> int:
    """"512KB", "256MB", "2GB" -> bytes (KB = 1024 bytes). A unit is required."""
    if isinstance(value, str):
        match = SIZE_RE.match(value)
        if match:
            return int(match.group(1)) * _SIZE_UNITS[match.group(2)]
    raise ValueError(f"{value!r} is not a size; use a number and unit: 512KB, 256MB, 2GB")


Size = Annotated[int, BeforeValidator(parse_size)]


class Section(BaseModel):
    """A table of the config file: unknown keys are errors; a loaded config never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def invalid_at(title: str, problems: list[tuple[Loc, str]]) -> ValidationError:
    """Problems found by relay's own checks as a pydantic error, each at its key path below
    the value being validated (pydantic prefixes that value's own path)."""
    return ValidationError.from_exception_data(title, [
        InitErrorDetails(type=PydanticCustomError("invalid", "{reason}", {"reason": message}),
                         loc=loc, input=None)
        for loc, message in problems])


def key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"
