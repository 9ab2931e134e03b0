"""Opaque, caller-bound list cursors: the `next` of every paginated list and its `after`.

A cursor is base64url (unpadded) of a 12-byte HMAC-SHA256 followed by the position (the
id of the page's last item). The HMAC covers the list's scope (which list, whose: the
tenant, and for deliveries the webhook) and the position, under a key relay generated and
keeps in its database (`Store.secret_key`, as the console's session key), so only
relay can mint one, and a cursor minted for one tenant's list is refused by every other
list: it tells nobody whether another tenant's ids exist or how they are ordered. The
position itself is the caller's own item, so it carries nothing the caller had not seen;
the encoding only keeps it from being mistaken for an id to edit. About 60 characters,
URL-safe as it is.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from relay.errors import InvalidCursor

KEY_NAME = "list-cursors"  # the Store.secret_key name
_MAC = 12  # bytes of HMAC kept: 96 bits, a forgery needs 2**96 tries


def _mac(key: bytes, scope: str, position: str) -> bytes:
    message = f"{scope}\x00{position}".encode()
    return hmac.new(key, message, hashlib.sha256).digest()[:_MAC]


def mint(key: bytes, scope: str, position: str) -> str:
    """The cursor that resumes the list `scope` after `position`."""
    raw = _mac(key, scope, position) + position.encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def position(key: bytes, scope: str, cursor: str) -> str:
    """The position a cursor of the list `scope` carries. InvalidCursor (400) for one of
    another list or caller, altered, forged, or not a cursor at all (a raw id)."""
    try:
        raw = base64.urlsafe_b64decode(cursor.encode("ascii") + b"=" * (-len(cursor) % 4))
        found = raw[_MAC:].decode()
    except (UnicodeError, binascii.Error, ValueError):
        raw, found = b"", ""
    if len(raw) <= _MAC or not hmac.compare_digest(raw[:_MAC], _mac(key, scope, found)):
        raise InvalidCursor(
            "after: not a cursor relay handed to this caller for this list; pass the "
            "`next` of the previous page as it is", [{"path": "after", "message":
                                                       "not a cursor of this list"}])
    return found
