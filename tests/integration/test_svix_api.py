"""Svix's API at /api/v1 driven by Svix's own Python SDK (PyPI `svix`), against relay
served on loopback with a real SQLite file, deliveries going to a loopback receiver
that verifies them with the SDK's own `Webhook`. docs/svix.md lists what each test
covers."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from svix.api import (
    ApplicationListOptions,
    EndpointListOptions,
    MessageAttemptListByEndpointOptions,
    MessageCreateOptions,
    MessageListOptions,
)
from svix.exceptions import HttpError, HTTPValidationError
from svix.models import (
    ApplicationIn,
    ApplicationPatch,
    AppPortalAccessIn,
    EndpointHeadersIn,
    EndpointHeadersPatchIn,
    EndpointIn,
    EndpointPatch,
    EndpointSecretRotateIn,
    EndpointUpsertIn,
    EventExampleIn,
    EventTypeIn,
    MessageIn,
    RecoverIn,
)

from relay import config as cfgmod
from relay import sessions
from tests.helpers import ACME, ADMIN, FROZEN, READER, SAMPLE, admin_api, auth
from tests.serving import Running, eventually, free_port
from tests.svix_sdk import SECRET, sdk, verified


@pytest.mark.parametrize("channel", [None, "project-1"])
async def test_quickstart(make_config: Callable[..., cfgmod.Loaded], channel: str | None
                          ) -> None:
    """Svix's test_svix_message_create: an application (a config tenant), an endpoint,
    a message; the receiver gets the payload itself, signed as Svix signs."""
    async with admin_api(make_config) as (r, rx), sdk(r) as svix:
        app = await svix.application.get_or_create(ApplicationIn(name="Acme", uid="acme"))
        assert app.id == "acme"
        channels = None if channel is None else [channel]
        endpoint = await svix.endpoint.create(app.id, EndpointIn(
            url=f"{rx.url}/svix", uid="crm-hook", event_types=["lead.qualified"],
            channels=channels))
        assert endpoint.uid == "crm-hook" and endpoint.event_types == ["lead.qualified"]
        assert endpoint.channels == channels
        secret = (await svix.endpoint.get_secret(app.id, "crm-hook")).key
        message = await svix.message.create(app.id, MessageIn(
            event_type="lead.qualified", payload={"value": "test"}, channels=channels))
        assert message.event_type == "lead.qualified" and message.channels == channels
        [got] = await rx.wait_for(1, "/svix")
        assert got.body == b'{"value":"test"}'
        assert got.headers["svix-id"] == message.id
        assert {"svix-timestamp", "svix-signature"} <= set(got.headers)
        assert not [name for name in got.headers if name.startswith("webhook-")]
        verified(secret, got)


async def _webhook(r: Running, webhook_id: str) -> dict[str, Any]:
    got = await r.client.get(f"/v1/webhooks/{webhook_id}", headers=auth(ACME))
    assert got.status_code == 200, got.text
    webhook: dict[str, Any] = got.json()
    return webhook


@pytest.mark.parametrize("channel", [False, True])
@pytest.mark.parametrize("metadata", [False, True])
@pytest.mark.parametrize("secret", [False, True])
async def test_endpoint_fields_are_echoed(make_config: Callable[..., cfgmod.Loaded],
                                          channel: bool, metadata: bool, secret: bool
                                          ) -> None:
    """Svix's test_svix_endpoint_create: every combination of channels, metadata and a
    chosen secret."""
    async with admin_api(make_config) as (r, rx), sdk(r) as svix:
        given = EndpointIn(url=f"{rx.url}/e", uid="ep-uid", description="CRM",
                           channels=["ch0"] if channel else None,
                           metadata={"k": "v"} if metadata else None,
                           secret=SECRET if secret else None)
        out = await svix.endpoint.create("acme", given)
        assert (out.uid, out.url, out.description) == ("ep-uid", f"{rx.url}/e", "CRM")
        assert out.channels == (["ch0"] if channel else None)
        assert out.metadata == ({"k": "v"} if metadata else {})
        assert out.event_types is None and out.disabled is False
        key = (await svix.endpoint.get_secret("acme", "ep-uid")).key
        assert key == SECRET if secret else key.startswith("whsec_")
        assert await svix.endpoint.get("acme", out.id) == out


async def test_endpoints_kitchen_sink(make_config: Callable[..., cfgmod.Loaded]) -> None:
    """Svix's kitchen sink: channels kept across a patch of event types; get by id and
    uid; paging by 2; upsert; throttleRate is relay's rate_limit; delete."""
    async with admin_api(make_config) as (r, rx), sdk(r) as svix:
        made = await svix.endpoint.create("acme", EndpointIn(
            url=f"{rx.url}/k", channels=["ch0", "ch1"], throttle_rate=10))
        assert made.event_types is None and made.throttle_rate == 10
        assert (await _webhook(r, made.id))["rate_limit"] == 10
        patched = await svix.endpoint.patch("acme", made.id, EndpointPatch(
            event_types=["lead.qualified", "lead.lost"]))
        assert patched.channels == ["ch0", "ch1"]
        assert patched.event_types == ["lead.qualified", "lead.lost"]
        cleared = await svix.endpoint.patch("acme", made.id, EndpointPatch(
            event_types=None, uid="kitchen"))
        assert cleared.event_types is None and cleared.uid == "kitchen"
        assert (await svix.endpoint.get("acme", "kitchen")).id == made.id
        for n in range(4):
            await svix.endpoint.create("acme", EndpointIn(url=f"{rx.url}/{n}"))
        seen, iterator, pages_read = [], None, 0
        while True:
            page = await svix.endpoint.list("acme", EndpointListOptions(limit=2,
                                                                         iterator=iterator))
            seen += [e.id for e in page.data]
            pages_read += 1
            iterator = page.iterator
            if page.done:
                break
        assert pages_read == 3 and len(seen) == 5 == len(set(seen))
        assert seen[-1] == made.id  # newest first
        ascending = await svix.endpoint.list("acme", EndpointListOptions(order="ascending"))
        assert [e.id for e in ascending.data] == seen[::-1]
        # Upsert: a new uid is created (201), reachable by the path's uid; then updated.
        created = await svix.endpoint.upsert("acme", "upserted", EndpointUpsertIn(
            url=f"{rx.url}/u"))
        assert created.uid == "upserted"
        raw = await r.client.put("/api/v1/app/acme/endpoint/upserted", headers=auth(ADMIN),
                                 json={"url": f"{rx.url}/u2", "description": "again"})
        assert raw.status_code == 200, raw.text
        assert raw.json()["uid"] == "upserted" and raw.json()["description"] == "again"
        await svix.endpoint.delete("acme", made.id)
        with pytest.raises(HttpError) as gone:
            await svix.endpoint.get("acme", made.id)
        assert (gone.value.status_code, gone.value.code) == (404, "not_found")


