"""Identifiers: time-ordered, so ids sort by creation and index well."""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


def ulid(now: float | None = None) -> str:
    """26 characters: 48 bits of milliseconds, then 80 random bits."""
    ms = int((time.time() if now is None else now) * 1000)
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def event_id(now: float | None = None) -> str:
    return "evt_" + ulid(now)


def delivery_ref(delivery_id: int) -> str:
    """The public name of a delivery row."""
    return f"dlv_{delivery_id}"
