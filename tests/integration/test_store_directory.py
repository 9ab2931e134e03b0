"""The store's Directory role on both backends: tenants and API keys stored, changed and
deleted, every write moving the directory's version; deleting a tenant takes its
endpoints (their unfinished deliveries cancelled) and keys, and leaves its events."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import asyncpg
import pytest

from relay.errors import Conflict, NotFound, Unprocessable
from relay.storage.base import Store, Watcher
from relay.storage.postgres import PostgresStore
from relay.types import ApiKeyRow, EndpointSpec, EventTypeRow, NewEndpoint, TenantRow
from tests.helpers import NOW, event
from tests.serving import eventually


def tenant(tenant_id: str, uid: str | None = None, at: float = NOW) -> TenantRow:
    return TenantRow(tenant_id, tenant_id.title(), {"plan": "pro"}, None, True, uid, None,
                     at, at)


def key(key_id: str, tenant_id: str, digest: str, at: float = NOW) -> ApiKeyRow:
    return ApiKeyRow(key_id, f"{key_id}-name", digest, ("admin",), tenant_id, None, at)


async def test_tenants_and_keys_are_stored_each_write_moving_the_version(
        store: Store) -> None:
    empty = await store.directory()
    assert (empty.tenants, empty.keys) == ((), ())
    acme = await store.create_tenant(tenant("acme", uid="acme-uid"))
    beta = await store.create_tenant(tenant("beta", at=NOW + 1))
    one = await store.create_api_key(key("key_1", "acme", "a" * 64), tenant_in_file=False)
    two = await store.create_api_key(key("key_2", "default", "b" * 64, NOW + 1),
                                     tenant_in_file=True)
    stored = await store.directory()
    assert stored.tenants == (acme, beta)  # in creation order
    assert stored.keys == (one, two)
    assert stored.version == empty.version + 4

    changed = await store.update_tenant(
        "acme", {"name": "Acme Inc", "metadata": {"plan": "free"}, "max_webhooks": 3,
                 "webhooks_enabled": False}, NOW + 5)
    assert changed == dataclasses.replace(acme, name="Acme Inc", metadata={"plan": "free"},
                                          max_webhooks=3, webhooks_enabled=False,
                                          updated_at=NOW + 5)
    assert await store.delete_api_key("key_2") == two
    after = await store.directory()
    assert after.tenants == (changed, beta) and after.keys == (one,)
    assert after.version == stored.version + 2


async def test_refusals_change_nothing(store: Store) -> None:
    await store.create_tenant(tenant("acme", uid="acme-uid"))
    await store.create_tenant(tenant("beta"))
    version = (await store.directory()).version
    with pytest.raises(Conflict, match="tenant id 'acme' is already used"):
        await store.create_tenant(tenant("acme"))
    with pytest.raises(Conflict, match="tenant id 'acme-uid' is already used"):
        await store.create_tenant(tenant("acme-uid"))  # another tenant's uid
    with pytest.raises(Conflict, match="uid 'beta' is already used by tenant 'beta'"):
        await store.create_tenant(tenant("gamma", uid="beta"))
    with pytest.raises(Conflict, match="uid 'acme-uid' is already used by tenant 'acme'"):
        await store.update_tenant("beta", {"uid": "acme-uid"}, NOW)
    with pytest.raises(NotFound, match="no tenant 'nobody'"):
        await store.update_tenant("nobody", {"name": "x"}, NOW)
    with pytest.raises(NotFound, match="no tenant 'nobody'"):
        await store.delete_tenant("nobody", NOW)
    with pytest.raises(Unprocessable):  # neither the file's nor a stored tenant
        await store.create_api_key(key("key_1", "nobody", "c" * 64), tenant_in_file=False)
    with pytest.raises(NotFound, match="no API key 'key_9'"):
        await store.delete_api_key("key_9")
    assert store.healthy
    assert (await store.directory()).version == version
    # A tenant may keep its own uid, or change it to one nobody has.
    assert (await store.update_tenant("acme", {"uid": "acme-uid"}, NOW)).uid == "acme-uid"
    assert (await store.update_tenant("acme", {"uid": None}, NOW)).uid is None


async def test_deleting_a_tenant_takes_its_endpoints_and_keys_and_keeps_its_events(
        store: Store) -> None:
    await store.create_tenant(tenant("acme"))
    await store.create_api_key(key("key_1", "acme", "a" * 64), tenant_in_file=False)
    await store.create_api_key(key("key_2", "default", "b" * 64), tenant_in_file=True)
    for eid in ("ep_1", "ep_2"):
        await store.create_endpoint(NewEndpoint(eid, "acme", eid, EndpointSpec(
            url=f"https://{eid}.example/"), "whsec_x", NOW), None)
    ev = dataclasses.replace(event(1, endpoints=("ep_1", "ep_2", "a")), tenant="acme")
    await store.ingest([ev])
    removed = await store.delete_tenant("acme", NOW + 1)
    assert removed.endpoints == ("ep_1", "ep_2") and removed.cancelled == 2
    assert removed.keys == 1
    assert {e.id for e in await store.list_endpoints()} == {"a", "b"}  # the config ones
    states = {d.endpoint_id: d.state for d in await store.deliveries_of(ev.id)}
    assert states == {"ep_1": "cancelled", "ep_2": "cancelled", "a": "pending"}
    assert await store.get_event(ev.id, "acme") is not None
    stored = await store.directory()
    assert stored.tenants == () and [k.id for k in stored.keys] == ["key_2"]
    # The id is free again: a tenant's id does not name history the way an endpoint's does.
    await store.create_tenant(tenant("acme"))


async def test_another_process_hears_of_a_change_by_its_heartbeat_or_by_notify(
        pg_url: str) -> None:
    """A version moved without a NOTIFY (one lost) is seen by the other store's heartbeat
    within a second; a write wakes the other's watcher (NOTIFY relay_directory)."""
    one, two = PostgresStore(pg_url), PostgresStore(pg_url)
    await asyncio.gather(one.open(), two.open())
    heard: list[int] = []
    try:
        await two.watch(Watcher(lambda e, t: None, lambda: None, lambda: None,
                                config_digest="", directory=lambda: heard.append(1)))
        assert heard  # on listening: what was missed
        watching = time.time()

        async def beaten() -> bool:  # a heartbeat since: it knows the version now
            return any(n.seen_at > watching for n in await one.nodes(time.time())
                       if n.id == two._cluster.node)

        await eventually(beaten, 5, "a heartbeat of the second store")
        heard.clear()
        con = await asyncpg.connect(pg_url)
        try:
            await con.execute("UPDATE directory_changes SET version = version + 1")
        finally:
            await con.close()
        started = time.monotonic()
        await eventually(lambda: heard, 5, "the heartbeat to see the version move")
        assert time.monotonic() - started < 1.0
        heard.clear()
        await one.create_tenant(tenant("acme"))
        await eventually(lambda: heard, 5, "NOTIFY relay_directory")
    finally:
        await asyncio.gather(one.close(), two.close())


