"""The Store contract's parts that Svix's API (/api/v1) needs, on every backend: endpoint
uids and metadata, events' channels and keys read back, attempts listed with where their
delivery came from, recover with an end, and answers kept by idempotency key."""

from __future__ import annotations

import dataclasses

import pytest

from relay.errors import Conflict
from relay.storage import rules
from relay.storage.base import Store
from relay.types import EndpointSpec, NewEndpoint, StoredAnswer
from tests.helpers import NOW, event, result


def _new(id_: str, uid: str | None, tenant: str = "default") -> NewEndpoint:
    return NewEndpoint(id_, tenant, "", EndpointSpec(url="https://x.example/",
                                                     channels=("c1",)),
                       "whsec_x", NOW, uid, {"k": "v"})


async def test_uids_name_one_live_endpoint_per_tenant(store: Store) -> None:
    row = await store.create_endpoint(_new("ep_1", "crm"), None)
    assert (row.uid, row.metadata, row.spec.channels) == ("crm", {"k": "v"}, ("c1",))
    assert row.updated_at == NOW
    assert await store.find_endpoint("default", "crm") == row
    assert await store.find_endpoint("acme", "crm") is None
    with pytest.raises(Conflict, match="uid 'crm' is already used by webhook 'ep_1'"):
        await store.create_endpoint(_new("ep_2", "crm"), None)
    other = await store.create_endpoint(_new("ep_3", "crm", tenant="acme"), None)
    assert other.uid == "crm"  # another tenant's uids are its own
    second = await store.create_endpoint(_new("ep_2", None), None)
    with pytest.raises(Conflict, match="already used"):
        await store.update_endpoint(second.id, {"uid": "crm"}, NOW + 1)
    changed = await store.update_endpoint(row.id, {"uid": "crm2", "metadata": {}}, NOW + 2)
    assert (changed.uid, changed.metadata, changed.updated_at) == ("crm2", {}, NOW + 2)
    assert await store.update_endpoint(row.id, {"uid": "crm2"}, NOW + 3)  # its own: fine
    await store.delete_endpoint(row.id, NOW + 4)
    assert await store.find_endpoint("default", "crm2") is None
    assert (await store.update_endpoint(second.id, {"uid": "crm2"}, NOW + 5)).uid == "crm2"


async def test_events_keep_their_key_and_channels(store: Store) -> None:
    keyed = dataclasses.replace(event(1, key="e1"), channels=("c1", "c2"))
    await store.ingest([keyed, event(2)])
    found = await store.event_by_key("default", "e1")
    assert found is not None and found.id == "evt_0001"
    assert (found.idem_key, found.channels) == ("e1", ("c1", "c2"))
    assert await store.event_by_key("acme", "e1") is None
    plain = await store.get_event("evt_0002", "default")
    assert plain is not None and (plain.idem_key, plain.channels) == (None, None)
    listed = await store.list_events("default")
    assert [(e.id, e.channels) for e in listed] == [("evt_0002", None),
                                                    ("evt_0001", ("c1", "c2"))]


async def test_attempts_listed_newest_delivery_first_with_their_origin(store: Store) -> None:
    await store.ingest([event(1, endpoints=("a",)), event(2, endpoints=("a", "b"))])
    claimed, _ = await store.claim({"a": 5, "b": 5}, NOW, NOW + 30)
    await store.record([result(c.id, c.endpoint_id, 1, "pending", next_at=NOW)
                        for c in claimed], NOW, 3600)
    claimed, _ = await store.claim({"a": 5}, NOW, NOW + 30)
    await store.record([result(c.id, "a", 2, "succeeded", ok=True, status=200)
                        for c in claimed], NOW, 3600)
    [replayed] = await store.add_deliveries("evt_0001", [("a", "pending")], NOW)
    [c], _ = await store.claim({"a": 5}, NOW, NOW + 30)
    await store.record([result(c.id, "a", 1, "succeeded", ok=True, status=204)], NOW, 3600)
    by_a = await store.list_attempts(endpoint_id="a")
    assert [(x.event_id, x.n, x.manual) for x in by_a] == [
        ("evt_0001", 1, True), ("evt_0002", 2, False), ("evt_0002", 1, False),
        ("evt_0001", 2, False), ("evt_0001", 1, False)]
    assert by_a[0].delivery_id == replayed.id and by_a[0].status == 204
    assert by_a[1].response_body == b"body" and by_a[-1].error == "boom"
    # Pages resume after an attempt, in the same order.
    first = await store.list_attempts(endpoint_id="a", limit=2)
    rest = await store.list_attempts(endpoint_id="a", before=first[-1].id)
    assert first + rest == by_a
    by_event = await store.list_attempts(event_id="evt_0002")
    assert {x.endpoint_id for x in by_event} == {"a", "b"} and len(by_event) == 3
    both = await store.list_attempts(endpoint_id="b", event_id="evt_0002")
    assert [(x.endpoint_id, x.n) for x in both] == [("b", 1)]
    assert await store.get_attempt(by_a[0].id) == by_a[0]
    assert await store.get_attempt(by_a[0].id + 1000) is None


async def test_recover_takes_failures_before_until_only(store: Store) -> None:
    await store.ingest([event(i, endpoints=("a",)) for i in range(2)])
    claimed, _ = await store.claim({"a": 5}, NOW, NOW + 30)
    for at, c in zip((NOW + 10, NOW + 20), claimed, strict=True):
        await store.record([result(c.id, "a", 1, "failed")], at, 3600)
    assert await store.recover_failed("a", NOW, "pending", NOW + 30, until=NOW + 15) == 1
    assert await store.recover_failed("a", NOW, "pending", NOW + 30) == 1


async def test_answers_kept_by_idempotency_key(store: Store) -> None:
    assert await store.begin_request("k1", "key", "d1", NOW) is None
    with pytest.raises(Conflict, match="still being answered"):
        await store.begin_request("k1", "key", "d1", NOW + 1)
    assert await store.begin_request("k2", "key", "d1", NOW) is None  # another owner's
    await store.end_request("k1", "key", 202, b'{"id":"x"}')
    assert await store.begin_request("k1", "key", "d1", NOW + 2) == StoredAnswer(
        "d1", 202, b'{"id":"x"}', NOW)
    with pytest.raises(Conflict, match="another request"):
        await store.begin_request("k1", "key", "d2", NOW + 2)
    await store.end_request("k2", "key", None, b"")  # an error: forgotten
    assert await store.begin_request("k2", "key", "d2", NOW + 3) is None
    # Past its time the key is free again, and purged.
    assert await store.begin_request("k1", "key", "d2", NOW + rules.REQUEST_KEPT) is None
    assert await store.purge_requests(NOW + 1) == 0
    assert await store.purge_requests(NOW + rules.REQUEST_KEPT + 1) == 2
