"""Ordered (fifo) endpoints, end to end on loopback: strict event order through retries,
a pause, a cancelled or exhausted head; the API's count of deliveries blocked behind it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from relay import config as cfgmod
from tests.helpers import FlakyReceiver, assert_in_order, endpoint
from tests.receiver import Receiver
from tests.serving import eventually, running


def fifo(url: str, **extra: Any) -> dict[str, Any]:
    return endpoint("ordered", url, ordering="fifo", retry_schedule=["10ms", "10ms"], **extra)


@pytest.mark.slow
async def test_every_fifth_event_failing_twice_still_arrives_in_exact_order(
    make_config: Callable[..., cfgmod.Loaded],
) -> None:
    async with FlakyReceiver(fail_every=5, failures=2) as rx, running(
        make_config(endpoints=[fifo(rx.url)])
    ) as r:
        for n in range(200):
            assert (await r.send("order.created", {"n": n})).status_code == 202
        await eventually(lambda: len(rx.succeeded) == 200, 60, "200 successful deliveries")
        assert_in_order(rx, 200)
        assert rx.max_in_flight == 1
        # Every fifth event was tried three times, and nothing behind it went meanwhile.
        assert len(rx.seen) == 200 + 2 * 40


@pytest.mark.slow
async def test_a_paused_and_resumed_fifo_endpoint_keeps_the_order(
    make_config: Callable[..., cfgmod.Loaded],
) -> None:
    async with FlakyReceiver(fail_every=7, failures=1) as rx, running(
        make_config(endpoints=[fifo(rx.url)])
    ) as r:
        for n in range(60):
            assert (await r.send("order.created", {"n": n})).status_code == 202
        await eventually(lambda: len(rx.succeeded) >= 10, 20, "the first deliveries")
        paused = await r.client.patch("/v1/webhooks/ordered", json={"is_paused": True})
        assert paused.status_code == 200, paused.text
        for n in range(60, 80):  # created held while paused
            assert (await r.send("order.created", {"n": n})).status_code == 202
        held_back = await eventually(lambda: _pending_is(r, 80 - len(rx.succeeded)), 10,
                                     "the unsent deliveries to be held")
        assert held_back >= 20  # at least those created while paused
        resumed = await r.client.patch("/v1/webhooks/ordered", json={"is_paused": False})
        assert resumed.status_code == 200, resumed.text
        await eventually(lambda: len(rx.succeeded) == 80, 30, "all 80 after the resume")
        assert_in_order(rx, 80)
        assert rx.max_in_flight == 1


async def _pending_is(r: Any, expected: int) -> int:
    """The webhook's unfinished deliveries, when they are `expected` (else 0)."""
    body = (await r.client.get("/v1/webhooks/ordered")).json()
    return int(body["pending"]) if body["pending"] == expected else 0


async def _blocked(r: Any) -> int:
    response = await r.client.get("/v1/webhooks/ordered")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ordering"] == "fifo"
    count: int = body["blocked_behind_head"]
    return count


async def test_a_cancelled_head_unblocks_the_ones_behind_it(
    make_config: Callable[..., cfgmod.Loaded],
) -> None:
    async with Receiver() as rx, running(make_config(endpoints=[
        endpoint("ordered", f"{rx.url}/in", ordering="fifo", retry_schedule=["1h"]),
    ])) as r:
        rx.respond("/in", 500)  # the first event fails, and its retry is an hour away
        for n in range(4):
            assert (await r.send("order.created", {"n": n})).status_code == 202
        await eventually(lambda: _blocked(r), 10, "the head blocked with a failure")
        assert await _blocked(r) == 3
        assert [json.loads(q.body)["data"]["n"] for q in rx.received()] == [0]
        page = await r.client.get("/ui/t/default/endpoints/ordered")  # the console too
        assert page.status_code == 200
        assert "3 blocked behind a failing head" in page.text
        listing = await r.client.get("/ui/t/default/endpoints")
        assert "3 blocked behind the head" in listing.text
        listed = await r.client.get("/v1/webhooks/ordered/deliveries?status=pending")
        head = listed.json()["data"][-1]  # newest first: the oldest pending is the head
        assert head["attempts"] == 1
        cancelled = await r.client.post(f"/v1/deliveries/{head['id']}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        await rx.wait_for(4)
        assert [json.loads(q.body)["data"]["n"] for q in rx.received()] == [0, 1, 2, 3]
        assert await _blocked(r) == 0
        again = await r.client.post(f"/v1/deliveries/{head['id']}/cancel")
        assert again.status_code == 409, again.text


async def test_an_exhausted_head_lets_the_next_go(
    make_config: Callable[..., cfgmod.Loaded],
) -> None:
    async with Receiver() as rx, running(make_config(endpoints=[
        endpoint("ordered", f"{rx.url}/in", ordering="fifo", retry_schedule=["10ms"]),
    ])) as r:
        rx.respond("/in", 500, 500)  # the first event's both attempts fail
        for n in range(3):
            assert (await r.send("order.created", {"n": n})).status_code == 202
        await rx.wait_for(4)
        assert [json.loads(q.body)["data"]["n"] for q in rx.received()] == [0, 0, 1, 2]
        failed = await r.client.get("/v1/webhooks/ordered/deliveries?status=failed")
        assert len(failed.json()["data"]) == 1


async def test_the_api_sets_and_shows_ordering(
    make_config: Callable[..., cfgmod.Loaded],
) -> None:
    async with Receiver() as rx, running(make_config()) as r:
        created = await r.client.post("/v1/webhooks", json={
            "name": "ledger", "url": rx.url, "events": ["*"], "ordering": "fifo"})
        assert created.status_code == 201, created.text
        hook = created.json()
        assert (hook["ordering"], hook["blocked_behind_head"]) == ("fifo", 0)
        assert r.relay.endpoints[hook["id"]].ordered
        assert r.relay.endpoints[hook["id"]].concurrency == 1
        bad = await r.client.patch(f"/v1/webhooks/{hook['id']}", json={"ordering": "lifo"})
        assert bad.status_code == 422, bad.text
        assert "ordering" in bad.text
        patched = await r.client.patch(f"/v1/webhooks/{hook['id']}", json={"ordering": "none"})
        assert patched.status_code == 200, patched.text
        assert patched.json()["ordering"] == "none"
        assert not r.relay.endpoints[hook["id"]].ordered
