"""Identifiers: time-ordered, so ids sort by creation and index well."""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


class _Entropy:
    """os.urandom bytes drawn a few thousand ids at a time. A call per id would be a
    system call per event on the ingest path, and it releases the GIL: under load the
    database thread takes it and the event loop waits about a millisecond to get it back.
    Not thread-safe: ids are made on the event loop's thread only."""

    SIZE = 10 * 4096

    def __init__(self) -> None:
        self._pool = b""
        self._at = 0

    def take(self, n: int) -> bytes:
        if self._at + n > len(self._pool):
            self._pool, self._at = os.urandom(self.SIZE), 0
        self._at += n
        return self._pool[self._at - n:self._at]


_entropy = _Entropy()


def ulid(now: float | None = None, *, random: bytes | None = None) -> str:
    """26 characters: 48 bits of milliseconds, then 80 random bits (`random`, 10 bytes,
    off the event loop's thread, where the pool may not be used)."""
    ms = int((time.time() if now is None else now) * 1000)
    value = (ms << 80) | int.from_bytes(random or _entropy.take(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def event_id(now: float | None = None, *, random: bytes | None = None) -> str:
    return "evt_" + ulid(now, random=random)


def delivery_ref(delivery_id: int) -> str:
    """The public name of a delivery row."""
    return f"dlv_{delivery_id}"
