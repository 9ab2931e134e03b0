"""Delivery as Svix sends it: the `svix` signature scheme checked by Svix's own verifier,
the `data` payload mode cut from the envelope's bytes, and channels matching."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from svix.webhooks import Webhook, WebhookVerificationError

from relay import config as cfgmod
from relay.delivery.attempt import body_of, build_request
from relay.delivery.endpoints import resolve
from relay.delivery.headers import reserved
from relay.delivery.matching import channels_match
from relay.delivery.signing import generate_secret, sign, verify
from relay.runtime.events import envelope
from relay.types import EndpointRow, EndpointSpec

SECRET, OLD = generate_secret(), generate_secret()
NOW = 1_776_000_000


def _endpoint(spec: EndpointSpec, prev: str | None = None, now: float = NOW) -> EndpointRow:
    return EndpointRow(
        id="ep_1", tenant="acme", source="api", name="", spec=spec, secret=SECRET,
        prev_secret=prev, prev_secret_until=None if prev is None else now + 60.0,
        is_active=True, is_paused=False, disable_reason=None, created_at=now,
        last_delivery_at=None, last_delivery_status=None, consecutive_failures=0,
        failing_since=None)


@pytest.mark.parametrize("secrets", [[SECRET], [SECRET, OLD]])
def test_svix_signatures_verify_with_svix_itself(secrets: list[str]) -> None:
    body = b'{"value":"test"}'
    headers = sign("svix", secrets, "evt_1", NOW, body)
    assert set(headers) == {"svix-id", "svix-timestamp", "svix-signature"}
    for secret in secrets:  # during a rotation's grace both secrets verify
        verify("svix", secret, headers, body, tolerance=None)
    now = int(time.time())  # Svix's verifier compares the timestamp with its own clock
    headers = sign("svix", secrets, "evt_1", now, body)
    for secret in secrets:
        Webhook(secret).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(body, headers)


def test_a_svix_delivery_is_the_payload_signed_under_svix_names() -> None:
    spec = EndpointSpec(url="https://r.example/", signature="svix", payload="data",
                        headers={"x-team": "a"})
    now = time.time()  # Svix's verifier compares the timestamp with its own clock
    endpoint = resolve(_endpoint(spec, prev=OLD, now=now), cfgmod.DeliveryConfig(), now)
    data = {"value": "test", "n": [1, 2.5, None], "z": "Zoë"}
    env, payload = envelope("evt_1", "user.signup", "acme", data, now)
    body, headers = build_request(endpoint, env["id"], payload, now)
    assert json.loads(body) == data
    assert headers["svix-id"] == "evt_1" and headers["x-team"] == "a"
    assert not [name for name in headers if name.startswith("webhook-")]
    assert len(headers["svix-signature"].split()) == 2  # the old secret's grace
    for secret in (SECRET, OLD):
        Webhook(secret).verify(body, headers)


@pytest.mark.parametrize("data", [
    {},
    {"value": "test"},
    {"nested": {"data": {"a": [1, {"b": None}]}}, "text": ',"data":'},
    {"unicode": "Zoë \u2028 \U0001f600", "escaped": "a\"b\\c"},
    {"big": 2**70},  # past 64 bits: the envelope falls back to the stdlib encoder
    {"float": 0.1, "neg": -1e-7, "bool": True},
])
def test_data_mode_sends_exactly_the_data(data: dict[str, Any]) -> None:
    _, payload = envelope("evt_1", "a.b-c_d", "tenant-1", data, NOW)
    body = body_of(payload, "data")
    assert json.loads(body) == data
    assert payload.endswith(b',"data":' + body + b"}")
    assert body_of(payload, "envelope") == payload
    assert json.loads(body_of(payload, "array")) == [json.loads(payload)]


@pytest.mark.parametrize(("wanted", "channels", "expected"), [
    (None, None, True),  # an endpoint without channels takes every event
    (None, ("a",), True),
    (frozenset({"a"}), None, False),  # an event without channels reaches none of those
    (frozenset({"a"}), (), False),
    (frozenset({"a", "b"}), ("b",), True),
    (frozenset({"a"}), ("b", "c"), False),
    (frozenset({"a"}), ("c", "a"), True),
])
def test_channels(wanted: frozenset[str] | None, channels: tuple[str, ...] | None,
                  expected: bool) -> None:
    assert channels_match(wanted, channels) is expected


@pytest.mark.parametrize("name", ["svix-id", "Svix-Signature", "svix-foo", "webhook-x"])
def test_svix_headers_are_relays_own(name: str) -> None:
    assert reserved(name)