def event_type(name: str, at: float = NOW, **fields: object) -> EventTypeRow:
    row = EventTypeRow(name, f"{name} happened", {"n": 1},
                       {"type": "object", "required": ["n"]}, False, False, True, at, at)
    return dataclasses.replace(row, **fields)  # type: ignore[arg-type]


async def test_event_types_are_stored_changed_and_expunged(store: Store) -> None:
    empty = await store.directory()
    assert empty.event_types == ()
    one = await store.create_event_type(event_type("lead.created"))
    two = await store.create_event_type(event_type("lead.lost", NOW + 1, schema=None,
                                                   enforced=False))
    stored = await store.directory()
    assert stored.event_types == (one, two)  # in creation order
    assert stored.version == empty.version + 2

    changed = await store.update_event_type(
        "lead.created", {"description": "new", "sample": {"n": 2}, "schema": None,
                         "deprecated": True}, NOW + 5)
    assert changed == dataclasses.replace(one, description="new", sample={"n": 2},
                                          schema=None, deprecated=True, updated_at=NOW + 5)
    assert await store.delete_event_type("lead.lost") == two
    after = await store.directory()
    assert after.event_types == (changed,) and after.version == stored.version + 2


async def test_event_type_refusals_change_nothing(store: Store) -> None:
    await store.create_event_type(event_type("lead.created"))
    version = (await store.directory()).version
    with pytest.raises(Conflict, match=r"'lead\.created' already exists"):
        await store.create_event_type(event_type("lead.created"), unarchive=True)
    with pytest.raises(NotFound, match="no event type 'nope'"):
        await store.update_event_type("nope", {"deprecated": True}, NOW)
    with pytest.raises(NotFound, match="no event type 'nope'"):
        await store.delete_event_type("nope")
    assert (await store.directory()).version == version


async def test_an_archived_event_type_comes_back_only_when_asked(store: Store) -> None:
    first = await store.create_event_type(event_type("lead.created"))
    await store.update_event_type("lead.created", {"archived": True}, NOW + 1)
    with pytest.raises(Conflict, match=r"already exists \(archived\)"):
        await store.create_event_type(event_type("lead.created", NOW + 2))
    again = await store.create_event_type(
        event_type("lead.created", NOW + 3, description="v2", enforced=False), unarchive=True)
    assert again == dataclasses.replace(first, description="v2", enforced=False,
                                        updated_at=NOW + 3)
    assert (await store.directory()).event_types == (again,)
