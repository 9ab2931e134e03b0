"""Delivery end to end: relay in-process on a loopback port, real receivers."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from relay import config as cfgmod
from relay import logs
from tests.helpers import endpoint
from tests.receiver import Receiver
from tests.serving import eventually, running

HMAC_SECRET = "athena-secret-0123456789"
SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


async def delivery_states(r: Any, event_id: str) -> dict[str, str]:
    return {d.endpoint_id: d.state for d in await r.relay.store.deliveries_of(event_id)}


async def test_fan_out_patterns_and_filters(make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with Receiver() as rx:
        cfg = make_config(endpoints=[
            endpoint("all", f"{rx.url}/all"),
            endpoint("leads", f"{rx.url}/leads", events=["lead.*"]),
            endpoint("exact", f"{rx.url}/exact", events=["lead.qualified"]),
            endpoint("spring", f"{rx.url}/spring", events=["lead.*"],
                     filter={"data.campaign_id": ["spring", "summer"], "data.score": 1}),
            endpoint("other", f"{rx.url}/other", events=["billing.*"]),
            endpoint("acme", f"{rx.url}/acme", tenant="acme"),
        ], tenants=[{"id": "acme"}])
        async with running(cfg) as r:
            a = await r.send("lead.qualified", {"campaign_id": "spring", "score": 1})
            b = await r.send("lead.lost", {"campaign_id": "fall", "score": 1})
            c = await r.send("conversation.completed", {})
            assert [x.json()["deliveries"] for x in (a, b, c)] == [4, 2, 1]
            await rx.wait_for(3, "/all")
            await rx.wait_for(2, "/leads")
            await rx.wait_for(1, "/exact")
            await rx.wait_for(1, "/spring")
            await r.relay.scheduler.wait_idle(5)
            assert rx.received("/other") == [] and rx.received("/acme") == []
            [spring] = rx.received("/spring")
            envelope = spring.json()
            assert envelope == {
                "id": a.json()["id"], "type": "lead.qualified",
                "timestamp": a.json()["timestamp"], "tenant_id": "default",
                "data": {"campaign_id": "spring", "score": 1},
            }
            assert spring.headers["content-type"] == "application/json"
            assert spring.headers["user-agent"].startswith("relay/")
            assert await delivery_states(r, a.json()["id"]) == dict.fromkeys(
                ["all", "leads", "exact", "spring"], "succeeded")


async def test_data_arrives_exactly_as_sent(make_config: Callable[..., cfgmod.Loaded]) -> None:
    """Integers past 64 bits (which the fast encoder refuses), non-ASCII text and small
    floats reach the receiver with their values intact."""
    data = {"big": 123456789012345678901234567890, "text": "é€😀 \"q\"", "small": 1.5e-7,
            "nested": [{"n": -(2**63)}, None, True]}
    async with Receiver() as rx, running(
            make_config(endpoints=[endpoint("all", f"{rx.url}/all")])) as r:
        await r.send("lead.qualified", data)
        [got] = await rx.wait_for(1, "/all")
        assert json.loads(got.body)["data"] == data
        assert "é€😀".encode() in got.body  # UTF-8 as is, not \u escapes


async def test_signature_schemes_verify_independently(
    make_config: Callable[..., cfgmod.Loaded],
) -> None:
    async with Receiver() as rx:
        cfg = make_config(endpoints=[
            endpoint("sw", f"{rx.url}/sw", secret=SW_SECRET),
            endpoint("ts", f"{rx.url}/ts", signature="hmac-sha256-timestamped",
                     signature_header="Athena-Signature", secret=HMAC_SECRET),
            endpoint("body", f"{rx.url}/body", signature="hmac-sha256-body",
                     secret=HMAC_SECRET, headers={"X-Team": "sales"}),
            endpoint("none", f"{rx.url}/none", signature="none", payload="array"),
            endpoint("generated", f"{rx.url}/gen"),
        ])
        async with running(cfg) as r:
            sent = (await r.send("lead.qualified", {"name": "Zoë", "n": 1})).json()
            for path in ("/sw", "/ts", "/body", "/none", "/gen"):
                await rx.wait_for(1, path)

            # standard-webhooks: the official verifier accepts it.
            [sw] = rx.received("/sw")
            assert sw.headers["webhook-id"] == sent["id"]
            Webhook(SW_SECRET).verify(sw.body, sw.headers)
            generated = {e.id: e for e in r.relay.endpoints.values()}["generated"].secrets[0]
            [gen] = rx.received("/gen")
            Webhook(generated).verify(gen.body, gen.headers)

            # hmac-sha256-timestamped: the AthenaText verifier from its docs.
            [ts] = rx.received("/ts")
            ts_part, sig_part = ts.headers["athena-signature"].split(",")[:2]
            timestamp, signature = ts_part.split("=")[1], sig_part.split("=")[1]
            expected = hmac.new(HMAC_SECRET.encode(), f"{timestamp}.".encode() + ts.body,
                                hashlib.sha256).hexdigest()
            assert hmac.compare_digest(expected, signature)
            assert abs(time.time() - int(timestamp)) < 300

            # hmac-sha256-body: hex HMAC of the raw body.
            [body] = rx.received("/body")
            expected = hmac.new(HMAC_SECRET.encode(), body.body, hashlib.sha256).hexdigest()
            assert body.headers["x-relay-signature"] == expected
            assert body.headers["x-team"] == "sales"

            # none + array payload: unsigned, the envelope in a one-element array.
            [unsigned] = rx.received("/none")
            assert not any("signature" in h for h in unsigned.headers)
            payload = unsigned.json()
            assert isinstance(payload, list) and payload[0]["id"] == sent["id"]
            assert payload[0]["data"]["name"] == "Zoë"


async def test_retries_until_success_with_the_same_webhook_id(
    make_config: Callable[..., cfgmod.Loaded],
) -> None:
    async with Receiver() as rx:
        rx.respond("/flaky", 500, 503)
        cfg = make_config(endpoints=[endpoint("e", f"{rx.url}/flaky", secret=SW_SECRET)])
        async with running(cfg) as r:
            event_id = (await r.send()).json()["id"]
            got = await rx.wait_for(3, "/flaky")
            assert {g.headers["webhook-id"] for g in got} == {event_id}
            for g in got:
                Webhook(SW_SECRET).verify(g.body, g.headers)
            assert got[0].body == got[2].body
            # Backoff: the second attempt waited about the first delay (50ms +-10%).
            assert got[1].at - got[0].at >= 0.045
            await eventually(lambda: delivery_states(r, event_id), message="state")
            await eventually(lambda: _state_is(r, event_id, "succeeded"))
            [d] = await r.relay.store.deliveries_of(event_id)
            attempts = await r.relay.store.attempts_of(d.id)
            assert [a.status for a in attempts] == [500, 503, 200]
            assert attempts[0].request_headers["webhook-id"] == event_id
            assert all(a.duration_ms is not None and a.duration_ms > 0 for a in attempts)


async def _state_is(r: Any, event_id: str, state: str) -> bool:
    return set((await delivery_states(r, event_id)).values()) == {state}


async def test_exhausted_retries_fail(make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with Receiver() as rx:
        cfg = make_config(endpoints=[endpoint("e", f"{rx.url}/status/500")])
        async with running(cfg) as r:
            event_id = (await r.send()).json()["id"]
            await rx.wait_for(3, "/status/500")  # first try + two retries
            await eventually(lambda: _state_is(r, event_id, "failed"))
            [d] = await r.relay.store.deliveries_of(event_id)
            assert d.attempts == 3 and d.last_status == 500
            row = r.relay.endpoints["e"].row
            await r.relay.refresh_endpoints()
            row = r.relay.endpoints["e"].row
            assert row.consecutive_failures == 3 and row.is_active


@pytest.mark.slow
async def test_retry_after_delays_the_next_attempt(
    make_config: Callable[..., cfgmod.Loaded],
) -> None:
    async with Receiver() as rx:
        rx.respond("/busy", (429, {"Retry-After": "1"}))
        cfg = make_config(endpoints=[endpoint("e", f"{rx.url}/busy")])
        async with running(cfg) as r:
            await r.send()
            first, second = await rx.wait_for(2, "/busy")
            # The schedule says 50ms; the receiver asked for a second.
            assert second.at - first.at >= 0.95


async def test_410_disables_and_holds_until_enabled(
    make_config: Callable[..., cfgmod.Loaded],
) -> None:
    async with Receiver() as rx:
        rx.respond("/gone", 410)
        cfg = make_config(endpoints=[endpoint("e", f"{rx.url}/gone")])
        async with running(cfg) as r:
            first = (await r.send()).json()["id"]
            await rx.wait_for(1, "/gone")
            await eventually(lambda: not r.relay.endpoints["e"].accepting, message="disabled")
            assert "410" in (r.relay.endpoints["e"].row.disable_reason or "")
            later = [(await r.send(data={"n": i})).json()["id"] for i in range(3)]
            assert await delivery_states(r, later[0]) == {"e": "held"}
            assert await delivery_states(r, first) == {"e": "held"}
            assert len(rx.received("/gone")) == 1
            # Re-enabled: held deliveries go out, in order.
            await r.relay.store.update_endpoint(
                "e", {"is_active": True, "disable_reason": None}, time.time())
            await r.relay.refresh_endpoints()
            got = await rx.wait_for(5, "/gone")
            assert [g.json()["id"] for g in got[1:]] == [first, *later]


async def test_enabled_false_holds_and_release_is_in_order(
    make_config: Callable[..., cfgmod.Loaded], tmp_path: Any,
) -> None:
    async with Receiver() as rx:
        ep = endpoint("e", f"{rx.url}/e", enabled=False)
        async with running(make_config(endpoints=[ep])) as r:
            ids = [(await r.send(data={"n": i})).json()["id"] for i in range(5)]
            assert await delivery_states(r, ids[0]) == {"e": "held"}
            r.relay.loaded = make_config(endpoints=[{**ep, "enabled": True}])
            await r.relay._sync_config(r.relay.loaded)
            got = await rx.wait_for(5, "/e")
            assert [g.json()["id"] for g in got] == ids


async def test_redirect_is_not_followed(make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with Receiver() as rx:
        cfg = make_config(endpoints=[endpoint("e", f"{rx.url}/redirect")],
                          delivery={"retry_schedule": []})
        async with running(cfg) as r:
            event_id = (await r.send()).json()["id"]
            await eventually(lambda: _state_is(r, event_id, "failed"))
            assert len(rx.received("/redirect")) == 1
            assert rx.received("/ok") == []
            [d] = await r.relay.store.deliveries_of(event_id)
            assert d.last_status == 302 and "redirect" in (d.last_error or "")


async def test_answers_with_bytes_that_are_not_utf8_are_recorded(
    make_config: Callable[..., cfgmod.Loaded],
) -> None:
    async with Receiver() as rx:
        # The receiver writes header values as latin-1: "é" goes out as the lone byte 0xE9.
        rx.respond("/odd", (200, {"X-Name": "café"}))
        rx.respond("/moved", (302, {"Location": "/café"}))
        cfg = make_config(endpoints=[endpoint("odd", f"{rx.url}/odd"),
                                     endpoint("moved", f"{rx.url}/moved")],
                          delivery={"retry_schedule": []})
        async with running(cfg) as r:
            event_id = (await r.send()).json()["id"]
            await eventually(lambda: _states_are(r, event_id, {"odd": "succeeded",
                                                               "moved": "failed"}))
            by_endpoint = {d.endpoint_id: d for d in await r.relay.store.deliveries_of(event_id)}
            [attempt] = await r.relay.store.attempts_of(by_endpoint["odd"].id)
            assert attempt.response_headers["x-name"] == "caf\ufffd"
            assert by_endpoint["moved"].last_error == "redirect not followed (302 -> /caf\ufffd)"
            # The recorder is still alive: the next deliveries (answered plainly, the
            # scripted answers are used up) are recorded too.
            assert r.relay.scheduler.running
            second = (await r.send()).json()["id"]
            await eventually(lambda: _states_are(r, second, {"odd": "succeeded",
                                                             "moved": "succeeded"}))


async def _states_are(r: Any, event_id: str, states: dict[str, str]) -> bool:
    return await delivery_states(r, event_id) == states


@pytest.mark.slow
async def test_hanging_endpoint_does_not_delay_a_healthy_one(
    make_config: Callable[..., cfgmod.Loaded],
) -> None:
    async with Receiver() as rx:
        cfg = make_config(
            endpoints=[endpoint("hang", f"{rx.url}/hang", timeout="30s"),
                       endpoint("fail", f"{rx.url}/status/500"),
                       endpoint("ok", f"{rx.url}/fine")],
            delivery={"endpoint_concurrency": 4, "concurrency": 16,
                      "retry_schedule": ["10ms"] * 5},
        )
        async with running(cfg) as r:
            started = time.monotonic()
            for i in range(40):
                await r.send(data={"n": i})
            got = await rx.wait_for(40, "/fine", timeout=10)
            elapsed = time.monotonic() - started
            # The hanging endpoint holds its 4 slots; everything else flows.
            assert len(rx.received("/hang")) == 4
            assert r.relay.scheduler.inflight >= 4
            assert elapsed < 10
            assert len({g.json()["id"] for g in got}) == 40


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "10.1.2.3",
                                  "169.254.169.254", "[::ffff:127.0.0.1]"])
async def test_ssrf_guard_refuses_private_destinations(
    make_config: Callable[..., cfgmod.Loaded], host: str,
) -> None:
    async with Receiver() as rx:
        port = rx.url.rsplit(":", 1)[1]
        cfg = make_config(
            endpoints=[endpoint("e", f"http://{host}:{port}/ssrf")],
            delivery={"allow_private_networks": False, "retry_schedule": [],
                      "timeout": "1s"},
        )
        async with running(cfg) as r:
            event_id = (await r.send()).json()["id"]
            await eventually(lambda: _state_is(r, event_id, "failed"))
            assert rx.requests == []
            [d] = await r.relay.store.deliveries_of(event_id)
            [attempt] = await r.relay.store.attempts_of(d.id)
            assert attempt.status is None and attempt.error
            assert "refused" in attempt.error


async def test_metrics_count_outcomes(make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with Receiver() as rx:
        cfg = make_config(endpoints=[endpoint("e", f"{rx.url}/ok")])
        async with running(cfg) as r:
            await r.send()
            await rx.wait_for(1, "/ok")
            await r.relay.scheduler.wait_idle(5)
            text = (await r.client.get("/metrics")).text
            assert 'relay_delivery_attempts_total{outcome="succeeded"} 1.0' in text
            assert "relay_attempt_duration_seconds_count 1.0" in text
            assert 'relay_deliveries{state="succeeded"} 1.0' in text


async def test_log_line_per_attempt_without_secrets(
    make_config: Callable[..., cfgmod.Loaded], caplog: pytest.LogCaptureFixture,
) -> None:
    async with Receiver() as rx:
        cfg = make_config(endpoints=[endpoint("e", f"{rx.url}/ok", secret=SW_SECRET)])
        caplog.set_level("INFO", logger="relay")
        logging.getLogger("relay").propagate = True
        async with running(cfg) as r:
            event_id = (await r.send()).json()["id"]
            await rx.wait_for(1, "/ok")
            await r.relay.scheduler.wait_idle(5)
        attempts = [fields for rec in caplog.records if rec.msg == "attempt"
                    for _, fields in logs.entries(rec)]
        assert len(attempts) == 1
        assert attempts[0]["event"] == event_id and attempts[0]["status"] == 200
        assert attempts[0]["outcome"] == "succeeded"
        everything = "\n".join(logs.formatter(fmt).format(rec)
                               for fmt in ("text", "json") for rec in caplog.records)
        assert event_id in everything
        assert SW_SECRET not in everything and SW_SECRET[6:] not in everything
        await asyncio.sleep(0)
