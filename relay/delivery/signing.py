"""Delivery signatures: produce them (sender) and check them (receiver, `relay listen`).

Pure functions, no I/O. The four schemes, byte-exactly (``body`` is the raw request body,
``ts`` unix seconds in decimal, ``<b64>`` standard base64 with padding, ``<hex>`` lowercase
hex, HMAC is HMAC-SHA256; one signature per secret, two during a rotation grace):

``standard-webhooks`` (https://www.standardwebhooks.com), key = base64-decode of the part
of the secret after ``whsec_``::

    webhook-id: <msg_id>
    webhook-timestamp: <ts>
    webhook-signature: v1,<b64 HMAC(key, b"<msg_id>.<ts>." + body)>[ v1,<b64 ...>]

``hmac-sha256-timestamped`` (Stripe/AthenaText style), key = the secret's UTF-8 bytes::

    Relay-Signature: t=<ts>,v1=<hex HMAC(key, b"<ts>." + body)>[,v1=<hex ...>]

``hmac-sha256-body``, key = the secret's UTF-8 bytes::

    X-Relay-Signature: <hex HMAC(key, body)>[ <hex ...>]

``svix`` (what Svix sends): the standard-webhooks signature under Svix's header names,
which Svix's own verifiers (``svix.Webhook``) read first::

    svix-id: <msg_id>
    svix-timestamp: <ts>
    svix-signature: v1,<b64 HMAC(key, b"<msg_id>.<ts>." + body)>[ v1,<b64 ...>]

``none``: no headers.

The header name of the two ``hmac-*`` schemes is configurable; the first signature is
always the current (first) secret's, so a verifier that reads only the first one works.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets as _secrets
import time
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import get_args

from relay.text import control_problem
from relay.types import Scheme

SCHEMES: tuple[Scheme, ...] = get_args(Scheme)
DEFAULT_HEADER: dict[str, str] = {
    "hmac-sha256-timestamped": "Relay-Signature",
    "hmac-sha256-body": "X-Relay-Signature",
}
# The standard-webhooks headers: id, timestamp, signature. relay sends the id header with
# every scheme (`id_header`): Svix's for `svix`, webhook-id for the others.
STANDARD_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
SVIX_HEADERS = ("svix-id", "svix-timestamp", "svix-signature")
WEBHOOK_ID = STANDARD_HEADERS[0]
# The schemes signing like standard-webhooks (a whsec_ secret), and their headers.
_STANDARD: dict[str, tuple[str, str, str]] = {"standard-webhooks": STANDARD_HEADERS,
                                              "svix": SVIX_HEADERS}
# Every header `sign` may set under its default name (relay.delivery.headers reserves them).
SIGNATURE_HEADERS: tuple[str, ...] = (*STANDARD_HEADERS, *SVIX_HEADERS,
                                      *DEFAULT_HEADER.values())


def id_header(scheme: str) -> str:
    """The header carrying the event id, the same on every retry and replay (SPEC §1)."""
    return _STANDARD.get(scheme, STANDARD_HEADERS)[0]

_WHSEC = "whsec_"
_MIN_WHSEC_BYTES = 24
_MIN_HMAC_CHARS = 16


class SignatureError(ValueError):
    """A received request's signature does not check out; the message says why."""


def generate_secret() -> str:
    """A new secret usable by every scheme: ``whsec_`` + base64 of 32 random bytes."""
    return _WHSEC + base64.b64encode(_secrets.token_bytes(32)).decode("ascii")


def _whsec_key(secret: str) -> bytes | None:
    """The HMAC key of a standard-webhooks secret, or None if it is not one.

    Missing base64 padding is tolerated, as the official verifiers do.
    """
    if not secret.startswith(_WHSEC):
        return None
    b64 = secret[len(_WHSEC) :]
    try:
        key = base64.b64decode(b64 + "=" * (-len(b64) % 4), validate=True)
    except ValueError:  # binascii.Error, or a character outside ASCII
        return None
    return key if len(key) >= _MIN_WHSEC_BYTES else None


def check_secret(scheme: str, secret: str) -> str | None:
    """None if ``secret`` is usable for ``scheme``, else a short reason."""
    if problem := control_problem(secret):
        return f"the secret {problem}"
    if scheme in _STANDARD:
        if _whsec_key(secret) is None:
            return (
                f"{scheme} secrets must be 'whsec_' + base64 of at least "
                f"{_MIN_WHSEC_BYTES} bytes"
            )
        return None
    if scheme in ("hmac-sha256-timestamped", "hmac-sha256-body"):
        if len(secret) < _MIN_HMAC_CHARS:
            return f"must be at least {_MIN_HMAC_CHARS} characters"
        return None
    if scheme == "none":
        return None
    return f"unknown signature scheme {scheme!r}"


