"""Filters with operators end to end: config and API endpoints get exactly the events their
filters match, at real receivers; bad filters are refused with their key path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from relay import config as cfgmod
from tests.helpers import admin_api, api_config, as_admin, assert_error, create
from tests.receiver import Receiver
from tests.serving import running

HOT = {"data.qualification.score": {"$gte": 0.8}, "data.campaign_id": {"$in": ["a", "b"]},
       "data.phone": {"$exists": True}}
EITHER = {"$or": [{"data.vip": True}, {"data.qualification.score": {"$gt": 0.95}}],
          "$not": [{"data.phone": {"$prefix": "+1"}}]}

EVENTS = [  # (data, endpoints whose filters match it)
    ({"qualification": {"score": 0.9}, "campaign_id": "a", "phone": "+49 1"}, {"hot"}),
    ({"qualification": {"score": 0.97}, "campaign_id": "c"}, {"either"}),
    ({"qualification": {"score": 0.99}, "campaign_id": "b", "phone": "+1 5"}, {"hot"}),
    ({"qualification": {"score": "0.99"}, "campaign_id": "a", "phone": "+49"}, set()),
    ({"vip": True, "qualification": {"score": 0.85}, "campaign_id": "b", "phone": "+44"},
     {"hot", "either"}),
    ({"vip": 1, "campaign_id": "a", "phone": "+44"}, set()),
    ({}, set()),
]


async def test_config_filters_choose_the_receivers(
    make_config: Callable[..., cfgmod.Loaded],
) -> None:
    async with Receiver() as rx:
        loaded = make_config(endpoints=[
            {"id": "hot", "url": f"{rx.url}/hot", "filter": HOT},
            {"id": "either", "url": f"{rx.url}/either", "filter": EITHER},
            {"id": "all", "url": f"{rx.url}/all"},
        ])
        async with running(loaded) as r:
            ids = {}
            for i, (data, expected) in enumerate(EVENTS):
                response = await r.send("lead.qualified", {"n": i, **data})
                assert response.json()["deliveries"] == len(expected) + 1, (i, data)
                ids[response.json()["id"]] = expected
            await rx.wait_for(len(EVENTS), "/all")
            await r.relay.scheduler.wait_idle(5)
            for name in ("hot", "either"):
                got = {d.headers["webhook-id"] for d in rx.received(f"/{name}")}
                assert got == {eid for eid, expected in ids.items() if name in expected}


async def test_api_webhook_filters(make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with admin_api(make_config) as (r, rx):
        hook = await create(r, f"{rx.url}/hot", filter=HOT)
        assert hook["filter"] == HOT
        assert (await r.client.get(f"/v1/webhooks/{hook['id']}")).json()["filter"] == HOT
        for data, _ in EVENTS:
            await r.client.post("/v1/events", json={"type": "lead.qualified", "data": data})
        await r.relay.scheduler.wait_idle(5)
        assert len(rx.received("/hot")) == sum("hot" in expected for _, expected in EVENTS)

        changed = await r.client.patch(f"/v1/webhooks/{hook['id']}", json={"filter": EITHER})
        assert changed.status_code == 200 and changed.json()["filter"] == EITHER
        sent = await r.client.post("/v1/events", json={"type": "lead.qualified",
                                                        "data": {"vip": True}})
        assert sent.json()["deliveries"] == 2  # the config endpoint `crm` and this one


BAD_FILTERS = [
    ({"data.score": {"$gtee": 0.8}}, "filter.data.score.$gtee", "unknown operator"),
    ({"data.score": {"$gte": "0.8", "$lt": True}}, "filter.data.score.$lt",
     "not a boolean"),
    ({"$or": [{"data.a": 1}, {"data.b": {"$in": []}}]}, "filter.$or[1].data.b.$in",
     "non-empty list"),
    ({"$not": {"data.a": 1}}, "filter.$not", "non-empty list of filter tables"),
    ({"data.a": None}, "filter.data.a", "not null"),
    ({"data": {"a": 1}}, "filter.data.a", "not an operator"),
]


@pytest.mark.parametrize(("filter_", "path", "words"), BAD_FILTERS)
async def test_api_refuses_bad_filters_with_their_path(
    make_config: Callable[..., cfgmod.Loaded], filter_: dict[str, Any], path: str, words: str,
) -> None:
    async with running(api_config(make_config, "https://x.example")) as r:
        as_admin(r)
        created = await r.client.post("/v1/webhooks", json={
            "name": "n", "url": "https://x.example/", "events": ["*"], "filter": filter_})
        [detail] = assert_error(created, 422, "validation_failed")["details"]
        assert detail["path"] == path and words in detail["message"], detail
        assert len(await r.relay.store.list_endpoints()) == 2

        hook = await create(r, "https://x.example/ok", filter={"data.a": 1})
        patched = await r.client.patch(f"/v1/webhooks/{hook['id']}", json={"filter": filter_})
        [detail] = assert_error(patched, 422, "validation_failed")["details"]
        assert detail["path"] == path, detail
        assert (await r.client.get(f"/v1/webhooks/{hook['id']}")).json()["filter"] == {
            "data.a": 1}
