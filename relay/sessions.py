"""Signed, expiring session tokens: portal links and the console's session cookie.

A token is a compact payload and its HMAC-SHA256 under a key relay generated and keeps in
its database (`Sessions.secret_key`), never in the config file, so links survive restarts
and nobody can make one without `POST /v1/portal-sessions`:

    <kind>.<subject>.<expires>.<r|w>.<nonce>.<base64url HMAC>

kind `p` (portal: subject is the tenant id), `o` (operator: the first 16 hex digits of
the API key's SHA-256, or `-` without API keys), `a` (a visitor not signed in yet: it
carries only a CSRF nonce). No part can contain a dot (tenant ids cannot), so splitting
is unambiguous. Signatures are compared in constant time.

A signed-in session (operator with an API key, portal) also has a row in the database
(`sessions`, keyed by the nonce), and is live only while its row is: signing out deletes
it, a config that no longer grants its key or tenant deletes it (every process sharing
the database then refuses the cookie at its next request, since each reads the row), and
`decide` ends it after `[ui] session_idle` without use or at `session_lifetime`. Use is
written at most every `touch_every(idle)` seconds (a minute by default), not per request,
so a session may end up to that much before `session_idle` has passed since its last
request. Two kinds stay stateless: a visitor not signed in (`a`, a CSRF nonce that grants
nothing), and the operator of an open relay (`-`: without API keys every loopback caller
gets one anyway, so a row would protect nothing and cost a write per cookieless request).
A portal link is a stateless token until used: opening it starts a session with a row.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Literal

from relay.directory import Directory
from relay.types import SessionRow

KEY_NAME = "console-sessions"  # the Sessions.secret_key name
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

    @property
    def stored(self) -> bool:
        """Whether it lives in the database too (a signed-in session: see above)."""
        return self.kind == "p" or (self.kind == "o" and self.subject != "-")


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


# --- which sessions hold ----------------------------------------------------------------

TOUCH_EVERY = 60.0  # seconds: how often a session's use is written, at most
Decision = Literal["expired", "idle", "live", "touch"]


def touch_every(idle: float) -> float:
    """How often use is written: a minute, or a tenth of `idle` when that is shorter (so
    a short `session_idle` keeps its precision)."""
    return min(TOUCH_EVERY, idle / 10)


def decide(row: SessionRow, now: float, idle: float) -> Decision:
    """A stored session at `now`: dead (`expired` at its lifetime's end, `idle` after
    `idle` seconds since its recorded use), or live, and `touch` when its use should be
    written now. Both stores' purge_sessions delete exactly the dead ones."""
    if now >= row.expires_at:
        return "expired"
    if now - row.last_seen_at >= idle:
        return "idle"
    return "touch" if now - row.last_seen_at >= touch_every(idle) else "live"


def subjects(directory: Directory) -> dict[str, frozenset[str]]:
    """Who may hold a session under a directory (the config's tenants and keys, and
    those made through the API), by kind: operators, the first 16 hex digits of each
    admin key's SHA-256 (`-` when the file has no API keys: open on loopback); portals,
    every tenant whose webhooks are enabled. A key's expiry is not looked at here: a
    session signed in with it ends by then (its `until`)."""
    keys = directory.keys.values()
    operators = frozenset({"-"}) if directory.open \
        else frozenset(k.sha256[:16] for k in keys if "admin" in k.scopes)
    return {"o": operators, "p": frozenset(
        t.id for t in directory.tenants.values() if t.webhooks_enabled)}


def granted(directory: Directory, session: Session) -> bool:
    """Whether the directory still grants the session's key or tenant (a visitor's:
    always)."""
    return session.kind == "a" or session.subject in subjects(directory)[session.kind]
