"""Control characters in every string field and path parameter of every API route, on
both backends: each request answers 4xx, writes nothing, and /readyz stays 200. (PostgreSQL
cannot store NUL in text; a NUL once answered 503 and turned /readyz unready.) The routes
come from the OpenAPI table, which tests/integration/test_openapi.py keeps equal to
relay.server.ROUTES, so a new route or field is covered here without an edit, except
for a valid body of a new model, which the test asks for by name."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from pydantic import BaseModel

from relay import directory_models as dm
from relay import models as wh
from relay.api import ingest, portal, svix
from relay.api.openapi import OPERATIONS
from relay.api.svix import models as sv
from tests.helpers import assert_error, config_on
from tests.receiver import Receiver
from tests.serving import Running, eventually, running

# NUL, other C0 controls, DEL, a C1 control: in the middle of an otherwise valid value.
BAD = ["\x00", "\x01", "\x1f", "\x7f", "\x85"]
TIME = "2026-01-01T00:00:00Z"
# A valid body of each request model (`{target}`: the webhook the routes act on).
BODIES: dict[type[BaseModel], dict[str, Any]] = {
    ingest.EventBody: {"type": "lead.qualified", "data": {"k": "v"}, "id": "key-1",
                       "tenant": "acme"},
    ingest.BatchBody: {"events": [{"type": "lead.qualified", "data": {}, "id": "key-2",
                                   "tenant": "acme"}]},
    wh.WebhookIn: {"name": "hook", "url": "https://x.example/h?a=b", "events": ["lead.*"],
                   "filter": {"data.k": "v", "data.n": {"$in": ["a", "b"]}},
                   "headers": {"X-Team": "sales"}, "signature": "hmac-sha256-body",
                   "signature_header": "X-Sig", "payload": "envelope", "timeout": "5s",
                   "retry_schedule": ["1s", "1m"], "rate_limit": 5, "ordering": "none"},
    wh.WebhookPatch: {"name": "hook2", "url": "https://x.example/h2", "events": ["lead.*"],
                      "filter": {"data.k": {"$prefix": "v"}}, "headers": {"X-Team": "s"},
                      "timeout": "5s", "retry_schedule": ["1s"], "ordering": "fifo"},
    wh.RotateIn: {"grace": "1h"},
    wh.SendTestIn: {"type": "lead.qualified"},
    wh.RecoverIn: {"since": TIME},
    wh.ReplayIn: {"endpoints": ["{target}"]},
    portal.PortalSessionIn: {"tenant": "acme", "expires_in": "1h"},
    wh.EventTypeIn: {"name": "lead.created", "description": "d", "sample": {"k": "v"},
                     "schema": {"type": "object", "properties": {"k": {"type": "string"}}}},
    wh.EventTypePatch: {"description": "d", "deprecated": True},
    dm.TenantIn: {"id": "t-1", "name": "T", "metadata": {"plan": "pro"}, "max_webhooks": 5},
    dm.TenantPatch: {"name": "T2", "metadata": {"plan": "pro"}},
    dm.ApiKeyIn: {"name": "k", "scopes": ["webhooks:read"], "tenant": "acme"},
    # Svix's (/api/v1), by their camelCase names; a message's payload as `data`, its
    # other name, which _spoiled leaves alone (free JSON).
    sv.ApplicationIn: {"name": "Acme", "uid": "acme", "metadata": {"k": "v"}},
    sv.ApplicationPatch: {"name": "Acme", "uid": "acme", "metadata": {"k": "v"}},
    sv.EventTypeIn: {"name": "lead.qualified", "description": "d",
                     "schemas": {"1": {"type": "object"}}},
    sv.EventTypeUpsert: {"description": "d", "schemas": {"1": {"type": "object"}}},
    sv.EventTypePatch: {"description": "d", "schemas": {"1": {"type": "object"}}},
    sv.EndpointFields: {"url": "https://x.example/h", "description": "d", "uid": "u1",
                        "eventTypes": ["lead.qualified"], "channels": ["c1"],
                        "metadata": {"k": "v"}, "headers": {"X-Team": "s"},
                        "secret": "whsec_" + "e" * 32},
    sv.EndpointPatch: {"url": "https://x.example/h", "description": "d", "uid": "u1",
                       "eventTypes": ["lead.qualified"], "channels": ["c1"],
                       "metadata": {"k": "v"}},
    sv.HeadersIn: {"headers": {"X-Team": "s"}},
    sv.HeadersPatch: {"headers": {"X-Team": "s"}, "deleteHeaders": ["X-Old"]},
    sv.RotateIn: {"key": "whsec_" + "f" * 32},
    sv.RecoverIn: {"since": TIME, "until": TIME},
    sv.ExampleIn: {"eventType": "lead.qualified"},
    sv.MessageIn: {"eventType": "lead.qualified", "data": {"k": "v"}, "eventId": "e-1",
                   "channels": ["c1"], "application": {"name": "Acme", "uid": "acme"}},
    sv.PortalIn: {"capabilities": ["ViewBase"], "application": {"name": "A", "uid": "a"}},
}
QUERIES = {"limit": "5", "after": "evt_0", "status": "pending", "type": "lead.qualified",
           "since": TIME, "until": TIME, "iterator": "x", "order": "ascending",
           "with_content": "true", "channel": "c1", "before": TIME, "event_types": "a,b",
           "endpoint_id": "ep_1", "get_if_exists": "true", "include_archived": "true",
           "expunge": "true", "tenant": "acme"}
# Svix's path values (/api/v1): which of the ids each names.
SVIX_PATHS = {"app_id": "tenant", "endpoint_id": "target", "msg_id": "event",
              "event_type_name": "name", "attempt_id": "attempt"}


def _spoiled(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(path, value with one string or key spoiled by a control character), for every
    string and key of `value` and every character of BAD; `data` (free JSON) is left
    alone: see test_control_characters_in_data_are_kept; so are an event type's `sample`
    and `schema`, which are and describe such data."""
    if path.rpartition(".")[2] in ("data", "sample", "schema"):
        return
    if isinstance(value, str):
        for bad in BAD:
            middle = len(value) // 2
            yield path, value[:middle] + bad + value[middle:]
    elif isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else key
            for bad in BAD:
                yield f"{where} (key)", {**value, key[:1] + bad + key[1:]: item}
            for sub, spoiled in _spoiled(item, where):
                yield sub, {**value, key: spoiled}
    elif isinstance(value, list):
        for i, item in enumerate(value):
            for sub, spoiled in _spoiled(item, f"{path}[{i}]"):
                yield sub, [*value[:i], spoiled, *value[i + 1:]]


