"""Tenants and API keys through /v1 (SPEC §10), over HTTP against a live relay: CRUD,
pagination, the config file's entries read-only and never merged with data (409 both
ways, a clashing file refused at start and on reload), a tenant's delete taking its
webhooks (deliveries cancelled) and keys but not its events, keys that work at once,
lists without key material, revocation and expiry at once, limits and the 403 of a
disabled tenant as for the file's tenants."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from relay import config as cfgmod
from relay.errors import ConfigError
from relay.runtime import Relay
from tests.helpers import (
    ACME,
    ADMIN,
    READER,
    admin_api,
    api_config,
    assert_error,
    auth,
    sha,
)
from tests.receiver import Receiver
from tests.serving import Running, eventually, running

FILE_TENANTS = ["default", "acme", "frozen", "limited"]  # api_config's, in list order


async def make_tenant(r: Running, tenant_id: str, **fields: Any) -> dict[str, Any]:
    response = await r.client.post("/v1/tenants", json={"id": tenant_id, **fields})
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()
    return made


async def make_key(r: Running, tenant: str, scopes: list[str] | None = None,
                   **fields: Any) -> dict[str, Any]:
    response = await r.client.post("/v1/api-keys", json={
        "name": f"{tenant}-key", "scopes": scopes or ["admin"], "tenant": tenant, **fields})
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()
    return made


async def test_tenant_crud(make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with admin_api(make_config) as (r, _):
        made = await make_tenant(r, "globex", name="Globex", metadata={"plan": "pro"},
                                 max_webhooks=3)
        assert set(made) == {"id", "name", "metadata", "max_webhooks", "webhooks_enabled",
                             "source", "created_at"}
        assert made["source"] == "api" and made["webhooks_enabled"] is True
        assert (made["name"], made["metadata"], made["max_webhooks"]) == (
            "Globex", {"plan": "pro"}, 3)
        assert (await r.client.get("/v1/tenants/globex")).json() == made
        plain = await make_tenant(r, "initech")
        assert (plain["name"], plain["metadata"], plain["max_webhooks"]) == ("initech", {}, None)

        listed = (await r.client.get("/v1/tenants")).json()
        assert [t["id"] for t in listed["data"]] == [*FILE_TENANTS, "globex", "initech"]
        assert listed["next"] is None
        default = listed["data"][0]
        assert default["source"] == "config" and default["created_at"]  # the file's too

        changed = await r.client.patch("/v1/tenants/globex", json={
            "name": "Globex Corp", "metadata": {"plan": "free"}, "max_webhooks": None,
            "webhooks_enabled": False})
        assert changed.status_code == 200, changed.text
        assert {k: changed.json()[k] for k in ("name", "metadata", "max_webhooks",
                                                "webhooks_enabled")} == {
            "name": "Globex Corp", "metadata": {"plan": "free"}, "max_webhooks": None,
            "webhooks_enabled": False}
        # Absent fields stay; null is refused where it means nothing.
        again = await r.client.patch("/v1/tenants/globex", json={"name": "G"})
        assert again.json()["metadata"] == {"plan": "free"}
        assert_error(await r.client.patch("/v1/tenants/globex", json={"name": None}), 422,
                     "validation_failed")

        assert (await r.client.delete("/v1/tenants/globex")).status_code == 204
        assert_error(await r.client.get("/v1/tenants/globex"), 404, "not_found")
        assert_error(await r.client.delete("/v1/tenants/globex"), 404, "not_found")
        assert_error(await r.client.patch("/v1/tenants/nobody", json={"name": "x"}), 404,
                     "not_found")
        # Only admins manage tenants and keys.
        for method, path in (("GET", "/v1/tenants"), ("POST", "/v1/tenants"),
                             ("GET", "/v1/api-keys"), ("DELETE", "/v1/api-keys/key_x")):
            assert_error(await r.client.request(method, path, json={"id": "x"},
                                                headers=auth(READER)), 403, "forbidden")


async def test_tenant_fields_are_checked(make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with admin_api(make_config) as (r, _):
        for body, path in [({"id": "no spaces"}, "id"), ({"id": "x" * 65}, "id"),
                           ({"id": "ok", "max_webhooks": -1}, "max_webhooks"),
                           ({"id": "ok", "metadata": {"a": 1}}, "metadata.a"),
                           ({"id": "ok", "surprise": 1}, "surprise")]:
            error = assert_error(await r.client.post("/v1/tenants", json=body), 422,
                                 "validation_failed")
            assert [d["path"] for d in error["details"]] == [path], body


async def test_lists_page_with_relays_cursors(make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with admin_api(make_config) as (r, _):
        for n in range(5):
            await make_tenant(r, f"t{n}")
        seen, after, pages = [], None, 0
        while True:
            page = (await r.client.get("/v1/tenants", params={
                "limit": 3, **({"after": after} if after else {})})).json()
            seen += [t["id"] for t in page["data"]]
            pages += 1
            after = page["next"]
            if after is None:
                break
            if pages == 2:  # the last of a page deleted: the next still resumes after it
                assert seen[-1] == "t1"
                assert (await r.client.delete("/v1/tenants/t1")).status_code == 204
        assert seen == [*FILE_TENANTS, "t0", "t1", "t2", "t3", "t4"] and pages == 3
        first = (await r.client.get("/v1/tenants", params={"limit": 1})).json()
        assert_error(await r.client.get("/v1/api-keys", params={"after": first["next"]}),
                     400, "invalid_cursor")
        assert_error(await r.client.get("/v1/tenants", params={"after": "t1"}), 400,
                     "invalid_cursor")


async def test_the_files_tenants_are_read_only_and_never_taken(
        make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with admin_api(make_config) as (r, _):
        for tenant_id in ("acme", "default"):
            error = assert_error(await r.client.post("/v1/tenants", json={"id": tenant_id}),
                                 409, "conflict")
            assert "config file" in error["message"] or "always exists" in error["message"]
            assert_error(await r.client.patch(f"/v1/tenants/{tenant_id}", json={"name": "x"}),
                         409, "conflict")
            assert_error(await r.client.delete(f"/v1/tenants/{tenant_id}"), 409, "conflict")
        acme = (await r.client.get("/v1/tenants/acme")).json()
        assert acme["source"] == "config" and acme["name"] == "acme"
        await make_tenant(r, "globex")
        assert_error(await r.client.post("/v1/tenants", json={"id": "globex"}), 409,
                     "conflict")


async def test_a_file_defining_a_data_tenant_is_refused_at_start_and_on_reload(
        make_config: Callable[..., cfgmod.Loaded], tmp_path: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    config = tmp_path / "relay.toml"
    storage = f'[storage]\npath = "{tmp_path / "relay.db"}"\n'
    config.write_text(storage)
    async with running(cfgmod.load(config)) as r:
        await make_tenant(r, "globex")
        # An edit adding the data tenant to the file: refused, the running config stays.
        config.write_text(storage + '[[tenants]]\nid = "globex"\nmax_webhooks = 1\n')
        caplog.set_level(logging.ERROR, logger="relay")
        assert not await r.relay.reload()
        [refusal] = [getattr(rec, "fields", {}) for rec in caplog.records
                     if rec.msg == "config_reload"]
        assert "tenants[0].id: tenant 'globex' exists as data" in refusal["error"]
        assert (await r.client.get("/v1/tenants/globex")).json()["source"] == "api"
    relay = Relay(cfgmod.load(config))
    with pytest.raises(ConfigError) as refused:
        await relay.start()
    assert refused.value.details == [
        "tenants[0].id: tenant 'globex' exists as data (made through the API as 'globex'): "
        "delete it there, or give this one another id"]


async def test_a_new_key_works_at_once_and_lists_show_no_key_material(
        make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with admin_api(make_config) as (r, rx):
        await make_tenant(r, "globex")
        made = await make_key(r, "globex", ["webhooks:read", "webhooks:write",
                                            "events:write"])
        key = made.pop("key")
        assert key.startswith("rk_") and len(key) == 46
        assert made["id"].startswith("key_") and made["source"] == "api"
        assert made["scopes"] == sorted(["webhooks:read", "webhooks:write", "events:write"])
        hook = await r.client.post("/v1/webhooks", headers=auth(key), json={
            "name": "h", "url": f"{rx.url}/globex", "events": ["lead.*"]})
        assert hook.status_code == 201 and hook.json()["tenant"] == "globex"
        sent = await r.client.post("/v1/events", headers=auth(key),
                                   json={"type": "lead.qualified", "data": {}})
        assert sent.status_code == 202
        [got] = await rx.wait_for(1, "/globex")
        assert got.json()["tenant_id"] == "globex"

        listed = await r.client.get("/v1/api-keys")
        assert key not in listed.text and sha(key) not in listed.text
        keys = listed.json()["data"]
        assert [(k["name"], k["source"]) for k in keys][-1] == ("globex-key", "api")
        assert all("key" not in k for k in keys)
        config_keys = [k for k in keys if k["source"] == "config"]
        assert len(config_keys) == 6 and all(k["id"] is None for k in config_keys)
        mine = (await r.client.get("/v1/api-keys", params={"tenant": "globex"})).json()
        assert [k["id"] for k in mine["data"]] == [made["id"]]

        assert (await r.client.delete(f"/v1/api-keys/{made['id']}")).status_code == 204
        assert_error(await r.client.get("/v1/webhooks", headers=auth(key)), 401,
                     "unauthorized")
        assert_error(await r.client.delete(f"/v1/api-keys/{made['id']}"), 404, "not_found")
        assert_error(await r.client.delete("/v1/api-keys/no%20such"), 404, "not_found")


async def test_key_fields_are_checked(make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with admin_api(make_config) as (r, _):
        for body, paths in [
            ({"name": "k", "scopes": [], "tenant": "acme"}, ["scopes"]),
            ({"name": "k", "scopes": ["root"], "tenant": "acme"}, ["scopes[0]"]),
            ({"name": "k", "scopes": ["admin"], "tenant": "nobody"}, ["tenant"]),
            ({"name": "k", "scopes": ["admin"], "tenant": "acme",
              "expires_at": "2001-01-01T00:00:00Z"}, ["expires_at"]),
        ]:
            error = assert_error(await r.client.post("/v1/api-keys", json=body), 422,
                                 "validation_failed")
            assert [d["path"] for d in error["details"]] == paths, body


async def test_an_expired_key_is_refused_naming_its_expiry(
        make_config: Callable[..., cfgmod.Loaded]) -> None:
    ahead = [0.0]
    async with Receiver() as rx, running(api_config(make_config, rx.url),
                                         clock=lambda: time.time() + ahead[0]) as r:
        r.client.headers.update(auth(ADMIN))
        expiry = datetime.fromtimestamp(int(time.time()) + 3600, UTC)
        made = await make_key(r, "acme", expires_at=expiry.isoformat())
        assert made["expires_at"] == expiry.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert (await r.client.get("/v1/webhooks", headers=auth(made["key"]))).status_code \
            == 200
        ahead[0] = 3601.0
        error = assert_error(await r.client.get("/v1/webhooks", headers=auth(made["key"])),
                             401, "unauthorized")
        assert error["message"] == (
            f"API key 'acme-key' expired at {expiry.strftime('%Y-%m-%dT%H:%M:%SZ')}")


async def test_deleting_a_tenant_takes_its_webhooks_and_keys_and_keeps_its_events(
        make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with admin_api(make_config) as (r, rx):
        await make_tenant(r, "globex")
        key = (await make_key(r, "globex"))["key"]
        other = (await make_key(r, "acme"))["key"]
        rx.respond("/down", *[500] * 10)
        hooks = []
        for name in ("a", "b"):
            hook = await r.client.post("/v1/webhooks", headers=auth(key), json={
                "name": name, "url": f"{rx.url}/down", "events": ["lead.*"],
                "retry_schedule": ["1h"]})
            hooks.append(hook.json()["id"])
        sent = await r.client.post("/v1/events", headers=auth(key),
                                   json={"type": "lead.qualified", "data": {}})
        event_id = sent.json()["id"]
        await rx.wait_for(2, "/down")
        store = r.relay.store
        assert_error(await r.client.delete("/v1/tenants/globex", headers=auth(ACME)), 403,
                     "forbidden")
        assert (await r.client.delete("/v1/tenants/globex")).status_code == 204
        assert [e.id for e in await store.list_endpoints("globex")] == []
        assert not set(hooks) & set(r.relay.endpoints)
        assert {d.state for d in await store.deliveries_of(event_id)} == {"cancelled"}
        assert await store.get_event(event_id, "globex") is not None
        assert_error(await r.client.get("/v1/webhooks", headers=auth(key)), 401,
                     "unauthorized")
        assert (await r.client.get("/v1/webhooks", headers=auth(other))).status_code == 200


async def test_data_tenants_have_their_limits_as_the_files_do(
        make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with admin_api(make_config) as (r, rx):
        await make_tenant(r, "small", max_webhooks=1)
        key = (await make_key(r, "small"))["key"]
        body = {"name": "h", "url": f"{rx.url}/small", "events": ["lead.*"]}
        assert (await r.client.post("/v1/webhooks", json=body,
                                    headers=auth(key))).status_code == 201
        assert_error(await r.client.post("/v1/webhooks", json=body, headers=auth(key)),
                     429, "too_many_requests")
        await r.client.patch("/v1/tenants/small", json={"webhooks_enabled": False})
        for method, path, json in [("GET", "/v1/webhooks", None),
                                   ("POST", "/v1/events", {"type": "lead.qualified",
                                                           "data": {}})]:
            assert_error(await r.client.request(method, path, json=json, headers=auth(key)),
                         403, "forbidden")
        portal = await r.client.post("/v1/portal-sessions", json={"tenant": "small"})
        assert_error(portal, 403, "forbidden")
        await r.client.patch("/v1/tenants/small", json={"webhooks_enabled": True})
        assert (await r.client.get("/v1/webhooks", headers=auth(key))).status_code == 200
        # A tenant made a moment ago takes a portal link (the file needs no edit).
        await make_tenant(r, "fresh")
        portal = await r.client.post("/v1/portal-sessions", json={"tenant": "fresh"})
        assert portal.status_code == 201, portal.text


async def test_two_relays_on_postgres_agree_within_a_second(tmp_path: Any,
                                                           pg_url: str) -> None:
    """A tenant and a key made on one relay work on the other within a second (NOTIFY
    relay_directory, else the heartbeat); a key revoked and a tenant disabled there are
    refused here as soon."""
    text = (f'[storage]\nurl = "{pg_url}"\n[[api_keys]]\nname = "admin"\n'
            f'key_sha256 = "{sha(ADMIN)}"\nscopes = ["admin"]\n')
    (tmp_path / "one.toml").write_text(text)
    (tmp_path / "two.toml").write_text(text)
    async with running(cfgmod.load(tmp_path / "one.toml")) as a, \
            running(cfgmod.load(tmp_path / "two.toml")) as b:
        for r in (a, b):
            r.client.headers.update(auth(ADMIN))

        async def on_b(key: str, status: int, path: str = "/v1/webhooks") -> bool:
            return (await b.client.get(path, headers=auth(key))).status_code == status

        await make_tenant(a, "globex")
        key = (await make_key(a, "globex"))["key"]
        await eventually(lambda: on_b(key, 200), 1.0, "the new key to work on the other")
        portal = await b.client.post("/v1/portal-sessions", json={"tenant": "globex"})
        assert portal.status_code == 201, portal.text
        assert (await b.client.get("/v1/tenants/globex")).json()["source"] == "api"

        await a.client.patch("/v1/tenants/globex", json={"webhooks_enabled": False})
        await eventually(lambda: on_b(key, 403), 1.0, "the tenant disabled on the other")
        await a.client.patch("/v1/tenants/globex", json={"webhooks_enabled": True})
        await eventually(lambda: on_b(key, 200), 1.0, "the tenant enabled again")

        [made] = (await a.client.get("/v1/api-keys", params={"tenant": "globex"})).json()[
            "data"]
        assert (await a.client.delete(f"/v1/api-keys/{made['id']}")).status_code == 204
        await eventually(lambda: on_b(key, 401), 1.0, "the revoked key refused on the other")
