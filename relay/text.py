"""Control characters: the one rule for strings relay stores, looks up or sends.

PostgreSQL cannot store NUL in text, and no id, name, key or header has a use for a
control character (C0 with NUL, DEL, C1): refused at the edge with the field's path.
Event `data` is JSON and keeps whatever it holds (stored as bytes, escaped).
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_BUT_TAB = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def control_problem(text: str, *, tab: bool = False) -> str | None:
    """Why `text` cannot be taken (the first control character, where), or None; `tab`:
    a horizontal tab is allowed (header values)."""
    match = (_CONTROL_BUT_TAB if tab else _CONTROL).search(text)
    if match is None:
        return None
    return f"holds the control character {match[0]!r} at position {match.start()}"