@lru_cache(maxsize=4096)
def _key(scheme: str, secret: str) -> bytes:
    """The HMAC key of ``secret``; ValueError with check_secret's reason if unusable."""
    reason = check_secret(scheme, secret)
    key = _whsec_key(secret) if scheme in _STANDARD else secret.encode()
    if reason is not None or key is None:
        raise ValueError(reason)
    return key


def _mac(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()  # faster than hmac.digest(.., "sha256")


def _signature(scheme: str, secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The one signature token of ``secret``, as it appears in the header."""
    key = _key(scheme, secret)
    if scheme in _STANDARD:
        mac = _mac(key, f"{msg_id}.{timestamp}.".encode() + body)
        return "v1," + base64.b64encode(mac).decode("ascii")
    if scheme == "hmac-sha256-timestamped":
        return _mac(key, f"{timestamp}.".encode() + body).hex()
    return _mac(key, body).hex()


def sign(
    scheme: str,
    secrets: Sequence[str],
    msg_id: str,
    timestamp: int,
    body: bytes,
    header: str | None = None,
) -> dict[str, str]:
    """The signature headers of a delivery, one signature per secret (current one first).

    Only standard-webhooks and svix add id/timestamp headers (part of those schemes);
    ``header`` renames the hmac-* header and is ignored otherwise. Raises ValueError for
    an unknown scheme or a secret that ``check_secret`` rejects.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown signature scheme {scheme!r}")
    if scheme == "none":
        return {}
    if not secrets:
        raise ValueError(f"{scheme} needs at least one secret")
    sigs = [_signature(scheme, s, msg_id, timestamp, body) for s in secrets]
    if scheme in _STANDARD:
        return dict(zip(_STANDARD[scheme], (msg_id, str(timestamp), " ".join(sigs)),
                        strict=True))
    name = header or DEFAULT_HEADER[scheme]
    if scheme == "hmac-sha256-timestamped":
        return {name: f"t={timestamp}," + ",".join(f"v1={sig}" for sig in sigs)}
    return {name: " ".join(sigs)}


def _check_age(timestamp: int, tolerance: int | None, now: int | None) -> None:
    if tolerance is None:
        return
    age = (int(time.time()) if now is None else now) - timestamp
    if age > tolerance:
        raise SignatureError(f"timestamp {age}s old (tolerance {tolerance}s)")
    if -age > tolerance:
        raise SignatureError(f"timestamp {-age}s in the future (tolerance {tolerance}s)")


def _parse_ts(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise SignatureError(f"invalid timestamp {raw!r}") from None


def verify(
    scheme: str,
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    header: str | None = None,
    tolerance: int | None = 300,
    now: int | None = None,
) -> None:
    """Raise SignatureError unless one signature in ``headers`` is ``secret``'s for ``body``.

    Header names are matched case-insensitively. For the timestamped schemes the timestamp
    must be within ``tolerance`` seconds of ``now`` (either direction) unless tolerance is
    None. ``none`` accepts anything. ValueError (not SignatureError) for an unknown scheme
    or a ``secret`` that ``check_secret`` rejects: that is the receiver's mistake.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown signature scheme {scheme!r}")
    if scheme == "none":
        return
    lower = {k.lower(): v for k, v in headers.items()}

    def get(name: str) -> str:
        value = lower.get(name.lower())
        if value is None:
            raise SignatureError(f"no signature header {name!r}")
        return value

    if scheme in _STANDARD:
        id_name, ts_name, sig_name = _STANDARD[scheme]
        msg_id = get(id_name)
        timestamp = _parse_ts(get(ts_name))
        received = get(sig_name).split()
    else:
        name = header or DEFAULT_HEADER[scheme]
        value = get(name)
        msg_id = ""
        timestamp = 0
        if scheme == "hmac-sha256-timestamped":
            parts = [p.strip().partition("=") for p in value.split(",")]
            stamps = [v for k, _, v in parts if k == "t"]
            if not stamps:
                raise SignatureError(f"no t= timestamp in {name!r}")
            timestamp = _parse_ts(stamps[0])
            received = [v for k, _, v in parts if k == "v1"]
        else:
            received = value.split()
    if scheme != "hmac-sha256-body":
        _check_age(timestamp, tolerance, now)
    expected = _signature(scheme, secret, msg_id, timestamp, body).encode()
    if not any(hmac.compare_digest(expected, sig.encode()) for sig in received):
        raise SignatureError("signature mismatch")