async def test_disabled_endpoints_hold_their_messages(
        make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with admin_api(make_config) as (r, rx), sdk(r) as svix:
        made = await svix.endpoint.create("acme", EndpointIn(
            url=f"{rx.url}/held", disabled=True, secret=SECRET))
        assert made.disabled is True
        message = await svix.message.create("acme", MessageIn(
            event_type="lead.qualified", payload={"n": 1}))
        deliveries = await r.client.get(f"/v1/webhooks/{made.id}/deliveries",
                                        headers=auth(ACME))
        assert [d["status"] for d in deliveries.json()["data"]] == ["held"]
        assert (await svix.endpoint.patch("acme", made.id,
                                          EndpointPatch(disabled=False))).disabled is False
        [got] = await rx.wait_for(1, "/held")
        assert got.headers["svix-id"] == message.id
        verified(SECRET, got)


async def test_endpoint_input_is_checked(make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with admin_api(make_config) as (r, rx), sdk(r) as svix:
        with pytest.raises(HTTPValidationError) as unknown:
            await svix.endpoint.create("acme", EndpointIn(url=f"{rx.url}/x",
                                                          event_types=["nope.x"]))
        assert unknown.value.detail[0].loc == ["body", "eventTypes"]
        assert "nope.x" in unknown.value.detail[0].msg
        with pytest.raises(HTTPValidationError) as scheme:
            await svix.endpoint.create("acme", EndpointIn(url="ftp://x.example/"))
        assert scheme.value.detail[0].loc == ["body", "url"]
        with pytest.raises(HTTPValidationError) as reserved:
            await svix.endpoint.create("acme", EndpointIn(url=f"{rx.url}/x",
                                                          headers={"svix-foo": "1"}))
        assert reserved.value.detail[0].loc == ["body", "headers", "svix-foo"]
        with pytest.raises(HTTPValidationError) as short:
            await svix.endpoint.create("acme", EndpointIn(url=f"{rx.url}/x", secret="short"))
        assert short.value.detail[0].loc == ["body", "secret"]
        with pytest.raises(HttpError) as taken:
            for _ in range(2):
                await svix.endpoint.create("acme", EndpointIn(url=f"{rx.url}/x", uid="one"))
        assert (taken.value.status_code, taken.value.code) == (409, "conflict")
        # The older name of eventTypes, as older SDKs send it.
        old = await r.client.post("/api/v1/app/acme/endpoint", headers=auth(ADMIN), json={
            "url": f"{rx.url}/old", "filterTypes": ["lead.lost"], "version": 1})
        assert old.status_code == 201, old.text
        assert old.json()["eventTypes"] == ["lead.lost"]


async def test_endpoint_headers(make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with admin_api(make_config) as (r, rx), sdk(r) as svix:
        made = await svix.endpoint.create("acme", EndpointIn(
            url=f"{rx.url}/h", headers={"x-a": "1", "Authorization": "Bearer t"}))
        shown = await svix.endpoint.get_headers("acme", made.id)
        assert shown.headers == {"x-a": "1"} and shown.sensitive == ["Authorization"]
        await svix.endpoint.set_headers("acme", made.id, EndpointHeadersIn(
            headers={"x-a": "2"}))
        assert (await svix.endpoint.get_headers("acme", made.id)).headers == {"x-a": "2"}
        await svix.endpoint.patch_headers("acme", made.id, EndpointHeadersPatchIn(
            headers={"x-b": "3"}, delete_headers=["x-a"]))
        assert (await svix.endpoint.get_headers("acme", made.id)).headers == {"x-b": "3"}
        with pytest.raises(HTTPValidationError) as reserved:
            await svix.endpoint.set_headers("acme", made.id, EndpointHeadersIn(
                headers={"svix-foo": "1"}))
        assert reserved.value.detail[0].loc == ["body", "headers", "svix-foo"]
        await svix.message.create("acme", MessageIn(event_type="lead.lost", payload={}))
        [got] = await rx.wait_for(1, "/h")
        assert got.headers["x-b"] == "3" and "x-a" not in got.headers


async def test_secret_rotation(make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with admin_api(make_config) as (r, rx), sdk(r) as svix:
        made = await svix.endpoint.create("acme", EndpointIn(url=f"{rx.url}/r", uid="rot",
                                                             secret=SECRET))
        new = (await svix.endpoint.rotate_secret("acme", "rot", EndpointSecretRotateIn())).key
        assert new != SECRET and new == (await svix.endpoint.get_secret("acme", "rot")).key
        await svix.message.create("acme", MessageIn(event_type="lead.lost", payload={}))
        [during] = await rx.wait_for(1, "/r")
        assert len(during.headers["svix-signature"].split()) == 2  # Svix's 24 h grace
        verified(SECRET, during)
        verified(new, during)
        chosen = "whsec_" + "f" * 32
        rotated = await svix.endpoint.rotate_secret("acme", made.id, EndpointSecretRotateIn(
            key=chosen, grace_period_seconds=0))
        assert rotated.key == chosen
        await svix.message.create("acme", MessageIn(event_type="lead.lost", payload={}))
        after = (await rx.wait_for(2, "/r"))[1]
        assert len(after.headers["svix-signature"].split()) == 1
        verified(chosen, after)
        with pytest.raises(Exception, match="No matching signature"):
            verified(new, after)


async def test_messages(make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with admin_api(make_config) as (r, rx), sdk(r) as svix:
        all_ = await svix.endpoint.create("acme", EndpointIn(url=f"{rx.url}/all"))
        some = await svix.endpoint.create("acme", EndpointIn(url=f"{rx.url}/some",
                                                             channels=["c1", "c2"]))
        raw = await r.client.post("/api/v1/app/acme/msg", headers=auth(ADMIN), json={
            "eventType": "lead.lost", "payload": {"n": 0}, "channels": ["c2"]})
        assert raw.status_code == 202 and raw.json()["payload"] == {"n": 0}  # with content
        first = await svix.message.create("acme", MessageIn(
            event_type="lead.qualified", payload={"n": 1}, event_id="e1"))
        assert first.payload == {} and first.event_id == "e1"  # SDK v2: without content
        with pytest.raises(HttpError) as again:
            await svix.message.create("acme", MessageIn(event_type="lead.qualified",
                                                        payload={"n": 1}, event_id="e1"))
        assert (again.value.status_code, again.value.code) == (409, "conflict")
        # The same idempotency-key answers the first answer again, and sends nothing more.
        keyed = MessageCreateOptions(idempotency_key="key-1", with_content=True)
        one = await svix.message.create("acme", MessageIn(
            event_type="lead.lost", payload={"n": 2}, channels=["c9"]), keyed)
        two = await svix.message.create("acme", MessageIn(
            event_type="lead.lost", payload={"n": 2}, channels=["c9"]), keyed)
        assert one == two and one.payload == {"n": 2}
        with pytest.raises(HttpError) as reused:
            await svix.message.create("acme", MessageIn(event_type="lead.lost",
                                                        payload={"n": 3}), keyed)
        assert (reused.value.status_code, reused.value.code) == (409, "conflict")
        # By id, or by the eventId it was sent with.
        assert (await svix.message.get("acme", first.id)).id == first.id
        by_key = await svix.message.get("acme", "e1")
        assert by_key.id == first.id and by_key.payload == {}
        with_content = await r.client.get("/api/v1/app/acme/msg/e1", headers=auth(ADMIN))
        assert with_content.json()["payload"] == {"n": 1}
        # Channels route: the endpoint without channels gets all, the other what shares one.
        await rx.wait_for(3, "/all")
        [got] = await rx.wait_for(1, "/some")
        assert json.loads(got.body) == {"n": 0}
        assert len(rx.received("/all")) == 3 and len(rx.received("/some")) == 1
        # Lists: newest first, by 2; filtered by type and channel.
        ids, iterator = [], None
        while True:
            page = await svix.message.list("acme", MessageListOptions(limit=2,
                                                                       iterator=iterator))
            ids += [m.id for m in page.data]
            iterator = page.iterator
            if page.done:
                break
        assert ids == [one.id, first.id, raw.json()["id"]]
        lost = await svix.message.list("acme", MessageListOptions(event_types=["lead.lost"]))
        assert [m.id for m in lost.data] == [one.id, raw.json()["id"]]
        both = await svix.message.list("acme", MessageListOptions(
            event_types=["lead.lost", "lead.qualified"], channel="c9"))
        assert [m.id for m in both.data] == [one.id] and both.done
        assert all_.id and some.id


async def test_messages_relay_refuses(make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with admin_api(make_config) as (r, _), sdk(r) as svix:
        with pytest.raises(HTTPValidationError) as ops:
            await svix.message.create("acme", MessageIn(event_type="relay.endpoint.created",
                                                        payload={}))
        assert ops.value.detail[0].loc == ["body", "eventType"]
        # `application` creates the application the path names, given its uid (as Svix).
        with pytest.raises(HTTPValidationError) as mismatch:
            await svix.message.create("nobody", MessageIn(
                event_type="a", payload={}, application=ApplicationIn(name="N", uid="other")))
        assert mismatch.value.detail[0].loc == ["body", "application", "uid"]
        assert mismatch.value.detail[0].type == "application_uid_mismatch"
        assert (await r.client.get("/v1/tenants/other")).status_code == 404
        created = await svix.message.create("nobody", MessageIn(
            event_type="a", payload={}, application=ApplicationIn(name="N", uid="nobody")))
        assert (await svix.message.get("nobody", created.id)).event_type == "a"
        assert (await svix.application.get("nobody")).name == "N"
        # Types relay does not declare are taken, their payloads unchecked (docs/svix.md).
        taken = await svix.message.create("acme", MessageIn(event_type="not.declared",
                                                            payload={"x": 1}))
        assert taken.event_type == "not.declared"


async def test_attempts(make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with admin_api(make_config) as (r, rx), sdk(r) as svix:
        ok = await svix.endpoint.create("acme", EndpointIn(url=f"{rx.url}/ok", uid="ok",
                                                           event_types=["lead.qualified"]))
        bad = await svix.endpoint.create("acme", EndpointIn(url=f"{rx.url}/status/500",
                                                            event_types=["lead.lost"]))
        message = await svix.message.create("acme", MessageIn(event_type="lead.qualified",
                                                              payload={"a": 1}))
        failing = await svix.message.create("acme", MessageIn(event_type="lead.lost",
                                                              payload={}))

        async def attempts_of(endpoint: str, n: int) -> list[Any]:
            async def enough() -> list[Any] | None:
                page = await svix.message_attempt.list_by_endpoint("acme", endpoint)
                return page.data if len(page.data) >= n else None
            found: list[Any] = await eventually(enough, message=f"{n} attempts")
            return found

        [done] = await attempts_of("ok", 1)
        assert (done.status, done.status_text, done.response_status_code) == (0, "success",
                                                                              200)
        assert (done.msg_id, done.endpoint_id, done.trigger_type) == (message.id, ok.id, 0)
        assert done.url == f"{rx.url}/ok" and done.response == "{}"  # without content
        failed = await attempts_of(bad.id, 3)  # the first and both retries
        assert {(a.status, a.status_text, a.response_status_code) for a in failed} == {
            (2, "fail", 500)}
        by_two = await svix.message_attempt.list_by_endpoint(
            "acme", bad.id, MessageAttemptListByEndpointOptions(limit=2, with_content=True))
        assert len(by_two.data) == 2 and not by_two.done
        assert by_two.data[0].response == '{"status":500}'
        rest = await svix.message_attempt.list_by_endpoint(
            "acme", bad.id, MessageAttemptListByEndpointOptions(iterator=by_two.iterator))
        assert [a.id for a in by_two.data + rest.data] == [a.id for a in failed]
        assert rest.done
        by_msg = await svix.message_attempt.list_by_msg("acme", failing.id)
        assert [a.id for a in by_msg.data] == [a.id for a in failed]
        one = await svix.message_attempt.get("acme", message.id, done.id)
        assert one.response == '{"ok":true}'  # with its content: the SDK asks for none
        assert one.model_copy(update={"response": "{}"}) == done
        # Resend: a new delivery, its attempt a manual one.
        await svix.message_attempt.resend("acme", message.id, "ok")
        again = (await attempts_of("ok", 2))[0]
        assert again.trigger_type == 1 and again.msg_id == message.id
        assert len(rx.received("/ok")) == 2
        with pytest.raises(HttpError) as other:
            await svix.message_attempt.get("acme", failing.id, done.id)
        assert other.value.status_code == 404


async def test_refused_recover_and_send_example(
        make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with admin_api(make_config) as (r, rx), sdk(r) as svix:
        closed = await svix.endpoint.create("acme", EndpointIn(
            url=f"http://127.0.0.1:{free_port()}/", event_types=["lead.lost"]))
        flaky = await svix.endpoint.create("acme", EndpointIn(
            url=f"{rx.url}/flaky", event_types=["lead.lost"], secret=SECRET))
        rx.respond("/flaky", 500, 500, 500)  # every attempt of the first message fails
        since = datetime.now(UTC)
        sent = await svix.message.create("acme", MessageIn(event_type="lead.lost",
                                                           payload={"n": 1}))

        async def failed(endpoint: str) -> bool:
            deliveries = await r.client.get(f"/v1/webhooks/{endpoint}/deliveries",
                                            headers=auth(ACME))
            return [d["status"] for d in deliveries.json()["data"]] == ["failed"]

        await eventually(lambda: failed(closed.id), message="refused connections")
        refused = (await svix.message_attempt.list_by_endpoint("acme", closed.id)).data
        assert {(a.response_status_code, a.status) for a in refused} == {(0, 2)}
        assert refused[0].response == "{}"
        await eventually(lambda: failed(flaky.id), message="a failed delivery")
        out = await svix.endpoint.recover("acme", flaky.id, RecoverIn(since=since))
        assert (out.status, out.task) == ("finished", "endpoint.recover")
        got = await rx.wait_for(4, "/flaky")
        assert got[-1].headers["svix-id"] == sent.id
        verified(SECRET, got[-1])
        # An example goes to the one endpoint named, whatever it subscribes to.
        example = await svix.endpoint.send_example("acme", flaky.id, EventExampleIn(
            event_type="lead.qualified"))
        [*_, arrived] = await rx.wait_for(5, "/flaky")
        assert json.loads(arrived.body) == SAMPLE
        assert arrived.headers["svix-id"] == example.id
        ping = await svix.endpoint.send_example("acme", flaky.id, EventExampleIn(
            event_type="svix.ping"))
        [*_, pinged] = await rx.wait_for(6, "/flaky")
        assert json.loads(pinged.body) == {"success": True} and ping.event_type == "svix.ping"
        assert len(rx.received()) == 6  # nothing went to another endpoint


async def test_errors_are_svixs(make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with admin_api(make_config) as (r, rx):
        async with sdk(r, "not-a-key") as stranger:
            with pytest.raises(HttpError) as unknown:
                await stranger.endpoint.list("acme")
            assert (unknown.value.status_code, unknown.value.code) == (
                401, "authentication_failed")
        async with sdk(r, READER) as reader:
            with pytest.raises(HttpError) as scope:
                await reader.endpoint.create("default", EndpointIn(url=f"{rx.url}/x"))
            assert (scope.value.status_code, scope.value.code) == (403, "insufficient access")
        async with sdk(r, ACME) as tenant:
            with pytest.raises(HttpError) as other:
                await tenant.endpoint.list("default")
            assert (other.value.status_code, other.value.code) == (404, "not_found")
            with pytest.raises(HttpError) as admin_only:
                await tenant.application.create(ApplicationIn(name="New"))
            assert admin_only.value.status_code == 403
            mine = await tenant.application.list()
            assert [a.id for a in mine.data] == ["acme"]
        async with sdk(r, FROZEN) as frozen:
            with pytest.raises(HttpError) as disabled:
                await frozen.endpoint.list("frozen")
            assert disabled.value.status_code == 403
            assert (await frozen.application.get("frozen")).id == "frozen"
        post = r.client.post
        malformed = await post("/api/v1/app/acme/endpoint", content=b"{nope",
                               headers=auth(ADMIN))
        assert malformed.status_code == 422
        assert malformed.json()["detail"][0]["type"] == "value_error.jsondecode"
        too_many = await r.client.get("/api/v1/app/acme/endpoint?limit=251",
                                      headers=auth(ADMIN))
        assert too_many.status_code == 422
        assert too_many.json()["detail"][0]["loc"] == ["query", "limit"]
        bad_iterator = await r.client.get("/api/v1/app/acme/msg?iterator=evt_1",
                                          headers=auth(ADMIN))
        assert bad_iterator.json()["detail"][0]["loc"] == ["query", "iterator"]
        for path, product in [("/api/v1/stream", "Stream"),
                              ("/api/v1/stream/s1/sink", "Stream"),
                              ("/ingest/api/v1/source", "Ingest"),
                              ("/api/v1/app/acme/endpoint/x/transformation", "transformations"),
                              ("/api/v1/stats/usage/app", "statistics")]:
            answer = await r.client.get(path, headers=auth(ADMIN))
            assert answer.status_code == 404, path
            assert answer.json()["code"] == "not_found"
            assert product in answer.json()["detail"] and "relay does not serve" in (
                answer.json()["detail"])
        nothing = await r.client.get("/api/v1/nothing", headers=auth(ADMIN))
        assert nothing.json() == {"code": "not_found", "detail": "Entity not found"}
        method = await r.client.delete("/api/v1/health")
        assert method.status_code == 405 and method.json()["code"] == "method_not_allowed"
        relays = await r.client.get("/v1/webhooks/nope", headers=auth(ADMIN))
        assert relays.json()["error"]["code"] == "not_found"  # /v1 keeps relay's shape
        host = await r.client.get("/api/v1/app", headers={**auth(ADMIN),
                                                          "host": "evil.example"})
        assert host.status_code == 421 and set(host.json()) == {"code", "detail"}
        origin = await post("/api/v1/app/acme/msg", headers={
            **auth(ADMIN), "origin": "https://evil.example"}, json={})
        assert origin.status_code == 403 and set(origin.json()) == {"code", "detail"}


async def test_health_and_portal(make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with admin_api(make_config) as (r, rx), sdk(r) as svix:
        await svix.health.get()
        async with httpx.AsyncClient() as keyless:
            for path in ("/api/v1/health", "/api/v1/health/"):
                assert (await keyless.get(f"{r.url}{path}")).status_code == 204
                assert (await keyless.head(f"{r.url}{path}")).status_code == 204
        theirs = await svix.endpoint.create("acme", EndpointIn(url=f"{rx.url}/p"))
        access = await svix.authentication.app_portal_access("acme", AppPortalAccessIn())
        assert access.url.startswith(f"{r.url}/ui/portal?token=") and access.token
        key = await r.relay.secret_key(sessions.KEY_NAME, sessions.new_key)
        session = sessions.verify(key, access.token, time.time())
        assert session is not None and (session.tenant, session.read_only) == ("acme", False)
        async with httpx.AsyncClient(follow_redirects=True) as browser:
            page = await browser.get(access.url)
            assert page.status_code == 200
            listed = await browser.get(f"{r.url}/ui/t/acme/endpoints")
            assert theirs.id in listed.text and "crm" not in listed.text
        looking = await svix.authentication.app_portal_access("acme", AppPortalAccessIn(
            read_only=True))
        session = sessions.verify(key, looking.token, time.time())
        assert session is not None and session.read_only
        viewer = await svix.authentication.app_portal_access("acme", AppPortalAccessIn(
            capabilities=["ViewBase"]))
        session = sessions.verify(key, viewer.token, time.time())
        assert session is not None and session.read_only


async def test_applications_and_event_types_read(
        make_config: Callable[..., cfgmod.Loaded]) -> None:
    """The config's tenants and event types, read through Svix's API; a change to one is
    a 409 (tests/integration/test_svix_directory.py changes those made as data)."""
    async with admin_api(make_config) as (r, _), sdk(r) as svix:
        apps, iterator = [], None
        while True:
            page = await svix.application.list(ApplicationListOptions(limit=2,
                                                                      iterator=iterator))
            apps += [a.id for a in page.data]
            iterator = page.iterator
            if page.done:
                break
        assert apps == ["acme", "default", "frozen", "limited"]
        acme = await svix.application.get("acme")
        assert (acme.id, acme.name, acme.metadata) == ("acme", "acme", {})
        assert (await svix.application.get_or_create(ApplicationIn(name="x", uid="acme"))
                ) == acme
        refusals: list[tuple[Callable[[], Any], int]] = [
            (lambda: svix.application.create(ApplicationIn(name="n", uid="acme")), 409),
            (lambda: svix.application.patch("acme", ApplicationPatch(name="n")), 409),
            (lambda: svix.application.delete("nobody"), 404),
            (lambda: svix.event_type.create(EventTypeIn(name="lead.lost", description="")),
             409),
        ]
        for call, status in refusals:
            with pytest.raises(HttpError) as refused:
                await call()
            assert refused.value.status_code == status
        types = await svix.event_type.list()
        assert [t.name for t in types.data] == ["billing.paid", "lead.lost", "lead.qualified"]
        assert all(t.schemas is None for t in types.data)
        one = await svix.event_type.get("lead.qualified")
        assert (one.description, one.deprecated) == ("A lead qualified.", False)
        with pytest.raises(HttpError) as missing:
            await svix.event_type.get("relay.endpoint.created")  # relay's own: not listed
        assert missing.value.status_code == 404
