"""Svix's own Python SDK (PyPI `svix`) pointed at relay, for the tests of /api/v1: only
the server URL and the token change, as docs/svix.md tells Svix's users."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from svix import SvixAsync, SvixOptions, Webhook

from tests.helpers import ADMIN
from tests.receiver import Received
from tests.serving import Running

SECRET = "whsec_" + "e" * 32


@asynccontextmanager
async def sdk(r: Running, key: str = ADMIN) -> AsyncIterator[SvixAsync]:
    """Svix's async client pointed at relay (the synchronous one would block the event
    loop relay is served from); no retries, so each call is one request."""
    client = SvixAsync(key, SvixOptions(server_url=r.url, retry_schedule=[]))
    try:
        yield client
    finally:
        await client._httpx_client.aclose()


def verified(secret: str, got: Received) -> None:
    """Svix's own verifier accepts the delivery (it raises otherwise)."""
    Webhook(secret).verify(got.body, got.headers)
