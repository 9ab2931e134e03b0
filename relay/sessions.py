"""Signed, expiring session tokens: portal links and the console's session cookie.

A token is a compact payload and its HMAC-SHA256 under a key relay generated and keeps in
its database (`Store.secret_key`), never in the config file, so links survive restarts
and nobody can make one without `POST /v1/portal-sessions`:

    <kind>.<subject>.<expires>.<r|w>.<nonce>.<base64url HMAC>

kind `p` (portal: subject is the tenant id), `o` (operator: the first 16 hex digits of
the API key's SHA-256, or `-` without API keys), `a` (a visitor not signed in yet: it
carries only a CSRF nonce). No part can contain a dot (tenant ids cannot), so splitting
is unambiguous. Signatures are compared in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass, replace
from typing import Literal

KEY_NAME = "console-sessions"  # the Store.secret_key name
Kind = Literal["a", "o", "p"]
_KINDS = ("a", "o", "p")


def new_key() -> bytes:
    return secrets.token_bytes(32)


@dataclass(frozen=True, slots=True)
class Session:
    kind: Kind
    subject: str
    expires_at: int  # unix seconds
    read_only: bool
    nonce: str

    @property
    def tenant(self) -> str | None:
        """The one tenant a portal session may see; None for the operator."""
        return self.subject if self.kind == "p" else None

    def renewed(self) -> Session:
        """The same grant with a new nonce (so a new CSRF token) after signing in."""
        return replace(self, nonce=secrets.token_urlsafe(12))


def new_session(kind: Kind, subject: str, expires_at: float, read_only: bool) -> Session:
    return Session(kind, subject, int(expires_at), read_only, secrets.token_urlsafe(12))


def _mac(key: bytes, message: str) -> str:
    digest = hmac.new(key, message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign(key: bytes, session: Session) -> str:
    payload = (f"{session.kind}.{session.subject}.{session.expires_at}."
               f"{'r' if session.read_only else 'w'}.{session.nonce}")
    return f"{payload}.{_mac(key, payload)}"


def verify(key: bytes, token: str, now: float) -> Session | None:
    """The session a token carries; None when forged, altered, malformed or expired."""
    payload, _, mac = token.rpartition(".")
    if not hmac.compare_digest(mac.encode(), _mac(key, payload).encode()):
        return None
    parts = payload.split(".")
    if len(parts) != 5 or parts[0] not in _KINDS or not parts[2].isdigit() \
            or parts[3] not in ("r", "w"):
        return None
    kind, subject, expires, mode, nonce = parts
    if int(expires) <= now:
        return None
    return Session(kind, subject, int(expires), mode == "r", nonce)  # type: ignore[arg-type]


def csrf_token(key: bytes, session: Session) -> str:
    """The token every state-changing console request must carry: bound to the session's
    nonce, so a page of another session (or none) cannot supply it."""
    return _mac(key, f"csrf.{session.nonce}")


def csrf_ok(key: bytes, session: Session, given: str) -> bool:
    return hmac.compare_digest(given.encode(), csrf_token(key, session).encode())
