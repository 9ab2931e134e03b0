"""Management API over HTTP, webhooks: create, read, change, pause, re-enable, rotate,
test-send, delete; limits, scopes and tenant isolation. relay runs on a loopback port with
a real SQLite file; deliveries go to real receivers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from relay import config as cfgmod
from tests.helpers import (
    ACME,
    ADMIN,
    CONFIG_SECRET,
    EVENTS,
    FROZEN,
    LIMITED,
    READER,
    SAMPLE,
    admin_api,
    api_config,
    as_admin,
    assert_error,
    auth,
    create,
    send,
)
from tests.receiver import Received, Receiver
from tests.serving import Running, eventually, running


def verifies(secret: str, got: Received) -> bool:
    try:
        Webhook(secret).verify(got.body, got.headers)
    except WebhookVerificationError:
        return False
    return True


async def test_create_read_list_and_deliver(make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with admin_api(make_config) as (r, rx):
        hook = await create(r, f"{rx.url}/new", filter={"data.tier": ["gold"]},
                            headers={"X-Team": "sales"}, timeout="5s",
                            retry_schedule=["1s", "1m"], rate_limit=20)
        secret = hook.pop("secret")
        assert secret.startswith("whsec_")
        assert hook["id"].startswith("ep_") and hook["source"] == "api"
        assert hook["timeout"] == "5s" and hook["retry_schedule"] == ["1s", "1m"]
        assert (hook["is_active"], hook["is_paused"], hook["pending"]) == (True, False, 0)
        assert hook["tenant"] == "default" and hook["created_at"].endswith("Z")
        got = (await r.client.get(f"/v1/webhooks/{hook['id']}")).json()
        assert got == hook  # the secret is never shown again
        listed = (await r.client.get("/v1/webhooks")).json()
        assert [h["id"] for h in listed["data"]] == ["crm", "fixed", hook["id"]]
        assert listed["next"] is None
        assert all("secret" not in h for h in listed["data"])
        assert listed["data"][0]["source"] == "config"
        # Cursor pagination walks the same list one by one.
        seen, after = [], None
        while True:
            page = (await r.client.get("/v1/webhooks",
                                       params={"limit": 1, **({"after": after} if after else {})}
                                       )).json()
            seen += [h["id"] for h in page["data"]]
            after = page["next"]
            if after is None:
                break
        assert seen == ["crm", "fixed", hook["id"]]
        # It receives matching events at once, signed with its secret and headers.
        await send(r, tier="silver")
        event_id = await send(r, tier="gold")
        [delivered] = await rx.wait_for(1, "/new")
        assert delivered.headers["webhook-id"] == event_id
        assert delivered.headers["x-team"] == "sales"
        assert verifies(secret, delivered)
        await eventually(lambda: _status(r, hook["id"], 200), message="last_delivery_status")


async def _status(r: Running, hook_id: str, status: int) -> bool:
    body = (await r.client.get(f"/v1/webhooks/{hook_id}")).json()
    return bool(body["last_delivery_status"] == status and body["last_delivery_at"])


INVALID = [
    ({"url": "https://x.example/", "events": ["a"]}, "name"),
    ({"name": "n", "events": ["a"]}, "url"),
    ({"name": "n", "url": "https://x.example/"}, "events"),
    ({"name": "n", "url": "ftp://x.example/", "events": ["a"]}, "url"),
    ({"name": "n", "url": "https://x.example/", "events": ["bad pattern"]}, "events[0]"),
    ({"name": "n", "url": "https://x.example/", "events": []}, "events"),
    ({"name": "n", "url": "https://x.example/", "events": ["a"],
      "headers": {"Webhook-Id": "x"}}, "headers.Webhook-Id"),
    ({"name": "n", "url": "https://x.example/", "events": ["a"],
      "signature_header": "X-Sig"}, "signature_header"),
    ({"name": "n", "url": "https://x.example/", "events": ["a"], "timeout": "5 parsecs"},
     "timeout"),
    ({"name": "n", "url": "https://x.example/", "events": ["a"], "timeout": "9999d"},
     "timeout"),
    ({"name": "n", "url": "https://x.example/", "events": ["a"], "rate_limit": 0},
     "rate_limit"),
    ({"name": "n", "url": "https://x.example/", "events": ["a"], "secret": "mine"}, "secret"),
    ({"name": "", "url": "https://x.example/", "events": ["a"]}, "name"),
]


@pytest.mark.parametrize(("body", "path"), INVALID)
async def test_create_refuses_invalid_fields(
    make_config: Callable[..., cfgmod.Loaded], body: dict[str, Any], path: str,
) -> None:
    async with running(api_config(make_config, "https://x.example")) as r:
        response = await as_admin(r).client.post("/v1/webhooks", json=body)
        error = assert_error(response, 422, "validation_failed")
        assert path in [d["path"] for d in error["details"]], error
        assert len(await r.relay.store.list_endpoints()) == 2


async def test_create_refuses_bad_bodies(make_config: Callable[..., cfgmod.Loaded]) -> None:
    loaded = api_config(make_config, "https://x.example", delivery={"allow_http": False})
    async with running(loaded) as r:
        as_admin(r)
        plain = await r.client.post("/v1/webhooks", json={
            "name": "n", "url": "http://x.example/", "events": ["a"]})
        assert "http" in assert_error(plain, 422, "validation_failed")["details"][0]["message"]
        assert_error(await r.client.post("/v1/webhooks", content=b"{",
                                         headers={"content-type": "application/json"}),
                     400, "malformed_json")
        assert_error(await r.client.post("/v1/webhooks", content=b"name=n",
                                         headers={"content-type": "text/plain"}),
                     415, "unsupported_media_type")
        assert_error(await r.client.post("/v1/webhooks", json={"name": "x" * 300_000}),
                     413, "payload_too_large")
        assert len(await r.relay.store.list_endpoints()) == 2


async def test_patch_changes_settings(make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with admin_api(make_config) as (r, rx):
        hook = await create(r, f"{rx.url}/old", timeout="5s", rate_limit=5)
        response = await r.client.patch(f"/v1/webhooks/{hook['id']}", json={
            "name": "renamed", "url": f"{rx.url}/new", "events": ["billing.*"],
            "headers": {"X-A": "1"}, "filter": {"data.n": 1}, "timeout": None,
            "retry_schedule": ["2s"], "rate_limit": None,
        })
        assert response.status_code == 200, response.text
        changed = response.json()
        assert {k: changed[k] for k in ("name", "url", "events", "headers", "filter", "timeout",
                                        "retry_schedule", "rate_limit")} == {
            "name": "renamed", "url": f"{rx.url}/new", "events": ["billing.*"],
            "headers": {"X-A": "1"}, "filter": {"data.n": 1}, "timeout": None,
            "retry_schedule": ["2s"], "rate_limit": None,
        }
        assert (await r.client.get(f"/v1/webhooks/{hook['id']}")).json() == changed
        event_id = await send(r, "billing.paid", n=1)
        [got] = await rx.wait_for(1, "/new")
        assert got.headers["webhook-id"] == event_id and got.headers["x-a"] == "1"
        assert rx.received("/old") == []
        # Invalid changes are refused whole.
        for body, path in [({"url": "ftp://x/"}, "url"), ({"name": None}, "name"),
                           ({"events": None}, "events"), ({"is_paused": "maybe"}, "is_paused"),
                           ({"signature": "none"}, "signature")]:
            error = assert_error(await r.client.patch(f"/v1/webhooks/{hook['id']}", json=body),
                                 422, "validation_failed")
            assert [d["path"] for d in error["details"]] == [path], error
        now = (await r.client.get(f"/v1/webhooks/{hook['id']}")).json()
        assert (now["url"], now["name"], now["events"]) == (
            changed["url"], changed["name"], changed["events"])
        missing = await r.client.patch("/v1/webhooks/ep_missing", json={"name": "x"})
        assert_error(missing, 404, "not_found")


async def test_config_webhooks_change_only_in_the_file(
    make_config: Callable[..., cfgmod.Loaded],
) -> None:
    async with admin_api(make_config) as (r, rx):
        error = assert_error(
            await r.client.patch("/v1/webhooks/crm", json={"url": f"{rx.url}/x", "name": "n",
                                                           "is_paused": True}),
            409, "conflict")
        assert "name, url" in error["message"] and "config file" in error["message"]
        deleted = assert_error(await r.client.delete("/v1/webhooks/crm"), 409, "conflict")
        assert "config file" in deleted["message"]
        rotated = assert_error(await r.client.post("/v1/webhooks/fixed/rotate-secret"),
                               409, "conflict")
        assert "secret" in rotated["message"] and "file" in rotated["message"]
        assert (await r.client.get("/v1/webhooks/crm")).json()["is_paused"] is False
        # Its state is the API's to change; a generated secret may rotate.
        paused = await r.client.patch("/v1/webhooks/crm", json={"is_paused": True})
        assert paused.status_code == 200 and paused.json()["is_paused"] is True
        new = await r.client.post("/v1/webhooks/crm/rotate-secret", json={})
        assert new.status_code == 200
        [row] = [e for e in await r.relay.store.list_endpoints() if e.id == "crm"]
        assert row.secret == new.json()["secret"]
        # A config reload keeps both (the file says nothing about them).
        await r.relay._sync_config(r.relay.loaded)
        hook = (await r.client.get("/v1/webhooks/crm")).json()
        assert hook["is_paused"] is True
        assert r.relay.endpoints["crm"].secrets == (new.json()["secret"],)


async def test_pause_holds_and_resume_releases_in_order(
    make_config: Callable[..., cfgmod.Loaded],
) -> None:
    async with admin_api(make_config) as (r, rx):
        hook = await create(r, f"{rx.url}/p")
        paused = await r.client.patch(f"/v1/webhooks/{hook['id']}", json={"is_paused": True})
        assert paused.json()["is_paused"] is True and paused.json()["is_active"] is True
        ids = [await send(r, n=i) for i in range(5)]
        listed = (await r.client.get(f"/v1/webhooks/{hook['id']}/deliveries",
                                     params={"status": "held"})).json()
        assert [d["event_id"] for d in listed["data"]] == ids[::-1]
        assert (await r.client.get(f"/v1/webhooks/{hook['id']}")).json()["pending"] == 5
        await rx.wait_for(5, "/crm")  # the other endpoint is not held up
        assert rx.received("/p") == []
        resumed = await r.client.patch(f"/v1/webhooks/{hook['id']}", json={"is_paused": False})
        assert resumed.json()["is_paused"] is False
        got = await rx.wait_for(5, "/p")
        assert [g.headers["webhook-id"] for g in got] == ids
        await eventually(lambda: _pending(r, hook["id"], 0), message="pending 0")


async def _pending(r: Running, hook_id: str, n: int) -> bool:
    return bool((await r.client.get(f"/v1/webhooks/{hook_id}")).json()["pending"] == n)


async def test_410_disables_and_patch_is_active_releases(
    make_config: Callable[..., cfgmod.Loaded],
) -> None:
    async with admin_api(make_config) as (r, rx):
        rx.respond("/gone", 410)
        hook = await create(r, f"{rx.url}/gone")
        first = await send(r)
        await rx.wait_for(1, "/gone")

        async def disabled() -> dict[str, Any] | None:
            body: dict[str, Any] = (await r.client.get(f"/v1/webhooks/{hook['id']}")).json()
            return body if not body["is_active"] else None

        body = await eventually(disabled, message="disabled by 410")
        assert "410" in body["disable_reason"] and body["last_delivery_status"] == 410
        assert body["consecutive_failures"] == 1
        later = [await send(r, n=i) for i in range(3)]
        assert (await r.client.get(f"/v1/webhooks/{hook['id']}")).json()["pending"] == 4
        enabled = (await r.client.patch(f"/v1/webhooks/{hook['id']}",
                                        json={"is_active": True})).json()
        assert enabled["is_active"] is True and enabled["disable_reason"] is None
        assert enabled["consecutive_failures"] == 0
        got = await rx.wait_for(5, "/gone")
        assert [g.headers["webhook-id"] for g in got[1:]] == [first, *later]
        # An operator may disable it too.
        off = (await r.client.patch(f"/v1/webhooks/{hook['id']}",
                                    json={"is_active": False})).json()
        assert off["is_active"] is False and off["disable_reason"]


@pytest.mark.slow
async def test_rotation_signs_with_both_during_the_grace_then_the_new_only(
    make_config: Callable[..., cfgmod.Loaded],
) -> None:
    ahead = [0.0]  # relay's clocks, wall and monotonic alike, run this far ahead

    def clock() -> float:
        return time.time() + ahead[0]

    def monotonic() -> float:
        return time.monotonic() + ahead[0]

    async with Receiver() as rx, running(api_config(make_config, rx.url), clock=clock,
                                         monotonic=monotonic) as r:
        as_admin(r)
        hook = await create(r, f"{rx.url}/rot")
        old = hook["secret"]
        rotated = await r.client.post(f"/v1/webhooks/{hook['id']}/rotate-secret",
                                      json={"grace": "1s"})
        assert rotated.status_code == 200
        new = rotated.json()["secret"]
        assert new.startswith("whsec_") and new != old
        assert rotated.json()["previous_expires_at"].endswith("Z")
        await send(r)
        [during] = await rx.wait_for(1, "/rot")
        assert verifies(old, during) and verifies(new, during)
        [row] = [e for e in await r.relay.store.list_endpoints() if e.id == hook["id"]]
        assert row.prev_secret_until is not None
        until = row.prev_secret_until
        ahead[0] += until - clock() + 0.001  # the grace ends: no waiting it out
        assert r.relay.clock() > until
        await send(r)
        after = (await rx.wait_for(2, "/rot"))[1]
        assert verifies(new, after) and not verifies(old, after)
        # Without a grace the old secret stops at once.
        again = (await r.client.post(f"/v1/webhooks/{hook['id']}/rotate-secret")).json()
        assert again["previous_expires_at"] is None
        await send(r)
        last = (await rx.wait_for(3, "/rot"))[2]
        assert verifies(again["secret"], last) and not verifies(new, last)
        bad = await r.client.post(f"/v1/webhooks/{hook['id']}/rotate-secret",
                                  json={"grace": "soon"})
        assert_error(bad, 422, "validation_failed")


async def test_delete_cancels_unfinished_deliveries(
    make_config: Callable[..., cfgmod.Loaded],
) -> None:
    async with admin_api(make_config) as (r, rx):
        held = await create(r, f"{rx.url}/held")
        failing = await create(r, f"{rx.url}/status/500", retry_schedule=["1h"])
        await r.client.patch(f"/v1/webhooks/{held['id']}", json={"is_paused": True})
        ids = [await send(r, n=i) for i in range(3)]
        await rx.wait_for(3, "/status/500")
        await eventually(lambda: _attempted(r, failing["id"], 3), message="3 attempts")
        for hook in (held, failing):
            response = await r.client.delete(f"/v1/webhooks/{hook['id']}")
            assert response.status_code == 204 and response.content == b""
            assert_error(await r.client.get(f"/v1/webhooks/{hook['id']}"), 404, "not_found")
            assert_error(await r.client.delete(f"/v1/webhooks/{hook['id']}"), 404, "not_found")
        states = {d.endpoint_id: d.state for i in ids
                  for d in await r.relay.store.deliveries_of(i) if d.endpoint_id != "crm"}
        assert states == {held["id"]: "cancelled", failing["id"]: "cancelled"}
        assert held["id"] not in r.relay.endpoints
        listed = [h["id"] for h in (await r.client.get("/v1/webhooks")).json()["data"]]
        assert listed == ["crm", "fixed"]


async def _attempted(r: Running, hook_id: str, n: int) -> bool:
    page = (await r.client.get(f"/v1/webhooks/{hook_id}/deliveries")).json()["data"]
    return len(page) == n and all(d["attempts"] == 1 and d["status"] == "pending" for d in page)


async def test_send_test_answers_the_receivers_reply(
    make_config: Callable[..., cfgmod.Loaded],
) -> None:
    async with admin_api(make_config) as (r, rx):
        hook = await create(r, f"{rx.url}/t")
        await r.client.patch(f"/v1/webhooks/{hook['id']}", json={"is_paused": True})
        rx.respond("/t", (418, {"content-type": "text/plain"}, b"short and stout" * 400))
        response = await r.client.post(f"/v1/webhooks/{hook['id']}/test",
                                       json={"type": "lead.qualified"})
        assert response.status_code == 200, response.text
        result = response.json()
        assert (result["success"], result["status"]) == (False, 418)
        assert result["response_body"].startswith("short and stout")
        assert len(result["response_body"]) == 4096
        assert result["duration_ms"] > 0 and result["error"] is None
        event = result["event"]
        assert (event["type"], event["data"], event["tenant_id"]) == (
            "lead.qualified", SAMPLE, "default")
        [got] = rx.received("/t")
        assert got.json() == event and got.headers["webhook-id"] == event["id"]
        assert verifies(hook["secret"], got)
        ping = (await r.client.post(f"/v1/webhooks/{hook['id']}/test")).json()
        assert ping["success"] is True and ping["status"] == 200
        assert ping["event"]["type"] == "relay.ping" and ping["event"]["data"] == {}
        unknown = await r.client.post(f"/v1/webhooks/{hook['id']}/test", json={"type": "x.y"})
        assert "x.y" in assert_error(unknown, 404, "not_found")["message"]
        # Nothing entered the queue.
        assert (await r.client.get(f"/v1/webhooks/{hook['id']}/deliveries")).json()["data"] == []
        assert await r.relay.store.counts() == {}
        refused = await create(r, "http://127.0.0.1:9/closed")
        failed = (await r.client.post(f"/v1/webhooks/{refused['id']}/test")).json()
        assert failed["success"] is False and failed["status"] is None
        assert "refused" in failed["error"]


async def test_max_webhooks_is_enforced_race_free(
    make_config: Callable[..., cfgmod.Loaded],
) -> None:
    async with running(api_config(make_config, "https://x.example")) as r:
        body = {"name": "n", "url": "https://x.example/", "events": ["*"]}
        responses = await asyncio.gather(*(
            r.client.post("/v1/webhooks", json=body, headers=auth(LIMITED)) for _ in range(5)))
        assert sorted(x.status_code for x in responses) == [201, 201, 429, 429, 429]
        error = assert_error(responses[[x.status_code for x in responses].index(429)],
                             429, "too_many_requests")
        assert "max_webhooks" in error["message"]
        listed = (await r.client.get("/v1/webhooks", headers=auth(LIMITED))).json()["data"]
        assert len(listed) == 2
        gone = await r.client.delete(f"/v1/webhooks/{listed[0]['id']}", headers=auth(LIMITED))
        assert gone.status_code == 204
        again = await r.client.post("/v1/webhooks", json=body, headers=auth(LIMITED))
        assert again.status_code == 201


ROUTES = [
    ("GET", "/v1/webhooks", None), ("POST", "/v1/webhooks", {"name": "n"}),
    ("GET", "/v1/webhooks/crm", None), ("PATCH", "/v1/webhooks/crm", {"is_paused": True}),
    ("DELETE", "/v1/webhooks/ep_x", None), ("POST", "/v1/webhooks/crm/rotate-secret", {}),
    ("POST", "/v1/webhooks/crm/test", {}),
    ("POST", "/v1/webhooks/crm/recover", {"since": "2026-01-01T00:00:00Z"}),
    ("GET", "/v1/webhooks/crm/deliveries", None), ("GET", "/v1/deliveries/dlv_1", None),
    ("POST", "/v1/deliveries/dlv_1/retry", None), ("GET", "/v1/events", None),
    ("GET", "/v1/events/evt_x", None), ("POST", "/v1/events/evt_x/replay", {}),
    ("GET", "/v1/event-types", None), ("GET", "/v1/event-types/lead.qualified/sample", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
async def test_keys_scopes_and_disabled_tenants(
    make_config: Callable[..., cfgmod.Loaded], method: str, path: str,
    body: dict[str, Any] | None,
) -> None:
    async with running(api_config(make_config, "https://x.example")) as r:
        async def call(headers: dict[str, str]) -> Any:
            return await r.client.request(method, path, json=body, headers=headers)

        assert "Bearer" in assert_error(await call({}), 401, "unauthorized")["message"]
        assert_error(await call(auth("k-unknown-0123456789")), 401, "unauthorized")
        scope = "webhooks:read" if method == "GET" else "webhooks:write"
        error = assert_error(await call(auth(EVENTS)), 403, "forbidden")
        assert scope in error["message"]
        if method != "GET":
            assert scope in assert_error(await call(auth(READER)), 403, "forbidden")["message"]
        frozen = assert_error(await call(auth(FROZEN)), 403, "forbidden")
        assert "webhooks are disabled for tenant 'frozen'" in frozen["message"]
        assert await r.relay.store.counts() == {}
        assert len(await r.relay.store.list_endpoints()) == 2


async def test_tenants_see_only_their_own_webhooks(
    make_config: Callable[..., cfgmod.Loaded],
) -> None:
    async with Receiver() as rx, running(api_config(make_config, rx.url)) as r:
        mine = await create(r, f"{rx.url}/acme", key=ACME)
        assert mine["tenant"] == "acme"
        theirs = await create(r, f"{rx.url}/default", key=ADMIN)
        for key, own, other in ((ACME, mine, theirs), (ADMIN, theirs, mine)):
            listed = [h["id"] for h in
                      (await r.client.get("/v1/webhooks", headers=auth(key))).json()["data"]]
            assert own["id"] in listed and other["id"] not in listed
            hid = other["id"]
            for method, path, body in [
                ("GET", f"/v1/webhooks/{hid}", None),
                ("PATCH", f"/v1/webhooks/{hid}", {"is_paused": True}),
                ("DELETE", f"/v1/webhooks/{hid}", None),
                ("POST", f"/v1/webhooks/{hid}/rotate-secret", {}),
                ("POST", f"/v1/webhooks/{hid}/test", {}),
                ("POST", f"/v1/webhooks/{hid}/recover", {"since": "2026-01-01T00:00:00Z"}),
                ("GET", f"/v1/webhooks/{hid}/deliveries", None),
            ]:
                response = await r.client.request(method, path, json=body, headers=auth(key))
                assert_error(response, 404, "not_found")
        acme_view = [h["id"] for h in
                     (await r.client.get("/v1/webhooks", headers=auth(ACME))).json()["data"]]
        assert acme_view == [mine["id"]]  # the default tenant's config endpoints neither
        assert_error(await r.client.get("/v1/webhooks/crm", headers=auth(ACME)), 404,
                     "not_found")
        await send(r, key=ACME)
        [got] = await rx.wait_for(1, "/acme")
        assert got.json()["tenant_id"] == "acme"
        assert rx.received("/default") == []


async def test_without_api_keys_the_caller_is_default_admin(
    make_config: Callable[..., cfgmod.Loaded],
) -> None:
    async with running(make_config()) as r:
        response = await r.client.post("/v1/webhooks", json={  # no key sent: none needed
            "name": "hook", "url": "https://x.example/", "events": ["lead.*"]})
        assert response.status_code == 201, response.text
        hook = response.json()
        assert hook["tenant"] == "default"
        assert [h["id"] for h in (await r.client.get("/v1/webhooks")).json()["data"]] == [
            hook["id"]]


async def test_the_secret_is_shown_again_to_writers_and_logged(
        make_config: Callable[..., cfgmod.Loaded], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="relay")
    async with admin_api(make_config) as (r, rx):
        hook = await create(r, f"{rx.url}/new")
        got = await r.client.get(f"/v1/webhooks/{hook['id']}/secret")
        assert got.status_code == 200 and got.json() == {"secret": hook["secret"]}
        fixed = await r.client.get("/v1/webhooks/fixed/secret")  # a config one's too
        assert fixed.json() == {"secret": CONFIG_SECRET}
        assert_error(await r.client.get(f"/v1/webhooks/{hook['id']}/secret",
                                        headers=auth(READER)), 403, "forbidden")
        assert_error(await r.client.get(f"/v1/webhooks/{hook['id']}/secret",
                                        headers=auth(ACME)), 404, "not_found")
        revealed = [getattr(rec, "fields", {}) for rec in caplog.records
                    if str(rec.msg) == "secret_revealed"]
        assert [f.get("endpoint") for f in revealed] == [hook["id"], "fixed"]
