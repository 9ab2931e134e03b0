"""The Store contract behind the management API, on every backend (a real SQLite file, a
real PostgreSQL database): endpoint CRUD, limits, rotation, lists with cursors, requeues."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable

import pytest

from relay.errors import Conflict, NotFound, TooManyRequests
from relay.storage.base import Store
from relay.storage.sqlite import SQLiteStore
from relay.types import EndpointSpec, NewEndpoint, NewEvent
from tests.helpers import NOW, event, result


async def _opened(s: Store) -> Store:
    await s.open()
    for n, tenant in enumerate(("default", "default", "acme")):
        await s.create_endpoint(endpoint(f"ep_{n}", tenant, at=NOW + n), None)
    return s


@pytest.fixture
def prepare_store() -> Callable[[Store], Awaitable[Store]]:
    return _opened


def endpoint(id_: str, tenant: str = "default", at: float = NOW) -> NewEndpoint:
    return NewEndpoint(id=id_, tenant=tenant, name=f"name {id_}",
                       spec=EndpointSpec(url=f"https://{id_}.example/"), secret=f"whsec_{id_}",
                       created_at=at)


def tenant_event(n: int, tenant: str, endpoints: tuple[str, ...], type_: str = "t.x",
                 state: str = "pending") -> NewEvent:
    base = event(n, endpoints, state=state)
    return NewEvent(base.id, tenant, type_, None, "d", NOW + n, base.payload, base.deliveries)


async def test_create_get_list_and_limit(store: Store) -> None:
    row = await store.get_endpoint("ep_0")
    assert row is not None
    assert (row.source, row.name, row.secret, row.tenant) == ("api", "name ep_0", "whsec_ep_0",
                                                              "default")
    assert row.spec == EndpointSpec(url="https://ep_0.example/") and row.is_active
    assert await store.get_endpoint("nope") is None
    assert [r.id for r in await store.list_endpoints("default")] == ["ep_0", "ep_1"]
    assert [r.id for r in await store.list_endpoints()] == ["ep_0", "ep_1", "ep_2"]
    assert [r.id for r in await store.list_endpoints("default", limit=1)] == ["ep_0"]
    assert [r.id for r in await store.list_endpoints("default", after="ep_0")] == ["ep_1"]
    assert await store.list_endpoints("default", after="ep_1") == []
    # The limit counts the tenant's live API endpoints, inside the write: no overshoot.
    results = await asyncio.gather(
        *(store.create_endpoint(endpoint(f"x{i}", "acme"), 3) for i in range(4)),
        return_exceptions=True,
    )
    assert sum(isinstance(r, TooManyRequests) for r in results) == 2
    assert len(await store.list_endpoints("acme")) == 3


async def test_update_rotate_and_delete(store: Store) -> None:
    row = await store.update_endpoint(
        "ep_0", {"name": "renamed", "spec": EndpointSpec(url="https://new/"), "is_paused": True},
        NOW)
    assert (row.name, row.spec, row.is_paused) == ("renamed", EndpointSpec(url="https://new/"),
                                                   True)
    with pytest.raises(NotFound):
        await store.update_endpoint("nope", {"name": "x"}, NOW)
    rotated = await store.rotate_secret("ep_0", "whsec_new", NOW + 60, NOW)
    assert (rotated.secret, rotated.prev_secret, rotated.prev_secret_until) == (
        "whsec_new", "whsec_ep_0", NOW + 60)
    again = await store.rotate_secret("ep_0", "whsec_newer", None, NOW)
    assert (again.secret, again.prev_secret, again.prev_secret_until) == (
        "whsec_newer", None, None)
    # Delete: pending, held and in-flight deliveries are cancelled; finished ones stay.
    await store.ingest([event(i, ("ep_0",)) for i in range(3)])
    await store.ingest([event(9, ("ep_0",), state="held")])
    claimed, _ = await store.claim({"ep_0": 2}, NOW, NOW + 30)
    await store.record([result(claimed[0].id, "ep_0", 1, "succeeded", ok=True, status=200)],
                       NOW, 3600)
    assert await store.delete_endpoint("ep_0", NOW) == 3
    assert await store.get_endpoint("ep_0") is None
    with pytest.raises(NotFound):
        await store.delete_endpoint("ep_0", NOW)
    with pytest.raises(NotFound):
        await store.rotate_secret("ep_0", "whsec_x", None, NOW)
    assert await store.counts() == {"succeeded": 1, "cancelled": 3}
    # The in-flight attempt's outcome is recorded; the delivery stays cancelled.
    await store.record([result(claimed[1].id, "ep_0", 1, "pending", next_at=NOW)], NOW, 3600)
    assert await store.counts() == {"succeeded": 1, "cancelled": 3}
    assert len(await store.attempts_of(claimed[1].id)) == 1


async def test_pending_counts(store: Store) -> None:
    await store.ingest([event(i, ("ep_0", "ep_1")) for i in range(3)])
    await store.ingest([event(5, ("ep_1",), state="held")])
    await store.claim({"ep_0": 1}, NOW, NOW + 30)
    claimed, _ = await store.claim({"ep_1": 1}, NOW, NOW + 30)
    await store.record([result(claimed[0].id, "ep_1", 1, "failed")], NOW, 3600)
    assert await store.pending_counts(["ep_0", "ep_1", "ep_2"]) == {
        "ep_0": 3, "ep_1": 3, "ep_2": 0}
    assert await store.pending_counts([]) == {}


async def test_list_get_retry_and_recover_deliveries(store: Store) -> None:
    await store.ingest([tenant_event(i, "default", ("ep_0",)) for i in range(4)])
    await store.ingest([tenant_event(9, "acme", ("ep_2",))])
    rows = await store.list_deliveries("ep_0")
    assert [r.event_id for r in rows] == [f"evt_{i:04d}" for i in (3, 2, 1, 0)]
    assert [r.id for r in await store.list_deliveries("ep_0", before=rows[1].id, limit=1)] == [
        rows[2].id]
    claimed, _ = await store.claim({"ep_0": 3}, NOW + 4, NOW + 30)
    await store.record([result(c.id, "ep_0", 1, "failed") for c in claimed[:2]], NOW + 5, 3600)
    await store.record([result(claimed[2].id, "ep_0", 1, "failed")], NOW + 50, 3600)
    failed = await store.list_deliveries("ep_0", state="failed")
    assert [r.id for r in failed] == [c.id for c in claimed][::-1]
    # Tenant-scoped read.
    first = claimed[0].id
    got = await store.get_delivery(first, "default")
    assert got is not None and got.state == "failed" and got.updated_at == NOW + 5
    assert await store.get_delivery(first, "acme") is None
    # Retry: finished ones only; due now.
    retried = await store.retry_delivery(first, "pending", NOW + 100)
    assert (retried.state, retried.next_at) == ("pending", NOW + 100)
    with pytest.raises(Conflict, match="pending"):
        await store.retry_delivery(first, "pending", NOW + 100)
    with pytest.raises(NotFound):
        await store.retry_delivery(12345, "pending", NOW)
    # Recover: failed ones last updated at or after `since`, due now, in order.
    assert await store.recover_failed("ep_0", NOW + 10, "held", NOW + 100) == 1
    assert await store.recover_failed("ep_0", NOW, "pending", NOW + 100) == 1
    assert await store.recover_failed("ep_0", NOW, "pending", NOW + 100) == 0
    assert await store.set_accepting("ep_0", True, NOW + 100) == 1
    again, _ = await store.claim({"ep_0": 10}, NOW + 100, NOW + 130)
    assert [c.id for c in again] == [c.id for c in claimed] + [rows[0].id]


async def test_events_lists_and_replay(store: Store) -> None:
    await store.ingest([tenant_event(i, "default", ("ep_0",), "a.b" if i % 2 else "c.d")
                        for i in range(5)])
    await store.ingest([tenant_event(9, "acme", ("ep_2",))])
    listed = await store.list_events("default")
    assert [e.id for e in listed] == [f"evt_{i:04d}" for i in (4, 3, 2, 1, 0)]
    assert [e.id for e in await store.list_events("default", type="a.b")] == [
        "evt_0003", "evt_0001"]
    assert [e.id for e in await store.list_events("default", before="evt_0003", limit=2)] == [
        "evt_0002", "evt_0001"]
    assert [e.id for e in await store.list_events("acme")] == ["evt_0009"]
    ev = await store.get_event("evt_0001", "default")
    assert ev is not None and (ev.type, ev.deliveries, ev.payload) == ("a.b", 1, b'{"n":1}')
    assert await store.get_event("evt_0001", "acme") is None
    added = await store.add_deliveries("evt_0001", [("ep_0", "pending"), ("ep_1", "held")],
                                       NOW + 10)
    assert [(d.endpoint_id, d.state, d.next_at) for d in added] == [
        ("ep_0", "pending", NOW + 10), ("ep_1", "held", NOW + 10)]
    ev = await store.get_event("evt_0001", "default")
    assert ev is not None and ev.deliveries == 3


async def test_events_by_accepted_time(store: SQLiteStore) -> None:
    """since/until bound the accepted time, [since, until); the order is then accepted
    time (not insertion order: evt_0007 arrived last but was accepted first) and the
    cursor pages through it; other tenants and types stay out."""
    await store.ingest([tenant_event(i, "default", ("ep_0",), "a.b" if i % 2 else "c.d")
                        for i in range(1, 6)])
    await store.ingest([dataclasses.replace(tenant_event(3, "acme", ("ep_2",)), id="evt_acme")])
    await store.ingest([dataclasses.replace(tenant_event(0, "default", ("ep_0",)),
                                            id="evt_0007")])

    async def ids(since: float | None = None, until: float | None = None,
                  type_: str | None = None, before: str | None = None,
                  limit: int = 50) -> list[str]:
        rows = await store.list_events("default", type=type_, before=before, since=since,
                                       until=until, limit=limit)
        return [e.id for e in rows]

    assert await ids(since=NOW + 2) == ["evt_0005", "evt_0004", "evt_0003", "evt_0002"]
    assert await ids(until=NOW + 2) == ["evt_0001", "evt_0007"]
    assert await ids(since=NOW + 2, until=NOW + 4) == ["evt_0003", "evt_0002"]
    assert await ids(since=NOW + 1, type_="a.b") == ["evt_0005", "evt_0003", "evt_0001"]
    assert await ids(since=NOW, limit=2, before="evt_0004") == ["evt_0003", "evt_0002"]
    assert await ids(until=NOW + 9, before="evt_0001") == ["evt_0007"]
    assert await ids(since=NOW + 6) == []
