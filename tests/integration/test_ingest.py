"""Ingest over HTTP: every status code, the error shape, idempotency, durability order."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from relay import config as cfgmod
from tests.helpers import assert_error, auth, sha
from tests.serving import running

KEY = "k-events-0123456789"
ACME_KEY = "k-acme-0123456789"
READ_KEY = "k-read-0123456789"


@pytest.fixture
def secured(make_config: Callable[..., cfgmod.Loaded]) -> cfgmod.Loaded:
    return make_config(
        env={"RELAY_KEY": KEY},
        tenants=[{"id": "acme"}, {"id": "frozen", "webhooks_enabled": False}],
        api_keys=[
            {"name": "svc", "key_env": "RELAY_KEY", "scopes": ["events:write"]},
            {"name": "acme", "key_sha256": sha(ACME_KEY), "scopes": ["admin"],
             "tenant": "acme"},
            {"name": "reader", "key_sha256": sha(READ_KEY), "scopes": ["webhooks:read"]},
        ],
        event_types=[{"name": "lead.qualified"}, {"name": "lead.lost"}],
        server={"max_body_bytes": 2048},
        endpoints=[{"id": "crm", "url": "http://127.0.0.1:9/", "events": ["lead.*"]},
                   {"id": "acme-crm", "url": "http://127.0.0.1:9/", "tenant": "acme"}],
    )


async def test_accepted_event_is_stored_with_its_deliveries(secured: cfgmod.Loaded) -> None:
    async with running(secured) as r:
        response = await r.client.post(
            "/v1/events", json={"type": "lead.qualified", "data": {"x": 1}}, headers=auth(KEY)
        )
        assert response.status_code == 202
        body = response.json()
        assert body["id"].startswith("evt_") and len(body["id"]) == 30
        assert body["type"] == "lead.qualified" and body["deliveries"] == 1
        assert body["timestamp"].endswith("Z")
        # 202 means committed: the delivery row is already there.
        [delivery] = await r.relay.store.deliveries_of(body["id"])
        assert delivery.endpoint_id == "crm"


async def test_idempotency_by_body_id_and_header(secured: cfgmod.Loaded) -> None:
    async with running(secured) as r:
        send = {"type": "lead.qualified", "data": {"x": 1}, "id": "order-1"}
        first = await r.client.post("/v1/events", json=send, headers=auth(KEY))
        again = await r.client.post("/v1/events", json=send, headers=auth(KEY))
        assert (first.status_code, again.status_code) == (202, 200)
        assert again.json() == first.json()
        assert len(await r.relay.store.deliveries_of(first.json()["id"])) == 1
        other = {**send, "data": {"x": 2}}
        assert_error(await r.client.post("/v1/events", json=other, headers=auth(KEY)),
                     409, "conflict")
        headers = {**auth(KEY), "Idempotency-Key": "hdr-1"}
        plain = {"type": "lead.lost", "data": {}}
        a = await r.client.post("/v1/events", json=plain, headers=headers)
        b = await r.client.post("/v1/events", json=plain, headers=headers)
        assert (a.status_code, b.status_code) == (202, 200)
        assert a.json()["id"] == b.json()["id"]


async def test_batch_is_all_or_nothing(secured: cfgmod.Loaded) -> None:
    async with running(secured) as r:
        good = {"type": "lead.qualified", "data": {}}
        response = await r.client.post("/v1/events/batch",
                                       json={"events": [good, good]}, headers=auth(KEY))
        assert response.status_code == 202
        assert len(response.json()["events"]) == 2
        bad = await r.client.post(
            "/v1/events/batch",
            json={"events": [good, {"type": "nope", "data": {}}]}, headers=auth(KEY),
        )
        error = assert_error(bad, 422, "validation_failed")
        assert error["details"][0]["path"] == "events[1].type"
        # Only the first batch's two deliveries exist (in whatever state delivery has
        # taken them to: the endpoint refuses connections).
        assert sum((await r.relay.store.counts()).values()) == 2


async def test_batch_limit(make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with running(make_config()) as r:
        good = {"type": "a.b", "data": {}}
        response = await r.client.post("/v1/events/batch", json={"events": [good] * 501})
        error = assert_error(response, 422, "validation_failed")
        assert error["details"][0]["path"] == "events"
        assert await r.relay.store.counts() == {}
        empty = await r.client.post("/v1/events/batch", json={"events": []})
        assert_error(empty, 422, "validation_failed")


BAD_INPUTS = [
    # (headers, raw body or json, status, code, detail path)
    ({}, {"type": "lead.qualified", "data": {}}, 401, "unauthorized", None),
    (auth("wrong-key"), {"type": "lead.qualified", "data": {}}, 401, "unauthorized", None),
    (auth(READ_KEY), {"type": "lead.qualified", "data": {}}, 403, "forbidden", None),
    (auth(KEY), {"type": "lead.qualified", "data": {}, "tenant": "acme"}, 403, "forbidden",
     None),
    (auth(ACME_KEY), {"type": "lead.qualified", "data": {}, "tenant": "frozen"}, 403,
     "forbidden", None),
    (auth(ACME_KEY), {"type": "lead.qualified", "data": {}, "tenant": "ghost"}, 422,
     "validation_failed", "tenant"),
    (auth(KEY), b'{"type": "lead.qualified", "data": ', 400, "malformed_json", None),
    (auth(KEY), {"type": "bad type!", "data": {}}, 422, "validation_failed", "type"),
    (auth(KEY), {"type": "x" * 129, "data": {}}, 422, "validation_failed", "type"),
    (auth(KEY), {"type": "lead.qualified", "data": [1]}, 422, "validation_failed", "data"),
    (auth(KEY), {"type": "lead.qualified"}, 422, "validation_failed", "data"),
    (auth(KEY), {"type": "lead.qualified", "data": {}, "extra": 1}, 422,
     "validation_failed", "extra"),
    (auth(KEY), {"type": "undeclared.type", "data": {}}, 422, "validation_failed", "type"),
    (auth(KEY), [1, 2], 422, "validation_failed", None),
    (auth(KEY), b'{"type": "lead.qualified", "data": {"n": [1e400]}}', 422,
     "validation_failed", "data"),
    (auth(KEY), {"type": "lead.qualified", "data": {"blob": "x" * 4096}}, 413,
     "payload_too_large", None),
]


@pytest.mark.parametrize(("headers", "body", "status", "code", "path"), BAD_INPUTS)
async def test_bad_input_is_refused_and_writes_nothing(
    secured: cfgmod.Loaded, headers: dict[str, str], body: Any, status: int, code: str,
    path: str | None,
) -> None:
    async with running(secured) as r:
        if isinstance(body, bytes):
            response = await r.client.post("/v1/events", content=body,
                                           headers={**headers, "content-type": "application/json"})
        else:
            response = await r.client.post("/v1/events", json=body, headers=headers)
        error = assert_error(response, status, code)
        if path is not None:
            assert path in [d["path"] for d in error["details"]], error
        assert await r.relay.store.counts() == {}


async def test_content_type_size_and_routes(secured: cfgmod.Loaded) -> None:
    async with running(secured) as r:
        form = await r.client.post("/v1/events", content=b"type=x",
                                   headers={**auth(KEY), "content-type": "text/plain"})
        assert_error(form, 415, "unsupported_media_type")
        # Refused from Content-Length alone, before the body is read.
        big = await r.client.post(
            "/v1/events", content=b"{" + b" " * 10_000 + b"}",
            headers={**auth(KEY), "content-type": "application/json"},
        )
        assert_error(big, 413, "payload_too_large")

        async def chunks() -> Any:  # no Content-Length: counted while streaming
            for _ in range(10):
                yield b" " * 1000

        streamed = await r.client.post(
            "/v1/events", content=chunks(),
            headers={**auth(KEY), "content-type": "application/json"},
        )
        assert_error(streamed, 413, "payload_too_large")
        assert_error(await r.client.get("/v1/nothing"), 404, "not_found")
        assert_error(await r.client.get("/v1/events/batch"), 405, "method_not_allowed")
        assert await r.relay.store.counts() == {}


async def test_503_while_shutting_down(secured: cfgmod.Loaded) -> None:
    async with running(secured) as r:
        r.relay.stopping = True
        response = await r.client.post(
            "/v1/events", json={"type": "lead.qualified", "data": {}}, headers=auth(KEY)
        )
        assert_error(response, 503, "unavailable")
        assert (await r.client.get("/readyz")).status_code == 503
        assert (await r.client.get("/healthz")).status_code == 200
        r.relay.stopping = False


async def test_metrics_and_readiness(secured: cfgmod.Loaded) -> None:
    async with running(secured) as r:
        assert (await r.client.get("/readyz")).json() == {"status": "ready"}
        await r.client.post("/v1/events", json={"type": "lead.qualified", "data": {}},
                            headers=auth(KEY))
        text = (await r.client.get("/metrics")).text
        assert "relay_events_ingested_total 1.0" in text
        assert 'relay_deliveries{state="pending"}' in text or \
            'relay_deliveries{state="delivering"}' in text
