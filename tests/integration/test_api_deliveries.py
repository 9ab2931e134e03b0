"""Management API over HTTP, history: deliveries with their attempts, retry, recover,
events, replay and event types, each within the caller's tenant."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from relay import config as cfgmod
from relay.delivery import operational
from relay.runtime import timestamp
from tests.helpers import (
    ACME,
    ADMIN,
    SAMPLE,
    admin_api,
    api_config,
    as_admin,
    assert_error,
    auth,
    create,
    send,
)
from tests.receiver import Receiver
from tests.serving import Running, eventually, running


async def deliveries(r: Running, hook_id: str, key: str = ADMIN,
                     **params: Any) -> list[dict[str, Any]]:
    response = await r.client.get(f"/v1/webhooks/{hook_id}/deliveries", params=params,
                                  headers=auth(key))
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def settled(r: Running, hook_id: str, n: int, status: str) -> bool:
    page = await deliveries(r, hook_id)
    return len(page) == n and all(d["status"] == status for d in page)


async def test_deliveries_list_and_detail(make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with admin_api(make_config) as (r, rx):
        rx.respond("/flaky", (500, {}, b"busy"))
        hook = await create(r, f"{rx.url}/flaky")
        ids = [await send(r, n=i) for i in range(3)]
        await eventually(lambda: settled(r, hook["id"], 3, "succeeded"), message="succeeded")
        page = await deliveries(r, hook["id"])
        assert [d["event_id"] for d in page] == ids[::-1]  # newest first
        first = page[-1]
        assert first["webhook_id"] == hook["id"] and first["id"].startswith("dlv_")
        assert (first["attempts"], first["last_status"], first["next_attempt_at"]) == (2, 200, None)
        assert first["created_at"].endswith("Z") and first["updated_at"].endswith("Z")
        # Pagination by cursor, and the status filter.
        one = (await r.client.get(f"/v1/webhooks/{hook['id']}/deliveries",
                                  params={"limit": 2})).json()
        assert [d["id"] for d in one["data"]] == [d["id"] for d in page[:2]]
        two = (await r.client.get(f"/v1/webhooks/{hook['id']}/deliveries",
                                  params={"limit": 2, "after": one["next"]})).json()
        assert [d["id"] for d in two["data"]] == [page[2]["id"]] and two["next"] is None
        assert await deliveries(r, hook["id"], status="failed") == []
        # One delivery with every attempt.
        detail = (await r.client.get(f"/v1/deliveries/{first['id']}")).json()
        assert {k: v for k, v in detail.items() if k != "attempts"} == {
            k: v for k, v in first.items() if k != "attempts"}
        failed, ok = detail["attempts"]
        assert (failed["n"], failed["status"], failed["response_body"]) == (1, 500, "busy")
        assert failed["error"] is None  # the status says it all
        assert (ok["n"], ok["status"], ok["response_body"]) == (2, 200, '{"ok":true}')
        assert ok["request_headers"]["webhook-id"] == ids[0]
        assert ok["response_headers"]["content-type"] == "application/json"
        assert ok["at"].endswith("Z") and ok["duration_ms"] > 0
        # Bad input.
        for params in ({"status": "lost"}, {"limit": 0}, {"limit": 501}, {"limit": "x"}):
            error = assert_error(
                await r.client.get(f"/v1/webhooks/{hook['id']}/deliveries", params=params),
                422, "validation_failed")
            assert error["details"][0]["path"] == next(iter(params))
        for after in ("nope", page[0]["id"]):  # not a cursor: tests/integration/test_cursors.py
            error = assert_error(await r.client.get(
                f"/v1/webhooks/{hook['id']}/deliveries", params={"after": after}),
                400, "invalid_cursor")
            assert error["details"][0]["path"] == "after"
        for ref in ("dlv_999", "xyz", "dlv_", "dlv_1x"):
            assert_error(await r.client.get(f"/v1/deliveries/{ref}"), 404, "not_found")
        assert_error(await r.client.get("/v1/webhooks/ep_nope/deliveries"), 404, "not_found")


async def test_retry_sends_again_with_the_same_webhook_id(
    make_config: Callable[..., cfgmod.Loaded],
) -> None:
    async with admin_api(make_config) as (r, rx):
        hook = await create(r, f"{rx.url}/r")
        event_id = await send(r)
        await eventually(lambda: settled(r, hook["id"], 1, "succeeded"), message="succeeded")
        [delivery] = await deliveries(r, hook["id"])
        retried = await r.client.post(f"/v1/deliveries/{delivery['id']}/retry")
        assert retried.status_code == 202, retried.text
        assert retried.json()["status"] == "pending" and retried.json()["next_attempt_at"]
        got = await rx.wait_for(2, "/r")
        assert [g.headers["webhook-id"] for g in got] == [event_id, event_id]
        await eventually(lambda: settled(r, hook["id"], 1, "succeeded"), message="again")
        detail = (await r.client.get(f"/v1/deliveries/{delivery['id']}")).json()
        assert [a["n"] for a in detail["attempts"]] == [1, 2]
        # Unfinished deliveries are refused; paused webhooks hold the retry.
        await r.client.patch(f"/v1/webhooks/{hook['id']}", json={"is_paused": True})
        held = (await r.client.post(f"/v1/deliveries/{delivery['id']}/retry")).json()
        assert held["status"] == "held"
        error = assert_error(await r.client.post(f"/v1/deliveries/{delivery['id']}/retry"),
                             409, "conflict")
        assert "held" in error["message"]
        assert_error(await r.client.post("/v1/deliveries/dlv_999/retry"), 404, "not_found")
        # A deleted webhook's deliveries cannot be sent again.
        await r.client.delete(f"/v1/webhooks/{hook['id']}")
        gone = assert_error(await r.client.post(f"/v1/deliveries/{delivery['id']}/retry"),
                            409, "conflict")
        assert "deleted" in gone["message"]


async def test_recover_resends_failed_deliveries_in_order(
    make_config: Callable[..., cfgmod.Loaded],
) -> None:
    async with admin_api(make_config) as (r, rx):
        rx.respond("/rec", 500, 500, 500)
        hook = await create(r, f"{rx.url}/rec", retry_schedule=[])
        before = timestamp(time.time() - 1)
        ids = [await send(r, n=i) for i in range(3)]
        await eventually(lambda: settled(r, hook["id"], 3, "failed"), message="failed")
        later = await r.client.post(f"/v1/webhooks/{hook['id']}/recover",
                                    json={"since": timestamp(time.time() + 60)})
        assert later.status_code == 202 and later.json() == {"requeued": 0}
        response = await r.client.post(f"/v1/webhooks/{hook['id']}/recover",
                                       json={"since": before})
        assert response.status_code == 202 and response.json() == {"requeued": 3}
        got = await rx.wait_for(6, "/rec")
        assert [g.headers["webhook-id"] for g in got[3:]] == ids
        await eventually(lambda: settled(r, hook["id"], 3, "succeeded"), message="recovered")
        for body in ({}, {"since": "yesterday"}, {"since": "2026-01-01T00:00:00"}):
            assert_error(await r.client.post(f"/v1/webhooks/{hook['id']}/recover", json=body),
                         422, "validation_failed")


async def test_events_list_get_and_replay(make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with admin_api(make_config) as (r, rx):
        other = await create(r, f"{rx.url}/other", events=["billing.*"])
        ids = [await send(r, n=i) for i in range(3)]
        paid = await send(r, "billing.paid", amount=5)
        await rx.wait_for(3, "/crm")
        listed = (await r.client.get("/v1/events")).json()
        assert [e["id"] for e in listed["data"]] == [paid, *ids[::-1]]
        typed = (await r.client.get("/v1/events", params={"type": "lead.qualified",
                                                          "limit": 2})).json()
        assert [e["id"] for e in typed["data"]] == ids[:0:-1]
        rest = (await r.client.get("/v1/events", params={"type": "lead.qualified",
                                                         "after": typed["next"]})).json()
        assert [e["id"] for e in rest["data"]] == ids[:1] and rest["next"] is None
        event = (await r.client.get(f"/v1/events/{paid}")).json()
        assert event == {"id": paid, "type": "billing.paid", "timestamp": event["timestamp"],
                         "tenant_id": "default", "data": {"amount": 5}, "deliveries": 2}
        # Replay to every matching webhook (config and API ones), then to one.
        replayed = await r.client.post(f"/v1/events/{paid}/replay")
        assert replayed.status_code == 202, replayed.text
        assert sorted(d["webhook_id"] for d in replayed.json()["deliveries"]) == sorted(
            ["fixed", other["id"]])
        assert all(d["event_id"] == paid and d["status"] == "pending"
                   for d in replayed.json()["deliveries"])
        one = (await r.client.post(f"/v1/events/{ids[0]}/replay",
                                   json={"endpoints": [other["id"], other["id"]]})).json()
        assert [d["webhook_id"] for d in one["deliveries"]] == [other["id"]]
        got = await rx.wait_for(3, "/other")
        assert sorted(g.headers["webhook-id"] for g in got) == sorted([paid, paid, ids[0]])
        assert (await r.client.get(f"/v1/events/{paid}")).json()["deliveries"] == 4
        # Bad input.
        bad = await r.client.post(f"/v1/events/{paid}/replay",
                                  json={"endpoints": ["crm", "ep_nope"]})
        assert [d["path"] for d in assert_error(bad, 422, "validation_failed")["details"]] == [
            "endpoints[1]"]
        assert_error(await r.client.post(f"/v1/events/{paid}/replay", json={"endpoints": []}),
                     422, "validation_failed")
        assert_error(await r.client.get("/v1/events/evt_0000000000"), 404, "not_found")
        assert_error(await r.client.post("/v1/events/evt_0000000000/replay"), 404, "not_found")
        assert_error(await r.client.get("/v1/events", params={"type": "not a type"}), 422,
                     "validation_failed")


async def test_event_types_and_samples(make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with running(api_config(make_config, "https://x.example")) as r:
        as_admin(r)
        listed = (await r.client.get("/v1/event-types")).json()
        assert listed["next"] is None
        assert listed["data"][0] == {"name": "lead.qualified", "description": "A lead qualified.",
                                     "sample": SAMPLE, "schema": None,
                                     "deprecated": False, "source": "config"}
        assert [t["name"] for t in listed["data"]] == ["lead.qualified", "lead.lost",
                                                       "billing.paid", *operational.TYPES]
        sample = (await r.client.get("/v1/event-types/lead.qualified/sample")).json()
        assert sample == {"type": "lead.qualified", "data": SAMPLE}
        assert_error(await r.client.get("/v1/event-types/nope/sample"), 404, "not_found")


async def test_tenants_see_only_their_own_history(
    make_config: Callable[..., cfgmod.Loaded],
) -> None:
    async with Receiver() as rx, running(api_config(make_config, rx.url)) as r:
        acme_hook = await create(r, f"{rx.url}/acme", key=ACME)
        acme_event = await send(r, key=ACME)
        default_event = await send(r)
        await rx.wait_for(1, "/acme")
        await rx.wait_for(1, "/crm")
        [acme_delivery] = await deliveries(r, acme_hook["id"], key=ACME)
        [default_delivery] = await deliveries(r, "crm")
        for key, own, other in ((ACME, (acme_event, acme_delivery),
                                 (default_event, default_delivery)),
                                (ADMIN, (default_event, default_delivery),
                                 (acme_event, acme_delivery))):
            events = (await r.client.get("/v1/events", headers=auth(key))).json()["data"]
            assert [e["id"] for e in events] == [own[0]]
            other_event, other_delivery = other
            for method, path, body in [
                ("GET", f"/v1/events/{other_event}", None),
                ("POST", f"/v1/events/{other_event}/replay", {}),
                ("GET", f"/v1/deliveries/{other_delivery['id']}", None),
                ("POST", f"/v1/deliveries/{other_delivery['id']}/retry", None),
            ]:
                response = await r.client.request(method, path, json=body, headers=auth(key))
                assert_error(response, 404, "not_found")
            mine = await r.client.get(f"/v1/deliveries/{own[1]['id']}", headers=auth(key))
            assert mine.status_code == 200
        # Replaying to another tenant's webhook is refused.
        cross = await r.client.post(f"/v1/events/{acme_event}/replay",
                                    json={"endpoints": ["crm"]}, headers=auth(ACME))
        assert_error(cross, 422, "validation_failed")
