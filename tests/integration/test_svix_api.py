"""Svix's API at /api/v1 driven by Svix's own Python SDK (PyPI `svix`), against relay
served on loopback with a real SQLite file, deliveries going to a loopback receiver
that verifies them with the SDK's own `Webhook`. docs/svix.md lists what each test
covers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from svix import SvixAsync, SvixOptions, Webhook
from svix.api import (
    EndpointListOptions,
    MessageAttemptListByEndpointOptions,
    MessageCreateOptions,
    MessageListOptions,
)
from svix.exceptions import HttpError, HTTPValidationError
from svix.models import (
    ApplicationIn,
    EndpointHeadersIn,
    EndpointHeadersPatchIn,
    EndpointIn,
    EndpointPatch,
    EndpointSecretRotateIn,
    EndpointUpsertIn,
    MessageIn,
)

from relay import config as cfgmod
from tests.helpers import ACME, ADMIN, READER, admin_api, api_config, auth
from tests.receiver import Received, Receiver
from tests.serving import Running, eventually, running

SECRET = "whsec_" + "e" * 32


@asynccontextmanager
async def sdk(r: Running, key: str = ADMIN) -> AsyncIterator[SvixAsync]:
    """Svix's async client pointed at relay: only the server URL and the token change."""
    client = SvixAsync(key, SvixOptions(server_url=r.url, retry_schedule=[]))
    try:
        yield client
    finally:
        await client._httpx_client.aclose()


def verified(secret: str, got: Received) -> None:
    """Svix's own verifier accepts the delivery (it raises otherwise)."""
    Webhook(secret).verify(got.body, got.headers)


@pytest.mark.parametrize("channel", [None, "project-1"])
async def test_quickstart(make_config: Callable[..., cfgmod.Loaded], channel: str | None
                          ) -> None:
    """Svix's test_svix_message_create: an application (a config tenant), an endpoint,
    a message; the receiver gets the payload itself, signed as Svix signs."""
    async with admin_api(make_config) as (r, rx), sdk(r) as svix:
        app = await svix.application.get_or_create(ApplicationIn(name="Acme", uid="acme"))
        assert app.id == "acme"
        channels = None if channel is None else [channel]
        endpoint = await svix.endpoint.create(app.id, EndpointIn(
            url=f"{rx.url}/svix", uid="crm-hook", event_types=["lead.qualified"],
            channels=channels))
        assert endpoint.uid == "crm-hook" and endpoint.event_types == ["lead.qualified"]
        assert endpoint.channels == channels
        secret = (await svix.endpoint.get_secret(app.id, "crm-hook")).key
        message = await svix.message.create(app.id, MessageIn(
            event_type="lead.qualified", payload={"value": "test"}, channels=channels))
        assert message.event_type == "lead.qualified" and message.channels == channels
        [got] = await rx.wait_for(1, "/svix")
        assert got.body == b'{"value":"test"}'
        assert got.headers["svix-id"] == message.id
        assert {"svix-timestamp", "svix-signature"} <= set(got.headers)
        assert not [name for name in got.headers if name.startswith("webhook-")]
        verified(secret, got)
