"""`idempotency-key` on /api/v1's POSTs (the Svix SDKs send one with every POST, and
retry a 5xx or a lost connection with the same key): the first answer is given again.

A key belongs to the API key that sent it (its sha256) and names one request: its
method, path, query and body (sha256). The decision is relay.storage.rules.answer_again
(the same request answered: its first answer, byte for byte; another request, or one
still being answered: 409); the store keeps the answers (Requests role), so every
process sharing a PostgreSQL database gives the same one. Only a 2xx is kept, as Svix
keeps only successes: a failure's retry runs again. An answer lost in a crash between
its commit and being kept runs again on retry; a message's `eventId` still protects it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable

from pydantic import TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from relay.api.ingest import IdempotencyKey
from relay.api.svix.errors import Invalid, problem
from relay.runtime import Relay

_KEY: TypeAdapter[str] = TypeAdapter(IdempotencyKey)
_HEADER = "idempotency-key"


def digest(request: Request, body: bytes) -> str:
    """What a key's request is: method, path, query and body."""
    target = f"{request.method} {request.url.path}?{request.url.query}"
    return hashlib.sha256(target.encode() + b"\x00" + body).hexdigest()


async def answered(relay: Relay, request: Request, owner: str, body: bytes,
                   run: Callable[[], Awaitable[Response]]) -> Response:
    """`run`'s answer, or the one the request's idempotency-key already has."""
    sent = request.headers.get(_HEADER)
    if sent is None:
        return await run()
    try:
        key = _KEY.validate_python(sent)
    except ValidationError as exc:
        raise Invalid([problem("header", [_HEADER], e["msg"].removeprefix("Value error, "))
                       for e in exc.errors(include_url=False)]) from None
    store = relay.store
    stored = await store.begin_request(owner, key, digest(request, body), relay.clock())
    if stored is not None and stored.status is not None:
        return Response(stored.body, stored.status,
                        media_type="application/json" if stored.body else None)
    try:
        response = await run()
    except Exception:
        await store.end_request(owner, key, None, b"")
        raise
    if 200 <= response.status_code < 300:
        await store.end_request(owner, key, response.status_code, bytes(response.body))
    else:
        await store.end_request(owner, key, None, b"")
    return response
