"""Svix's applications and event types at /api/v1, made, changed and deleted through
Svix's own Python SDK: relay's tenants and event types kept as data (SPEC §10, §11;
docs/svix.md). Mirrors Svix's test_client.py and kitchen sink where noted."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from svix.api import (
    ApplicationListOptions,
    EventTypeDeleteOptions,
    EventTypeListOptions,
)
from svix.exceptions import HttpError, HTTPValidationError
from svix.models import (
    ApplicationIn,
    ApplicationPatch,
    AppPortalAccessIn,
    EndpointIn,
    EventTypeIn,
    EventTypePatch,
    EventTypeUpsertIn,
    MessageIn,
)

from relay import config as cfgmod
from tests.helpers import ADMIN, admin_api, auth
from tests.svix_sdk import sdk, verified

SCHEMA = {"type": "object", "properties": {"value": {"type": "string"}},
          "required": ["value"], "examples": [{"value": "example"}]}


async def _refused(call: Any, status: int, code: str | None = None) -> None:
    with pytest.raises(HttpError) as refused:
        await call
    assert refused.value.status_code == status, refused.value
    assert code is None or refused.value.code == code, refused.value


@pytest.mark.parametrize("channel", [None, "project-1"])
async def test_quickstart_with_a_new_application(make_config: Callable[..., cfgmod.Loaded],
                                                 channel: str | None) -> None:
    """Svix's test_svix_message_create as written: a new application (64 hex characters
    as its uid), a new event type with a schema, an endpoint, a message."""
    async with admin_api(make_config) as (r, rx), sdk(r) as svix:
        uid = secrets.token_hex(32)
        app = await svix.application.get_or_create(ApplicationIn(name="App", uid=uid))
        assert app.id == app.uid == uid  # a uid that fits relay's tenant ids is the id
        name = f"event.{secrets.token_hex(8)}"
        await svix.event_type.create(EventTypeIn(name=name, description="A test event",
                                                 schemas={"1": SCHEMA}))
        channels = None if channel is None else [channel]
        await svix.endpoint.create(app.uid, EndpointIn(
            url=f"{rx.url}/svix", uid="ep", event_types=[name], channels=channels))
        secret = (await svix.endpoint.get_secret(app.uid, "ep")).key
        message = await svix.message.create(app.uid, MessageIn(
            event_type=name, payload={"value": "test"}, channels=channels))
        assert message.event_type == name and message.channels == channels
        [got] = await rx.wait_for(1, "/svix")
        assert got.body == b'{"value":"test"}'
        assert got.headers["svix-id"] == message.id
        assert not [header for header in got.headers if header.startswith("webhook-")]
        verified(secret, got)
        assert (await svix.application.get_or_create(ApplicationIn(name="App", uid=uid))
                ) == app


async def test_applications(make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with admin_api(make_config) as (r, rx), sdk(r) as svix:
        raw = await r.client.post("/api/v1/app", headers=auth(ADMIN), json={
            "name": "Shop", "uid": "shop", "metadata": {"plan": "pro"}, "throttleRate": 7})
        assert raw.status_code == 201, raw.text
        made = await svix.application.get("shop")
        assert (made.id, made.uid, made.name, made.metadata, made.throttle_rate) == (
            "shop", "shop", "Shop", {"plan": "pro"}, 7)
        assert isinstance(made.created_at, datetime) and made.created_at == made.updated_at
        await _refused(svix.application.create(ApplicationIn(name="Again", uid="shop")), 409,
                       "conflict")
        again = await r.client.post("/api/v1/app?get_if_exists=true", headers=auth(ADMIN),
                                    json={"name": "Again", "uid": "shop"})
        assert again.status_code == 200 and again.json()["id"] == "shop"
        assert await svix.application.get_or_create(ApplicationIn(name="x", uid="shop")) == made
        # A uid that cannot be a tenant id (a dot) gets an app_ id; found by either.
        dotted = await svix.application.create(ApplicationIn(name="EU", uid="shop.eu"))
        assert dotted.id.startswith("app_") and dotted.uid == "shop.eu"
        assert await svix.application.get("shop.eu") == dotted == await svix.application.get(
            dotted.id)
        bare = await svix.application.create(ApplicationIn(name="App"))  # JS kitchen sink
        assert bare.id.startswith("app_") and bare.uid is None and bare.metadata == {}
        with pytest.raises(HTTPValidationError) as prefixed:
            await svix.application.create(ApplicationIn(name="P", uid="app_mine"))
        assert prefixed.value.detail[0].loc == ["body", "uid"]
        # Listed by 2, each once, with the file's tenants.
        ids, iterator = [], None
        while True:
            page = await svix.application.list(ApplicationListOptions(limit=2,
                                                                      iterator=iterator))
            ids += [a.id for a in page.data]
            iterator = page.iterator
            if page.done:
                break
        assert sorted(ids) == ids == sorted({"acme", "default", "frozen", "limited", "shop",
                                             dotted.id, bare.id})
        # Upsert: a new one takes the path as its uid (201); an existing one is replaced
        # (200), its uid kept.
        created = await r.client.put("/api/v1/app/upserted", headers=auth(ADMIN),
                                     json={"name": "U", "metadata": {"a": "b"}})
        assert created.status_code == 201, created.text
        assert (created.json()["id"], created.json()["uid"]) == ("upserted", "upserted")
        replaced = await svix.application.upsert("upserted", ApplicationIn(name="U2"))
        assert (replaced.id, replaced.uid, replaced.name, replaced.metadata) == (
            "upserted", "upserted", "U2", {})
        by_sdk = await svix.application.upsert("sdk-made", ApplicationIn(name="S"))
        assert (by_sdk.id, by_sdk.uid) == ("sdk-made", "sdk-made")
        # Patch: only what is sent; a null throttleRate clears it.
        patched = await svix.application.patch("shop", ApplicationPatch(
            name="Shop 2", metadata={"plan": "max"}))
        assert (patched.name, patched.metadata, patched.throttle_rate) == (
            "Shop 2", {"plan": "max"}, 7)
        assert patched.updated_at >= made.updated_at
        cleared = await svix.application.patch("shop", ApplicationPatch(throttle_rate=None))
        assert cleared.throttle_rate is None and cleared.name == "Shop 2"
        # The tenant /v1 shows; a tenant of the file cannot be changed here.
        tenant = await r.client.get("/v1/tenants/shop", headers=auth(ADMIN))
        assert tenant.status_code == 200, tenant.text
        assert (tenant.json()["name"], tenant.json()["source"]) == ("Shop 2", "api")
        for call in (svix.application.patch("acme", ApplicationPatch(name="n")),
                     svix.application.upsert("acme", ApplicationIn(name="n")),
                     svix.application.delete("acme"), svix.application.delete("default")):
            await _refused(call, 409, "conflict")
        # Delete: its endpoints go with it.
        await svix.endpoint.create("shop", EndpointIn(url=f"{rx.url}/gone"))
        await svix.application.delete("shop")
        await _refused(svix.application.get("shop"), 404, "not_found")
        assert await r.relay.store.list_endpoints("shop") == []
        listed = await r.client.get("/v1/tenants", headers=auth(ADMIN))
        assert "shop" not in [t["id"] for t in listed.json()["data"]]


async def test_portal_link_creates_its_application(
        make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with admin_api(make_config) as (r, _), sdk(r) as svix:
        access = await svix.authentication.app_portal_access("portal-app", AppPortalAccessIn(
            application=ApplicationIn(name="Portal", uid="portal-app")))
        assert access.token and (await svix.application.get("portal-app")).name == "Portal"


async def test_event_types(make_config: Callable[..., cfgmod.Loaded]) -> None:
    """Svix's kitchen sink, and what a schema made here does: nothing at ingest (A4)."""
    async with admin_api(make_config) as (r, _), sdk(r) as svix:
        started = await svix.event_type.create(EventTypeIn(
            name="event.started", description="Something started", schemas={"1": SCHEMA}))
        assert started.schemas == {"1": SCHEMA}
        assert (started.deprecated, started.archived) == (False, False)
        raw = await r.client.post("/api/v1/event-type", headers=auth(ADMIN), json={
            "name": "event.ended", "description": "Something ended"})
        assert raw.status_code == 201, raw.text
        await _refused(svix.event_type.create(EventTypeIn(
            name="event.started", description="again")), 409, "event_type_exists")
        await _refused(svix.event_type.create(EventTypeIn(
            name="lead.qualified", description="the file's")), 409, "event_type_exists")
        with pytest.raises(HTTPValidationError) as own:
            await svix.event_type.create(EventTypeIn(name="relay.mine", description=""))
        assert own.value.detail[0].loc == ["body", "name"]
        assert await svix.event_type.get("event.started") == started
        sample = await r.client.get("/v1/event-types/event.started/sample",
                                    headers=auth(ADMIN))
        assert sample.json()["data"] == {"value": "example"}  # the schema's first example
        listed = await svix.event_type.list()
        assert [t.name for t in listed.data] == [
            "billing.paid", "event.ended", "event.started", "lead.lost", "lead.qualified"]
        assert all(t.schemas is None for t in listed.data)
        full = await svix.event_type.list(EventTypeListOptions(with_content=True))
        assert {t.name: t.schemas for t in full.data}["event.started"] == {"1": SCHEMA}
        # Upsert: an existing one replaced (200), a new one created (201).
        ended = await svix.event_type.upsert("event.ended", EventTypeUpsertIn(
            description="Ended", schemas={"1": {"type": "object"}}))
        assert (ended.description, ended.schemas) == ("Ended", {"1": {"type": "object"}})
        put = await r.client.put("/api/v1/event-type/event.put", headers=auth(ADMIN),
                                 json={"description": "Put"})
        assert put.status_code == 201, put.text
        assert (await svix.event_type.get("event.put")).description == "Put"
        deprecated = await svix.event_type.patch("event.ended", EventTypePatch(deprecated=True))
        assert deprecated.deprecated and deprecated.description == "Ended"
        await _refused(svix.event_type.patch("lead.lost", EventTypePatch(deprecated=True)),
                       409)
        await _refused(svix.event_type.delete("lead.lost"), 409)
        # A schema made here is documentation: a payload against it is taken.
        taken = await svix.message.create("acme", MessageIn(event_type="event.started",
                                                            payload={"value": 42}))
        assert taken.event_type == "event.started"
        # Delete archives: hidden unless asked for; a create brings it back.
        await svix.event_type.delete("event.ended")
        await _refused(svix.event_type.get("event.ended"), 404, "not_found")
        names = [t.name for t in (await svix.event_type.list()).data]
        assert "event.ended" not in names
        archived = await svix.event_type.list(EventTypeListOptions(include_archived=True))
        assert {t.name: t.archived for t in archived.data}["event.ended"] is True
        shown = await r.client.get("/api/v1/event-type/event.ended?include_archived=true",
                                   headers=auth(ADMIN))
        assert shown.status_code == 200 and shown.json()["archived"] is True
        back = await svix.event_type.create(EventTypeIn(name="event.ended",
                                                        description="Back"))
        assert (back.archived, back.description) == (False, "Back")
        await svix.event_type.delete("event.ended", EventTypeDeleteOptions(expunge=True))
        gone = await r.client.get("/api/v1/event-type/event.ended?include_archived=true",
                                  headers=auth(ADMIN))
        assert gone.status_code == 404


async def test_event_types_made_here_leave_ingest_open(
        make_config: Callable[..., cfgmod.Loaded]) -> None:
    """Without types in the file, /v1 ingest takes any type: those made through /api/v1
    do not make it refuse undeclared ones, nor check their schemas (A4)."""
    async with admin_api(make_config, event_types=[]) as (r, _), sdk(r) as svix:
        await svix.event_type.create(EventTypeIn(name="event.started", description="",
                                                 schemas={"1": SCHEMA}))
        for type_, data in (("event.started", {"value": 1}), ("never.declared", {})):
            sent = await r.client.post("/v1/events", headers=auth(ADMIN),
                                       json={"type": type_, "data": data})
            assert sent.status_code == 202, sent.text