@pytest.fixture(params=["sqlite", "postgres"])
async def hostile(request: pytest.FixtureRequest, tmp_path: Path
                  ) -> AsyncIterator[tuple[Running, dict[str, str]]]:
    """relay on the backend, open (no API keys), with tenant acme, an API webhook in it
    delivering to a receiver, and one event delivered there: the ids the routes take."""
    async with Receiver() as rx, config_on(
            request.param, tmp_path, tenants=[{"id": "acme"}],
            event_types=[{"name": "lead.qualified"}]) as loaded, running(loaded) as r:
        created = await r.client.post("/v1/webhooks", json={
            "name": "target", "url": f"{rx.url}/t", "events": ["*"]})
        assert created.status_code == 201, created.text
        # The open mode's caller is an admin of `default`: the target lives there.
        target = created.json()["id"]
        sent = await r.client.post("/v1/events", json={"type": "lead.qualified", "data": {}})
        assert sent.status_code == 202
        await rx.wait_for(1)

        async def recorded() -> list[dict[str, Any]] | None:
            listed = await r.client.get(f"/v1/webhooks/{target}/deliveries")
            data: list[dict[str, Any]] = listed.json()["data"]
            return data if data and data[0]["status"] == "succeeded" else None

        deliveries = await eventually(recorded, message="the delivery's outcome")
        yield r, {"target": target, "event": sent.json()["id"], "delivery": deliveries[0]["id"],
                  "name": "lead.qualified", "tenant": "default", "attempt": "atmpt_1"}


