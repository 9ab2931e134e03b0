"""Operational events (relay.*) end to end: relay in-process, real loopback receivers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from standardwebhooks.webhooks import Webhook

from relay import config as cfgmod
from relay.delivery import operational
from tests.receiver import Receiver
from tests.serving import Running, running

OPS_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def endpoint(id_: str, url: str, **extra: Any) -> dict[str, Any]:
    return {"id": id_, "url": url, **extra}


def ops_types(rx: Receiver, path: str = "/ops") -> list[str]:
    return [r.json()["type"] for r in rx.received(path)]


async def idle(r: Running) -> None:
    await r.relay.scheduler.wait_idle(10)


async def test_410_emits_disabled_signed_to_relay_subscribers_only(
    make_config: Callable[..., cfgmod.Loaded],
) -> None:
    async with Receiver() as rx:
        rx.respond("/gone", 410)
        cfg = make_config(endpoints=[
            endpoint("crm", f"{rx.url}/gone", events=["lead.*"]),
            endpoint("ops", f"{rx.url}/ops", events=["relay.*"], secret=OPS_SECRET),
            endpoint("exact", f"{rx.url}/exact", events=["relay.endpoint.disabled"]),
            endpoint("all", f"{rx.url}/all"),
            endpoint("acme-ops", f"{rx.url}/acme", events=["relay.*"], tenant="acme"),
        ], tenants=[{"id": "acme"}])
        async with running(cfg) as r:
            sent = (await r.send("lead.qualified", {"n": 1})).json()
            [got] = await rx.wait_for(1, "/ops")
            await rx.wait_for(1, "/exact")
            Webhook(OPS_SECRET).verify(got.body, got.headers)  # signed, verifiable
            body = got.json()
            assert body["type"] == "relay.endpoint.disabled"
            assert body["tenant_id"] == "default"
            assert body["data"] == {
                "endpoint": {"id": "crm", "name": "crm", "url": f"{rx.url}/gone",
                             "events": ["lead.*"]},
                "reason": "gone", "detail": "the endpoint answered 410 Gone",
            }
            await idle(r)
            # `*` and other tenants get none; only the ingested event reached `all`.
            assert [x.json()["id"] for x in rx.received("/all")] == [sent["id"]]
            assert rx.received("/acme") == []
            # A real stored event: in the event log, its deliveries succeeded, replayable.
            stored = await r.client.get(f"/v1/events/{body['id']}")
            assert stored.status_code == 200 and stored.json()["type"] == body["type"]
            states = {d.endpoint_id: d.state
                      for d in await r.relay.store.deliveries_of(body["id"])}
            assert states == {"ops": "succeeded", "exact": "succeeded"}
            replay = await r.client.post(f"/v1/events/{body['id']}/replay",
                                         json={"endpoints": ["ops"]})
            assert replay.status_code == 202
            again = await rx.wait_for(2, "/ops")
            assert again[1].headers["webhook-id"] == body["id"]


async def test_exhausted_retries_emit_delivery_exhausted(
    make_config: Callable[..., cfgmod.Loaded],
) -> None:
    async with Receiver() as rx:
        cfg = make_config(endpoints=[
            endpoint("crm", f"{rx.url}/status/500", events=["lead.*"]),
            endpoint("ops", f"{rx.url}/ops", events=["relay.delivery.exhausted"]),
        ])
        async with running(cfg) as r:
            sent = (await r.send()).json()
            [got] = await rx.wait_for(1, "/ops")
            [delivery] = await r.relay.store.deliveries_of(sent["id"])
            assert delivery.state == "failed"
            data = got.json()["data"]
            assert data == {
                "endpoint": {"id": "crm", "name": "crm", "url": f"{rx.url}/status/500",
                             "events": ["lead.*"]},
                "delivery_id": f"dlv_{delivery.id}", "event_id": sent["id"],
                "event_type": "lead.qualified", "attempts": 3, "last_status": 500,
                "last_error": delivery.last_error,
            }
            assert len(rx.received("/status/500")) == 3


async def test_failing_once_per_streak_then_recovered(
    make_config: Callable[..., cfgmod.Loaded],
) -> None:
    async with Receiver() as rx:
        # 3 attempts per delivery (50ms, 100ms retries); failing_after = 4: the 4th
        # consecutive failure (2nd delivery's 1st attempt) reports, the 5th and 6th not.
        rx.respond("/crm", 500, 500, 500, 500, 500, 500)
        cfg = make_config(operator={"failing_after": 4}, endpoints=[
            endpoint("crm", f"{rx.url}/crm", events=["lead.*"]),
            endpoint("ops", f"{rx.url}/ops", events=["relay.endpoint.*"]),
        ])
        async with running(cfg) as r:
            await r.send(data={"n": 1})
            await rx.wait_for(3, "/crm")
            await idle(r)
            await r.send(data={"n": 2})
            await rx.wait_for(6, "/crm")
            await idle(r)
            assert ops_types(rx) == ["relay.endpoint.failing"]
            failing = rx.received("/ops")[0].json()["data"]
            assert failing["consecutive_failures"] == 4
            assert failing["last_status"] == 500
            await r.send(data={"n": 3})  # succeeds: the streak ends
            await rx.wait_for(7, "/crm")
            await rx.wait_for(2, "/ops")
            await idle(r)
            assert ops_types(rx) == ["relay.endpoint.failing", "relay.endpoint.recovered"]
            assert rx.received("/ops")[1].json()["data"]["failed_attempts"] == 6
            await r.send(data={"n": 4})  # a success after a success reports nothing
            await rx.wait_for(8, "/crm")
            await idle(r)
            assert len(rx.received("/ops")) == 2


async def test_a_failing_ops_endpoint_reports_nothing_about_itself(
    make_config: Callable[..., cfgmod.Loaded],
) -> None:
    async with Receiver() as rx:
        rx.respond("/gone", 410)
        # crm fails once (410), ops three times, failing_after = 2.
        cfg = make_config(operator={"failing_after": 2}, endpoints=[
            endpoint("crm", f"{rx.url}/gone", events=["lead.*"]),
            endpoint("ops", f"{rx.url}/status/500", events=["relay.*"]),
            endpoint("watch", f"{rx.url}/watch", events=["relay.*"]),
        ])
        async with running(cfg) as r:
            await r.send()
            await rx.wait_for(1, "/watch")
            await rx.wait_for(3, "/status/500")  # ops fails its one delivery, exhausted
            await idle(r)
            # About crm only: ops's three failures, its streak and its exhausted delivery
            # concern an operational event, so they report nothing.
            assert ops_types(rx, "/watch") == ["relay.endpoint.disabled"]
            events = (await r.client.get("/v1/events?limit=50")).json()["data"]
            assert sorted(e["type"] for e in events) == ["lead.qualified",
                                                         "relay.endpoint.disabled"]
            ops = (await r.client.get("/v1/webhooks/ops")).json()
            assert ops["consecutive_failures"] == 3  # still counted in its health


async def test_api_changes_emit_created_updated_disabled_deleted(
    make_config: Callable[..., cfgmod.Loaded],
) -> None:
    async with Receiver() as rx:
        cfg = make_config(endpoints=[endpoint("ops", f"{rx.url}/ops", events=["relay.*"])])
        async with running(cfg) as r:
            created = await r.client.post("/v1/webhooks", json={
                "name": "crm", "url": f"{rx.url}/crm", "events": ["lead.*"]})
            assert created.status_code == 201
            hook = created.json()["id"]
            changed = await r.client.patch(f"/v1/webhooks/{hook}",
                                           json={"url": f"{rx.url}/crm2"})
            assert changed.status_code == 200
            off = await r.client.patch(f"/v1/webhooks/{hook}", json={"is_active": False})
            assert off.status_code == 200
            assert (await r.client.delete(f"/v1/webhooks/{hook}")).status_code in (200, 204)
            got = await rx.wait_for(5, "/ops")
            assert [g.json()["type"] for g in got] == [
                "relay.endpoint.created", "relay.endpoint.updated", "relay.endpoint.updated",
                "relay.endpoint.disabled", "relay.endpoint.deleted",
            ]
            data = [g.json()["data"] for g in got]
            assert data[0]["endpoint"] == {"id": hook, "name": "crm", "url": f"{rx.url}/crm",
                                           "events": ["lead.*"]}
            assert data[1]["changed"] == ["url"]
            assert data[1]["endpoint"]["url"] == f"{rx.url}/crm2"
            assert data[2]["changed"] == ["is_active"]
            assert data[3]["reason"] == "api" and data[3]["detail"]
            assert data[4] == {"endpoint": {"id": hook, "name": "crm",
                                            "url": f"{rx.url}/crm2", "events": ["lead.*"]},
                               "cancelled": 0}


async def test_event_types_list_the_operational_events(
    make_config: Callable[..., cfgmod.Loaded],
) -> None:
    cfg = make_config(event_types=[{"name": "lead.qualified", "sample": {"a": 1}}])
    async with running(cfg) as r:
        listed = (await r.client.get("/v1/event-types")).json()["data"]
        names = [t["name"] for t in listed]
        assert names == ["lead.qualified", "relay.endpoint.disabled", "relay.endpoint.failing",
                         "relay.endpoint.recovered", "relay.delivery.exhausted",
                         "relay.endpoint.created", "relay.endpoint.updated",
                         "relay.endpoint.deleted"]
        assert all(t["description"] and t["sample"] for t in listed[1:])
        sample = await r.client.get("/v1/event-types/relay.endpoint.failing/sample")
        assert sample.status_code == 200
        assert sample.json()["data"]["consecutive_failures"] == 5


async def test_ingest_refuses_relay_types(make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with running(make_config()) as r:
        refused = await r.send("relay.endpoint.disabled", {"endpoint": {"id": "x"}})
        assert refused.status_code == 422
        [detail] = refused.json()["error"]["details"]
        assert detail["path"] == "type" and "relay's own" in detail["message"]
        assert (await r.client.get("/v1/events")).json()["data"] == []


async def test_test_send_of_an_operational_type_sends_its_sample(
    make_config: Callable[..., cfgmod.Loaded],
) -> None:
    async with Receiver() as rx:
        cfg = make_config(endpoints=[endpoint("ops", f"{rx.url}/ops", events=["relay.*"])])
        async with running(cfg) as r:
            sent = await r.client.post("/v1/webhooks/ops/test",
                                       json={"type": "relay.delivery.exhausted"})
            assert sent.status_code == 200 and sent.json()["success"] is True
            [got] = rx.received("/ops")
            assert got.json()["data"] == operational.TYPES["relay.delivery.exhausted"][1]
