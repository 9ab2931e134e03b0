"""`relay listen`: a development receiver that verifies and prints each delivery.

It answers `status` (or 500 for a `fail_rate` share of requests, to watch retries), checks
the signature with the given secret (scheme detected from the headers when "auto"), and
flags bad signatures and stale timestamps.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Mapping
from typing import Any

import click
import uvicorn

from relay.delivery.signing import DEFAULT_HEADER, SignatureError, verify

Scope = dict[str, Any]


def detect_scheme(headers: Mapping[str, str], header: str | None) -> str | None:
    if "webhook-signature" in headers:
        return "standard-webhooks"
    for scheme, default in DEFAULT_HEADER.items():
        name = (header or default).lower()
        if name in headers:
            if scheme == "hmac-sha256-body" and headers[name].startswith("t="):
                continue
            return "hmac-sha256-timestamped" if headers[name].startswith("t=") else scheme
    return None


def check(headers: Mapping[str, str], body: bytes, secret: str | None, scheme: str,
          header: str | None) -> str:
    """One line on the signature: valid, invalid (why), or not checked."""
    used = detect_scheme(headers, header) if scheme == "auto" else scheme
    if used is None:
        return "unsigned"
    if secret is None:
        return f"{used} (not verified: pass --secret)"
    try:
        verify(used, secret, headers, body, header=header)
    except (SignatureError, ValueError) as exc:
        return f"INVALID {used}: {exc}"
    return f"valid {used}"


def make_app(secret: str | None, scheme: str, header: str | None, status: int,
             fail_rate: float, out: Any = None) -> Any:
    echo = out or click.echo

    async def app(scope: Scope, receive: Any, send: Any) -> None:
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
        answer = 500 if fail_rate and random.random() < fail_rate else status
        verdict = check(headers, body, secret, scheme, header)
        try:
            shown = json.dumps(json.loads(body), indent=2)
        except ValueError:
            shown = body.decode(errors="replace")
        stamp = time.strftime("%H:%M:%S")
        echo(f"--- {stamp} {scope['method']} {scope['path']} -> {answer}")
        for name in sorted(headers):
            if name.startswith("webhook-") or "signature" in name or name == "user-agent":
                echo(f"  {name}: {headers[name]}")
        echo(f"  signature: {verdict}")
        echo("  " + shown.replace("\n", "\n  "))
        await send({"type": "http.response.start", "status": answer,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"received":true}'})

    return app


def run(*, host: str, port: int, secret: str | None, scheme: str, header: str | None,
        status: int, fail_rate: float) -> None:
    click.echo(f"relay listen: receiving on http://{host}:{port}/ (Ctrl-C to stop)")
    uvicorn.run(make_app(secret, scheme, header, status, fail_rate), host=host, port=port,
                log_level="warning", lifespan="off")