async def _written(r: Running) -> Any:
    """What the store holds that a request could change."""
    store = r.relay.store
    endpoints = [(e.id, e.name, e.spec, e.secret, e.is_active, e.is_paused)
                 for e in await store.list_endpoints()]
    events = {tenant: [e.id for e in await store.list_events(tenant, limit=100)]
              for tenant in ("default", "acme")}
    return endpoints, events, await store.counts(), await store.directory()


def _requests(ids: dict[str, str], dialect: str = "relay"
              ) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """(what, method, path, httpx keyword arguments) of every spoiled request to the
    routes of `dialect` (relay's own, or Svix's at /api/v1)."""
    for op in (op for op in OPERATIONS if op.dialect == dialect):
        method = op.method.upper()
        params = re.findall(r"{(\w+)}", op.path)
        good = op.path
        for param in params:
            value = ids["name"] if param == "name" else ids[SVIX_PATHS.get(param) or (
                "event" if op.path.startswith("/v1/events") else
                "delivery" if op.path.startswith("/v1/deliveries") else "target")]
            good = good.replace(f"{{{param}}}", value)
            for bad in BAD:
                yield (f"path {param}", method,
                       op.path.replace(f"{{{param}}}", value + quote(bad)), {})
        if op.query is not None:
            for name in op.query.model_fields:
                for bad in BAD:
                    yield f"query {name}", method, good, {"params": {name: QUERIES[name] + bad}}
        if op.body is not None:
            assert op.body in BODIES, f"add a valid {op.body.__name__} to BODIES"
            body = json.loads(json.dumps(BODIES[op.body]).replace("{target}", ids["target"]))
            for where, spoiled in _spoiled(body):
                yield f"body {where}", method, good, {"json": spoiled}
        if (method, op.path) == ("POST", "/v1/events"):
            for bad in BAD:
                yield ("header Idempotency-Key", method, good,
                       {"json": {"type": "lead.qualified", "data": {}},
                        "raw_headers": {"Idempotency-Key": "key" + bad}})


