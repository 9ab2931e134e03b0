"""Event types as data over HTTP (SPEC §10), on both backends: created, changed and
deleted by an admin key; the config file's are read-only and never merged with data's
(409 both ways); a schema made through the API is checked at ingest at once, after a
change, and within a second on another relay sharing the PostgreSQL database; a type
made with enforced=false (Svix's) is checked for nothing."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from relay import config as cfgmod
from relay.config.event_types import EventTypeConfig
from relay.errors import ConfigError
from relay.operations import event_types
from relay.runtime import Relay
from tests.helpers import ADMIN, EVENTS, READER, assert_error, auth, config_on, sha
from tests.serving import Running, eventually, running

SCHEMA = {"type": "object", "required": ["order_id"],
          "properties": {"order_id": {"type": "string", "pattern": "^ord_"}}}
KEYS = [{"name": n, "key_sha256": sha(k), "scopes": s}
        for n, k, s in (("admin", ADMIN, ["admin"]), ("reader", READER, ["webhooks:read"]),
                        ("events", EVENTS, ["events:write"]))]
SECTIONS: dict[str, Any] = {
    "api_keys": KEYS,
    "event_types": [{"name": "lead.qualified", "description": "A lead qualified.",
                     "sample": {"lead_id": "l1"}}],
}


@pytest.fixture(params=["sqlite", "postgres"])
async def r(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Running]:
    async with config_on(request.param, tmp_path, **SECTIONS) as loaded, \
            running(loaded) as served:
        served.client.headers.update(auth(ADMIN))
        yield served


async def ingest(r: Running, type_: str, data: dict[str, Any]) -> Any:
    return await r.client.post("/v1/events", json={"type": type_, "data": data},
                               headers=auth(EVENTS))


async def test_create_read_change_delete(r: Running) -> None:
    created = await r.client.post("/v1/event-types", json={
        "name": "order.paid", "description": "An order was paid.",
        "sample": {"order_id": "ord_1"}, "schema": SCHEMA})
    assert created.status_code == 201, created.text
    order = {"name": "order.paid", "description": "An order was paid.",
             "sample": {"order_id": "ord_1"}, "schema": SCHEMA, "deprecated": False,
             "source": "api"}
    assert created.json() == order
    assert (await r.client.get("/v1/event-types/order.paid", headers=auth(READER))
            ).json() == order
    assert (await r.client.get("/v1/event-types/order.paid/sample")).json() == {
        "type": "order.paid", "data": {"order_id": "ord_1"}}
    listed = (await r.client.get("/v1/event-types", headers=auth(READER))).json()
    assert [(t["name"], t["source"]) for t in listed["data"]][:2] == [
        ("lead.qualified", "config"), ("order.paid", "api")]
    assert {t["source"] for t in listed["data"][2:]} == {"relay"}

    patched = await r.client.patch("/v1/event-types/order.paid", json={
        "description": "Paid.", "deprecated": True})
    assert patched.status_code == 200, patched.text
    assert patched.json() == {**order, "description": "Paid.", "deprecated": True}
    # deprecated: still accepted
    assert (await ingest(r, "order.paid", {"order_id": "ord_2"})).status_code == 202

    assert (await r.client.delete("/v1/event-types/order.paid")).status_code == 204
    assert_error(await r.client.get("/v1/event-types/order.paid"), 404, "not_found")
    assert_error(await r.client.delete("/v1/event-types/order.paid"), 404, "not_found")


async def test_the_list_is_paginated_by_cursor(r: Running) -> None:
    for n in range(3):
        assert (await r.client.post("/v1/event-types", json={"name": f"t.{n}"})
                ).status_code == 201
    names, after = [], None
    while True:
        page = (await r.client.get("/v1/event-types", params={
            "limit": 2, **({"after": after} if after else {})})).json()
        names += [t["name"] for t in page["data"]]
        if (after := page["next"]) is None:
            break
    assert names[:4] == ["lead.qualified", "t.0", "t.1", "t.2"]
    assert all(n.startswith("relay.") for n in names[4:]) and len(names) == len(set(names))


async def test_config_and_data_never_merge(r: Running) -> None:
    taken = assert_error(await r.client.post("/v1/event-types", json={
        "name": "lead.qualified"}), 409, "conflict")
    assert "declared in" in taken["message"]
    for call in (r.client.patch("/v1/event-types/lead.qualified", json={"deprecated": True}),
                 r.client.delete("/v1/event-types/lead.qualified")):
        refused = assert_error(await call, 409, "conflict")
        assert "declared in" in refused["message"] and "lead.qualified" in refused["message"]
    assert (await r.client.post("/v1/event-types", json={"name": "order.paid"})
            ).status_code == 201
    assert_error(await r.client.post("/v1/event-types", json={"name": "order.paid"}),
                 409, "conflict")
    own = assert_error(await r.client.post("/v1/event-types", json={"name": "relay.ping"}),
                       422, "validation_failed")
    assert own["details"][0]["path"] == "name"
    assert_error(await r.client.patch("/v1/event-types/relay.endpoint.disabled",
                                      json={"deprecated": True}), 409, "conflict")
    # the file may not declare a type that exists as data: refused, the old config stays
    relay: Relay = r.relay
    clash = dataclasses.replace(relay.loaded, config=relay.config.model_copy(update={
        "event_types": [*relay.config.event_types,
                        EventTypeConfig.model_validate({"name": "order.paid"})]}))
    with pytest.raises(ConfigError, match=r"event_types\[1\]\.name: event type 'order\.paid' "
                       "exists as data"):
        await relay.keeper.prepare(clash)


async def test_only_admins_change_event_types(r: Running) -> None:
    for key in (READER, EVENTS):
        assert_error(await r.client.post("/v1/event-types", json={"name": "x.y"},
                                         headers=auth(key)), 403, "forbidden")


async def test_schema_and_sample_are_checked_with_paths(r: Running) -> None:
    bad = assert_error(await r.client.post("/v1/event-types", json={
        "name": "order.paid", "schema": {"type": "objekt", "properties": {"a": {
            "minimum": "zero"}}}}), 422, "validation_failed")
    assert sorted(d["path"] for d in bad["details"]) == ["schema.properties.a.minimum",
                                                          "schema.type"]
    sample = assert_error(await r.client.post("/v1/event-types", json={
        "name": "order.paid", "schema": SCHEMA, "sample": {"order_id": 7}}),
        422, "validation_failed")
    assert [d["path"] for d in sample["details"]] == ["sample.order_id"]
    assert (await r.client.post("/v1/event-types", json={"name": "order.paid"})
            ).status_code == 201
    # a schema the stored sample does not match is refused on change too
    changed = assert_error(await r.client.patch("/v1/event-types/order.paid", json={
        "schema": SCHEMA}), 422, "validation_failed")
    assert [d["path"] for d in changed["details"]] == ["sample"]
    assert_error(await r.client.post("/v1/event-types", json={"name": "bad name"}),
                 422, "validation_failed")


async def test_a_schema_is_enforced_at_ingest_at_once_and_after_a_change(r: Running) -> None:
    assert (await r.client.post("/v1/event-types", json={
        "name": "order.paid", "schema": SCHEMA, "sample": {"order_id": "ord_1"}})
            ).status_code == 201
    refused = assert_error(await ingest(r, "order.paid", {"order_id": 7}),
                           422, "validation_failed")
    assert [d["path"] for d in refused["details"]] == ["data.order_id"]
    assert (await ingest(r, "order.paid", {"order_id": "ord_2"})).status_code == 202
    unknown = assert_error(await ingest(r, "order.refunded", {}), 422, "validation_failed")
    assert "lead.qualified, order.paid" in unknown["details"][0]["message"]

    loose = {"type": "object", "properties": {"order_id": {"type": "integer"}}}
    assert (await r.client.patch("/v1/event-types/order.paid", json={
        "schema": loose, "sample": {"order_id": 1}})).status_code == 200
    assert (await ingest(r, "order.paid", {"order_id": 7})).status_code == 202
    assert_error(await ingest(r, "order.paid", {"order_id": "ord_2"}), 422,
                 "validation_failed")
    assert (await r.client.patch("/v1/event-types/order.paid", json={"schema": None})
            ).status_code == 200
    assert (await ingest(r, "order.paid", {"order_id": "anything"})).status_code == 202


async def test_types_not_enforced_count_for_nothing(r: Running) -> None:
    relay: Relay = r.relay
    # Svix's: its schema is documentation (even one relay would not compile)
    await event_types.create_event_type(
        relay, "invoice.sent", schema={"$schema": "http://json-schema.org/draft-07/schema#",
                                       "required": ["x"]}, enforced=False)
    assert relay.directory.event_types["invoice.sent"].schema is not None
    assert "invoice.sent" not in relay.directory.enforced
    unknown = assert_error(await ingest(r, "invoice.sent", {}), 422, "validation_failed")
    assert "declared types: lead.qualified" in unknown["details"][0]["message"]
    # Svix's delete archives: hidden from the list, brought back by a create
    await event_types.delete_event_type(relay, "invoice.sent", expunge=False)
    assert_error(await r.client.get("/v1/event-types/invoice.sent"), 404, "not_found")
    assert event_types.get_event_type(relay, "invoice.sent", include_archived=True).archived
    back = await event_types.create_event_type(relay, "invoice.sent", "again",
                                               enforced=False, unarchive=True)
    assert (back.description, back.archived) == ("again", False)


async def test_with_no_file_types_a_data_type_makes_ingest_strict(
        tmp_path: Path, make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with running(make_config(api_keys=KEYS)) as served:
        served.client.headers.update(auth(ADMIN))
        assert (await ingest(served, "any.thing", {})).status_code == 202
        assert (await served.client.post("/v1/event-types", json={"name": "order.paid"})
                ).status_code == 201
        assert_error(await ingest(served, "any.thing", {}), 422, "validation_failed")
        assert (await served.client.delete("/v1/event-types/order.paid")).status_code == 204
        assert (await ingest(served, "any.thing", {})).status_code == 202


@pytest.mark.postgres
async def test_a_type_made_on_one_relay_is_enforced_on_another_within_a_second(
        tmp_path: Path) -> None:
    async with config_on("postgres", tmp_path, api_keys=KEYS) as loaded, \
            running(loaded) as a, running(loaded) as b:
        created = await a.client.post("/v1/event-types", json={
            "name": "order.paid", "schema": SCHEMA, "sample": {"order_id": "ord_1"}},
            headers=auth(ADMIN))
        assert created.status_code == 201, created.text

        async def refused_on_b() -> bool:
            return (await ingest(b, "order.paid", {"order_id": 7})).status_code == 422

        await eventually(refused_on_b, 1.0, "relay B to check the new schema")
        assert (await ingest(b, "order.paid", {"order_id": "ord_2"})).status_code == 202
        assert (await a.client.patch("/v1/event-types/order.paid", json={"schema": None},
                                     headers=auth(ADMIN))).status_code == 200

        async def accepted_on_b() -> bool:
            return (await ingest(b, "order.paid", {"order_id": 7})).status_code == 202

        await eventually(accepted_on_b, 1.0, "relay B to drop the schema")


async def test_the_console_shows_both_sources(
        make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with running(make_config(event_types=SECTIONS["event_types"])) as served:
        await event_types.create_event_type(served.relay, "order.paid", "Paid.",
                                            deprecated=True)
        page = (await served.client.get("/ui/event-types")).text
        config_at, api_at = page.index("<code>lead.qualified</code>"), page.index(
            "<code>order.paid</code>")
        assert config_at < api_at
        assert 'class="badge muted">config file</span>' in page[config_at:api_at]
        assert 'class="badge muted">API</span> <span class="badge">deprecated</span>' in (
            page[api_at:])
