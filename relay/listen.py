"""`relay listen`: a development receiver that verifies and prints each delivery.

It answers `status` (or 500 for a `fail_rate` share of requests, to watch retries), checks
the signature with the given secret (scheme detected from the headers when "auto"), and
flags bad signatures and, separately, timestamps outside the tolerance: a valid signature
on a stale timestamp is what a replay attack (or a wrong clock) looks like.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

import click
import uvicorn

from relay.delivery.signing import DEFAULT_HEADER, SVIX_HEADERS, SignatureError, verify

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


# Accepted clock difference between sender and receiver, as Standard Webhooks verifiers do.
TOLERANCE = 300


def detect_scheme(headers: Mapping[str, str], header: str | None) -> str | None:
    """The scheme a request is signed with, from which signature header it carries."""
    if "webhook-signature" in headers:
        return "standard-webhooks"
    if SVIX_HEADERS[2] in headers:
        return "svix"
    for default in DEFAULT_HEADER.values():  # the header locates it, its value tells which
        value = headers.get((header or default).lower())
        if value is not None:
            return "hmac-sha256-timestamped" if value.startswith("t=") else "hmac-sha256-body"
    return None


def _timestamp(scheme: str, headers: Mapping[str, str], header: str | None) -> int | None:
    """The signed unix timestamp of the timestamped schemes (None if absent or garbled:
    the signature check reports that)."""
    if scheme in ("standard-webhooks", "svix"):
        raw = headers.get("svix-timestamp" if scheme == "svix" else "webhook-timestamp")
    elif scheme == "hmac-sha256-timestamped":
        value = headers.get((header or DEFAULT_HEADER[scheme]).lower(), "")
        raw = next((v for k, _, v in (p.strip().partition("=") for p in value.split(","))
                    if k == "t"), None)
    else:
        return None
    return int(raw) if raw is not None and raw.isdigit() else None


def _staleness(timestamp: int | None, tolerance: int, now: int) -> str | None:
    """A flag when the timestamp is outside the tolerance: a replayed request, or a clock
    off (the sender's or this machine's). Reported apart from the signature, which may
    well be valid."""
    if timestamp is None:
        return None
    age = now - timestamp
    if age > tolerance:
        return f"STALE timestamp: {age}s old (tolerance {tolerance}s)"
    if -age > tolerance:
        return f"FUTURE timestamp: {-age}s ahead (tolerance {tolerance}s)"
    return None


def check(headers: Mapping[str, str], body: bytes, secret: str | None, scheme: str,
          header: str | None, *, tolerance: int = TOLERANCE, now: int | None = None) -> str:
    """One line on the signature: valid, INVALID (why) or not checked, then a STALE or
    FUTURE flag if the timestamp is out of tolerance. `headers` have lowercase names."""
    used = detect_scheme(headers, header) if scheme == "auto" else scheme
    if used is None:
        return "unsigned"
    if secret is None:
        verdict = f"{used} (not verified: pass --secret)"
    else:
        try:
            verify(used, secret, headers, body, header=header, tolerance=None)
        except SignatureError as exc:
            verdict = f"INVALID {used}: {exc}"
        except ValueError as exc:  # the secret given to us is unusable for this scheme
            verdict = f"{used} (not verified: --secret {exc})"
        else:
            verdict = f"valid {used}"
    stale = _staleness(_timestamp(used, headers, header), tolerance,
                       int(time.time()) if now is None else now)
    return verdict if stale is None else f"{verdict}; {stale}"


def make_app(secret: str | None, scheme: str, header: str | None, status: int,
             fail_rate: float, *, tolerance: int = TOLERANCE,
             out: Callable[[str], None] = click.echo) -> ASGIApp:
    """The receiver: prints each request to `out` and answers `status`, or 500 for a
    `fail_rate` share of requests."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope["headers"]}
        failing = fail_rate > 0 and random.random() < fail_rate
        answer = 500 if failing else status
        verdict = check(headers, body, secret, scheme, header, tolerance=tolerance)
        try:
            shown = json.dumps(json.loads(body), indent=2)
        except ValueError:
            shown = body.decode(errors="replace")
        stamp = time.strftime("%H:%M:%S")
        why = " (--fail-rate)" if failing else ""
        out(f"--- {stamp} {scope['method']} {scope['path']} -> {answer}{why}")
        for name in sorted(headers):
            if name.startswith(("webhook-", "svix-")) or "signature" in name \
                    or name == "user-agent":
                out(f"  {name}: {headers[name]}")
        out(f"  signature: {verdict}")
        out("  " + shown.replace("\n", "\n  "))
        await send({"type": "http.response.start", "status": answer,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"received":true}'})

    return app


def run(*, host: str, port: int, secret: str | None, scheme: str, header: str | None,
        status: int, fail_rate: float, tolerance: int = TOLERANCE) -> None:
    click.echo(f"relay listen: receiving on http://{host}:{port}/ (Ctrl-C to stop)")
    uvicorn.run(make_app(secret, scheme, header, status, fail_rate, tolerance=tolerance),
                host=host, port=port, log_level="warning", lifespan="off")