async def _raw_request(r: Running, method: str, path: str, body: dict[str, Any],
                       headers: dict[str, str]) -> tuple[int, bytes]:
    """A request whose headers httpx would refuse to send; its status and body (the
    server itself answers 400 to C0 and DEL in a header; C1 reaches relay)."""
    host, port = r.url.removeprefix("http://").split(":")
    payload = json.dumps(body).encode()
    head = (f"{method} {path} HTTP/1.1\r\nhost: {host}:{port}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(payload)}\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            + "connection: close\r\n\r\n").encode("latin-1")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head + payload)
        answer = await reader.read()
    finally:
        writer.close()
    return int(answer.split()[1]), answer.partition(b"\r\n\r\n")[2]


@pytest.mark.slow
async def test_control_characters_anywhere_are_4xx_and_harmless(
        hostile: tuple[Running, dict[str, str]]) -> None:
    assert await _all_refused(*hostile, "relay") >= 500  # a new field adds to it


@pytest.mark.slow
async def test_control_characters_on_svixs_api_are_4xx_and_harmless(
        hostile: tuple[Running, dict[str, str]]) -> None:
    assert await _all_refused(*hostile, "svix") >= 800


async def _all_refused(r: Running, ids: dict[str, str], dialect: str) -> int:
    """Send every spoiled request of `dialect`: each answers 4xx (422 in its dialect's
    shape), /readyz stays 200, nothing is written; how many were sent."""
    before = await _written(r)
    tried = 0
    for what, method, path, kwargs in _requests(ids, dialect):
        raw = kwargs.pop("raw_headers", None)
        if raw is not None:
            status, _ = await _raw_request(r, method, path, kwargs["json"], raw)
        else:
            response = await r.client.request(method, path, **kwargs)
            status = response.status_code
            if status == 422 and svix.serves(path):  # Svix's shape there
                assert set(response.json()) == {"detail"}, (what, path, response.text)
            elif status == 422:
                assert_error(response, 422, "validation_failed")
        assert 400 <= status < 500, (what, method, path, kwargs, status)
        ready = await r.client.get("/readyz")
        assert ready.status_code == 200, (what, method, path, kwargs, ready.text)
        tried += 1
    assert await _written(r) == before
    return tried


async def test_nul_answers_name_the_field(hostile: tuple[Running, dict[str, str]]) -> None:
    r, ids = hostile
    cases = [
        ("POST", "/v1/events", {"type": "lead.qualified", "data": {}, "id": "k\x00"}, "id"),
        ("POST", "/v1/events", {"type": "lead.qualified", "data": {}, "tenant": "a\x00"},
         "tenant"),
        ("POST", "/v1/events/batch", {"events": [{"type": "lead.qualified", "data": {},
                                                  "id": "\x00"}]}, "events[0].id"),
        ("POST", "/v1/webhooks", {**BODIES[wh.WebhookIn], "name": "a\x00b"}, "name"),
        ("POST", "/v1/webhooks", {**BODIES[wh.WebhookIn], "url": "https://x.example/\x00"},
         "url"),
        ("POST", "/v1/webhooks", {**BODIES[wh.WebhookIn], "filter": {"data.k": "\x00"}},
         "filter.data.k"),
        ("POST", "/v1/webhooks", {**BODIES[wh.WebhookIn], "filter": {"data.\x00": 1}},
         "filter.data.\x00"),
        ("PATCH", f"/v1/webhooks/{ids['target']}", {"name": "\x00"}, "name"),
        ("POST", f"/v1/events/{ids['event']}/replay", {"endpoints": ["a\x00"]},
         "endpoints[0]"),
        ("POST", "/v1/portal-sessions", {"tenant": "acme\x00"}, "tenant"),
    ]
    for method, path, body, field in cases:
        error = assert_error(await r.client.request(method, path, json=body), 422,
                             "validation_failed")
        assert field in [d["path"] for d in error["details"]], (body, error)
    status, answer = await _raw_request(r, "POST", "/v1/events", {
        "type": "lead.qualified", "data": {}}, {"Idempotency-Key": "key\x85"})
    assert status == 422 and [d["path"] for d in json.loads(answer)["error"]["details"]] \
        == ["Idempotency-Key"], answer
    after = await r.client.get("/v1/events", params={"after": "evt_\x00"})
    assert [d["path"] for d in assert_error(after, 422, "validation_failed")["details"]] == \
        ["after"]
    # A path id that holds a control character names no webhook: 404, as a malformed
    # delivery id does, never a database error.
    missing = await r.client.get("/v1/webhooks/ep%00x")
    assert assert_error(missing, 404, "not_found")["message"] == "no webhook 'ep\\x00x'"
    # The console's pages take the same ids and queries.
    for page in ("/ui/t/default/events/evt_%00x", "/ui/t/default/endpoints/ep%00x",
                 "/ui/t/default/events?after=evt_%00", "/ui/t/default/endpoints?after=%01"):
        status = (await r.client.get(page)).status_code
        assert 400 <= status < 500, (page, status)
        assert (await r.client.get("/readyz")).status_code == 200, page


async def test_control_characters_in_data_are_kept(
        hostile: tuple[Running, dict[str, str]], tmp_path: Path) -> None:
    """`data` is JSON, which may hold any character escaped: stored and delivered intact
    on both backends (the envelope is stored as bytes)."""
    r, _ids = hostile
    async with Receiver() as rx:
        made = await r.client.post("/v1/webhooks", json={
            "name": "data", "url": f"{rx.url}/d", "events": ["lead.qualified"]})
        assert made.status_code == 201
        data = {"nul": "a\x00b", "c0": "\x01\x1f", "del": "\x7f", "c1": "\x85",
                "key\x00": ["\x00"], "sep": "\u2028"}
        sent = await r.client.post("/v1/events", json={"type": "lead.qualified", "data": data})
        assert sent.status_code == 202, sent.text
        [got] = await rx.wait_for(1)
        assert got.json()["data"] == data
        stored = await r.client.get(f"/v1/events/{sent.json()['id']}")
        assert stored.json()["data"] == data
    assert (await r.client.get("/readyz")).status_code == 200
