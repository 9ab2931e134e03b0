"""EndpointSpec: the `spec` column's JSON, read and written the same way as before it
was a type (rows in existing databases load, config sync finds them unchanged)."""

from __future__ import annotations

from dataclasses import fields

import pytest

from relay import config as cfgmod
from relay.config import EndpointConfig
from relay.delivery.endpoints import config_endpoints
from relay.types import EndpointSpec

# Written by relay before EndpointSpec (json.dumps of the config model, keys sorted).
STORED = [
    '{"enabled": true, "events": ["*"], "filter": {}, "headers": {}, "ordering": "none", '
    '"payload": "envelope", "signature": "standard-webhooks", "url": "https://a.example/x"}',
    '{"enabled": false, "endpoint_concurrency": 4, "events": ["lead.*", "x.y"], "filter": '
    '{"data.c": ["p", "q"], "data.n": {"$gte": 0.8}}, "headers": {"X-T": "s"}, "ordering": '
    '"fifo", "payload": "array", "rate_limit": 50.0, "retry_schedule": [10.0, 60.0, 0.5], '
    '"signature": "hmac-sha256-timestamped", "signature_header": "Athena-Signature", '
    '"timeout": 5.0, "url": "https://b.example/x"}',
]
ENDPOINTS = [
    {"id": "a", "url": "https://a.example/x"},
    {"id": "b", "url": "https://b.example/x", "events": ["lead.*", "x.y"],
     "headers": {"X-T": "s"}, "filter": {"data.n": {"$gte": 0.8}, "data.c": ["p", "q"]},
     "signature": "hmac-sha256-timestamped", "signature_header": "Athena-Signature",
     "payload": "array", "timeout": "5s", "retry_schedule": ["10s", "1m", "500ms"],
     "endpoint_concurrency": 4, "rate_limit": 50, "enabled": False, "ordering": "fifo"},
]


def test_config_endpoints_are_stored_as_before() -> None:
    loaded = cfgmod.validate({"endpoints": ENDPOINTS}, {})
    assert [e.spec.to_json() for e in config_endpoints(loaded)] == STORED


@pytest.mark.parametrize("text", STORED)
def test_a_stored_spec_reads_back_to_the_same_text(text: str) -> None:
    assert EndpointSpec.from_json(text).to_json() == text


def test_a_row_from_before_ordering_reads_its_default() -> None:
    spec = EndpointSpec.from_json('{"enabled": true, "events": ["*"], "filter": {}, '
                                  '"headers": {}, "payload": "envelope", '
                                  '"signature": "standard-webhooks", "url": "https://a/"}')
    assert spec == EndpointSpec(url="https://a/") and spec.ordering == "none"


def test_the_spec_is_every_endpoint_key_but_identity_and_secret() -> None:
    assert [f.name for f in fields(EndpointSpec)] == [
        name for name in EndpointConfig.model_fields
        if name not in ("id", "tenant", "secret", "secret_env")]


def test_the_config_defaults_are_the_specs() -> None:
    assert EndpointConfig(id="a", url="https://a/").spec == EndpointSpec(url="https://a/")
