"""The console's tenant, API key and event type pages over HTTP, against a live relay with
the session cookie and CSRF token a browser would carry: each change and its refusals
(a portal session cannot reach them, a POST without the token changes nothing, the
file's tenants and keys stay the file's), every form error beside its field with the
values kept, and what /v1 sees after each."""

from __future__ import annotations

import html
import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx

from relay import config as cfgmod
from tests.helpers import ADMIN, admin_api, auth
from tests.serving import Running


def _csrf(page: str) -> str:
    found = re.search(r'"X-CSRF-Token": "([^"]+)"', page)
    assert found is not None, "no CSRF token on the page"
    return found.group(1)


@asynccontextmanager
async def operator(r: Running) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A browser signed in with the admin key, and its CSRF token."""
    async with httpx.AsyncClient(base_url=r.url, timeout=10) as browser:
        login = await browser.get("/ui/login")
        signed = await browser.post("/ui/login", data={
            "csrf": _csrf(login.text), "key": ADMIN, "next": "/ui/tenants"},
                                 follow_redirects=True)
        assert signed.status_code == 200 and "<h1>Tenants</h1>" in signed.text, signed.text
        yield browser, _csrf(signed.text)


def field_error(page: str, name: str) -> str:
    found = re.search(rf'<p class="field-error" id="{re.escape(name)}-error">([^<]*)</p>', page)
    assert found is not None, f"no error beside {name}: {page}"
    return html.unescape(found.group(1))


async def test_operator_creates_edits_disables_and_deletes_a_tenant(
        make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with admin_api(make_config) as (r, rx), operator(r) as (ui, csrf):
        listed = await ui.get("/ui/tenants")
        assert listed.status_code == 200
        for file_tenant in ("default", "acme", "frozen", "limited"):
            assert f'href="/ui/tenants/{file_tenant}"' in listed.text
        assert 'href="/ui/endpoints?tenant=default">2</a>' in listed.text  # crm and fixed
        assert 'href="/ui/tenants"' in listed.text and 'href="/ui/api-keys"' in listed.text

        # Refused forms come back with the values and the message beside the field.
        form = {"csrf": csrf, "id": "glo bex", "name": "Globex", "max_webhooks": "3",
                "metadata": "plan=pro\nregion=eu", "webhooks_enabled": "on"}
        bad = await ui.post("/ui/tenants", data=form)
        assert bad.status_code == 422 and "should match pattern" in field_error(bad.text, "id")
        assert 'value="glo bex"' in bad.text and "plan=pro\nregion=eu</textarea>" in bad.text
        bad = await ui.post("/ui/tenants", data={**form, "id": "globex", "metadata": "plan"})
        assert bad.status_code == 422
        assert field_error(bad.text, "metadata") == "line 1: write it as key=value"
        bad = await ui.post("/ui/tenants", data={**form, "id": "globex", "max_webhooks": "-1"})
        assert bad.status_code == 422 and field_error(bad.text, "max_webhooks")
        taken = await ui.post("/ui/tenants", data={**form, "id": "acme"})
        assert taken.status_code == 409
        assert "defined in the config file" in field_error(taken.text, "id")
        assert [t["id"] for t in (await r.client.get("/v1/tenants")).json()["data"]] == [
            "default", "acme", "frozen", "limited"]  # nothing made
        forged = await ui.post("/ui/tenants", data={**form, "id": "globex", "csrf": "forged"})
        assert forged.status_code == 403
        assert (await r.client.get("/v1/tenants/globex")).status_code == 404

        made = await ui.post("/ui/tenants", data={**form, "id": "globex"},
                             follow_redirects=False)
        assert made.status_code == 303
        assert made.headers["location"] == "/ui/tenants/globex?done=tenant-created"
        tenant = (await r.client.get("/v1/tenants/globex")).json()
        assert (tenant["name"], tenant["metadata"], tenant["max_webhooks"],
                tenant["webhooks_enabled"]) == ("Globex", {"plan": "pro", "region": "eu"}, 3, True)
        page = await ui.get("/ui/tenants/globex?done=tenant-created")
        assert "Tenant created." in page.text and "plan=pro" in page.text
        assert 'href="/ui/endpoints?tenant=globex"' in page.text

        # Edit: a refusal changes nothing; a save changes what the form sends.
        edit = await ui.get("/ui/tenants/globex/edit")
        assert "plan=pro\nregion=eu</textarea>" in edit.text and 'value="3"' in edit.text
        changes = {"csrf": csrf, "name": "Globex Corp", "max_webhooks": "many",
                   "metadata": "plan=team"}
        bad = await ui.post("/ui/tenants/globex/edit", data=changes)
        assert bad.status_code == 422 and "valid integer" in field_error(bad.text, "max_webhooks")
        assert 'value="Globex Corp"' in bad.text
        assert (await r.client.get("/v1/tenants/globex")).json()["name"] == "Globex"
        saved = await ui.post("/ui/tenants/globex/edit", data={**changes, "max_webhooks": ""},
                              follow_redirects=False)
        assert saved.status_code == 303
        tenant = (await r.client.get("/v1/tenants/globex")).json()
        assert (tenant["name"], tenant["metadata"], tenant["max_webhooks"]) == (
            "Globex Corp", {"plan": "team"}, None)

        # Disable and enable: its webhook routes answer 403 in between.
        key = await r.client.post("/v1/api-keys", json={
            "name": "globex-key", "scopes": ["webhooks:write"], "tenant": "globex"})
        secret = key.json()["key"]
        hook = await r.client.post("/v1/webhooks", headers=auth(secret), json={
            "name": "g", "url": f"{rx.url}/g", "events": ["*"]})
        assert hook.status_code == 201, hook.text
        off = await ui.post("/ui/tenants/globex/state", data={"csrf": csrf, "change": "disable"},
                            follow_redirects=False)
        assert off.headers["location"] == "/ui/tenants/globex?done=tenant-disabled"
        assert (await r.client.get("/v1/tenants/globex")).json()["webhooks_enabled"] is False
        on = await ui.post("/ui/tenants/globex/state", data={"csrf": csrf, "change": "enable"},
                           follow_redirects=False)
        assert on.status_code == 303
        assert (await r.client.get("/v1/tenants/globex")).json()["webhooks_enabled"] is True

        # Delete: the confirm page says what goes; its endpoints and keys go with it.
        confirm = await ui.get("/ui/tenants/globex/delete")
        assert confirm.status_code == 200
        for said in ("unfinished deliveries are cancelled", "API keys are revoked (1 now)",
                     "endpoints are deleted (1 now)", "events are kept until retention"):
            assert said in confirm.text, said
        assert (await ui.post("/ui/tenants/globex/delete", data={})).status_code == 403
        assert (await r.client.get("/v1/tenants/globex")).status_code == 200
        gone = await ui.post("/ui/tenants/globex/delete", data={"csrf": _csrf(confirm.text)},
                             follow_redirects=False)
        assert gone.headers["location"] == "/ui/tenants?done=tenant-deleted&n=1"
        assert (await r.client.get("/v1/tenants/globex")).status_code == 404
        assert (await r.client.get(f"/v1/webhooks/{hook.json()['id']}")).status_code == 404
        assert (await r.client.get("/v1/webhooks", headers=auth(secret))).status_code == 401


async def test_the_files_tenants_are_shown_and_left_to_the_file(
        make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with admin_api(make_config) as (r, _), operator(r) as (ui, csrf):
        page = await ui.get("/ui/tenants/frozen")
        assert page.status_code == 200 and "defines this tenant: change it there" in page.text
        assert "/ui/tenants/frozen/edit" not in page.text
        assert "/ui/tenants/frozen/delete" not in page.text
        for path, data in (("edit", {"name": "x"}), ("state", {"change": "enable"}),
                           ("delete", {})):
            refused = await ui.post(f"/ui/tenants/frozen/{path}", data={"csrf": csrf, **data})
            assert refused.status_code == 409, path
            assert "defined in the config file" in refused.text
        for path in ("edit", "delete"):
            assert (await ui.get(f"/ui/tenants/default/{path}")).status_code == 409
        assert (await r.client.get("/v1/tenants/frozen")).json()["webhooks_enabled"] is False
        assert (await ui.get("/ui/tenants/nope")).status_code == 404


async def test_operator_creates_a_key_shown_once_and_revokes_it(
        make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with admin_api(make_config) as (r, _), operator(r) as (ui, csrf):
        new = await ui.get("/ui/api-keys/new?tenant=acme")
        assert '<option value="acme" selected>' in new.text
        for scope in ("events:write", "webhooks:read", "webhooks:write", "admin"):
            assert f'name="scope-{scope}"' in new.text
        form = {"csrf": csrf, "name": "acme-billing", "tenant": "acme",
                "scope-webhooks:read": "on", "expires_at": "2001-01-01T00:00:00"}
        bad = await ui.post("/ui/api-keys", data=form)
        assert bad.status_code == 422 and field_error(bad.text, "expires_at") == (
            "must be in the future")
        assert 'value="acme-billing"' in bad.text
        assert 'name="scope-webhooks:read" value="on" checked' in bad.text
        bad = await ui.post("/ui/api-keys", data={"csrf": csrf, "name": "x", "tenant": "acme"})
        assert bad.status_code == 422 and field_error(bad.text, "scopes")
        bad = await ui.post("/ui/api-keys", data={**form, "tenant": "nope", "expires_at": ""})
        assert bad.status_code == 422 and field_error(bad.text, "tenant") == (
            "unknown tenant 'nope'")
        assert all(k["source"] == "config"
                   for k in (await r.client.get("/v1/api-keys")).json()["data"])

        made = await ui.post("/ui/api-keys", data={**form, "expires_at": "2099-01-01T00:00:00"})
        assert made.status_code == 200 and "API key created" in made.text
        found = re.search(r'id="api-key" class="secret" value="(rk_[^"]+)"', made.text)
        assert found is not None
        secret = found.group(1)
        assert 'src="/ui/static/copy.js"' in made.text and 'data-copy="api-key"' in made.text
        assert (await ui.get("/ui/static/copy.js")).status_code == 200
        # It works at once, in its tenant, and is never shown again.
        hooks = await r.client.get("/v1/webhooks", headers=auth(secret))
        assert hooks.status_code == 200
        [stored] = [k for k in (await r.client.get("/v1/api-keys")).json()["data"]
                    if k["source"] == "api"]
        assert (stored["name"], stored["tenant"], stored["scopes"], stored["expires_at"]) == (
            "acme-billing", "acme", ["webhooks:read"], "2099-01-01T00:00:00Z")
        listed = await ui.get("/ui/api-keys")
        assert secret not in listed.text and "acme-billing" in listed.text
        assert listed.text.count("in the file") == 6  # api_config's keys: no revoke
        assert f'href="/ui/api-keys/{stored["id"]}/revoke"' in listed.text
        only_acme = await ui.get("/ui/api-keys?tenant=acme")
        assert "acme-billing" in only_acme.text and ">reader<" not in only_acme.text

        confirm = await ui.get(f"/ui/api-keys/{stored['id']}/revoke")
        assert confirm.status_code == 200 and "relay refuses it" in confirm.text
        assert "You signed in with this key" not in confirm.text
        forged = await ui.post(f"/ui/api-keys/{stored['id']}/revoke", data={"csrf": "x"})
        assert forged.status_code == 403
        assert (await r.client.get("/v1/webhooks", headers=auth(secret))).status_code == 200
        revoked = await ui.post(f"/ui/api-keys/{stored['id']}/revoke", data={"csrf": csrf},
                                follow_redirects=False)
        assert revoked.headers["location"] == "/ui/api-keys?done=key-revoked"
        assert (await r.client.get("/v1/webhooks", headers=auth(secret))).status_code == 401
        again = await ui.post(f"/ui/api-keys/{stored['id']}/revoke", data={"csrf": csrf})
        assert again.status_code == 404
        assert (await ui.get("/ui/api-keys/admin/revoke")).status_code == 404  # a file key


async def test_a_portal_session_never_reaches_tenants_or_keys(
        make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with admin_api(make_config) as (r, _):
        for read_only in (False, True):
            link = (await r.client.post("/v1/portal-sessions", json={
                "tenant": "acme", "read_only": read_only})).json()["url"]
            async with httpx.AsyncClient(timeout=10) as portal:
                entry = await portal.get(link)
                assert entry.status_code == 200
                page = await portal.get(f"{r.url}/ui/t/acme/endpoints")
                assert page.status_code == 200 and "/ui/tenants" not in page.text
                assert "/ui/api-keys" not in page.text
                csrf = _csrf(page.text)
                for path in ("/ui/tenants", "/ui/tenants/acme", "/ui/tenants/new",
                             "/ui/tenants/acme/edit", "/ui/tenants/acme/delete",
                             "/ui/api-keys", "/ui/api-keys/new"):
                    assert (await portal.get(f"{r.url}{path}")).status_code == 404, path
                for path, data in (("/ui/tenants", {"id": "evil"}),
                                   ("/ui/tenants/acme/state", {"change": "disable"}),
                                   ("/ui/tenants/acme/delete", {}),
                                   ("/ui/api-keys", {"name": "evil", "tenant": "acme",
                                                     "scope-admin": "on"})):
                    refused = await portal.post(f"{r.url}{path}", data={"csrf": csrf, **data})
                    assert refused.status_code == 404, path
        tenants = (await r.client.get("/v1/tenants")).json()["data"]
        assert "evil" not in [t["id"] for t in tenants]
        assert all(k["name"] != "evil" for k in (await r.client.get("/v1/api-keys")).json()["data"])
        # Nobody signed in: pages go to the login form, changes are refused.
        async with httpx.AsyncClient(base_url=r.url, timeout=10) as stranger:
            page = await stranger.get("/ui/tenants", follow_redirects=False)
            assert page.status_code == 303 and page.headers["location"].startswith("/ui/login")
            form = await stranger.get("/ui/login")
            refused = await stranger.post("/ui/api-keys", data={"csrf": _csrf(form.text)})
            assert refused.status_code == 401


async def test_operator_creates_edits_deprecates_and_deletes_an_event_type(
        make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with admin_api(make_config) as (r, _), operator(r) as (ui, csrf):
        listed = await ui.get("/ui/event-types")
        assert "/ui/event-types/lead.qualified/edit" not in listed.text  # the file's
        assert 'href="/ui/event-types/new"' in listed.text
        schema = '{"type": "object", "required": ["invoice_id"]}'
        form = {"csrf": csrf, "name": "invoice.paid", "description": "An invoice was paid.",
                "sample": '{"amount": 5}', "schema": schema}
        bad = await ui.post("/ui/event-types", data=form)
        assert bad.status_code == 422 and "invoice_id" in field_error(bad.text, "sample")
        assert "An invoice was paid.</textarea>" in bad.text
        bad = await ui.post("/ui/event-types", data={**form, "schema": "{nope"})
        assert field_error(bad.text, "schema").startswith("not valid JSON")
        taken = await ui.post("/ui/event-types", data={**form, "name": "lead.lost"})
        assert taken.status_code == 409 and "declared in" in field_error(taken.text, "name")
        assert (await r.client.get("/v1/event-types/invoice.paid")).status_code == 404
        made = await ui.post("/ui/event-types", follow_redirects=False, data={
            **form, "sample": '{"invoice_id": "in_1"}'})
        assert made.headers["location"] == "/ui/event-types?done=type-created"
        stored = (await r.client.get("/v1/event-types/invoice.paid")).json()
        assert (stored["description"], stored["sample"], stored["schema"]) == (
            "An invoice was paid.", {"invoice_id": "in_1"}, json.loads(schema))

        edit = await ui.get("/ui/event-types/invoice.paid/edit")
        assert "&#34;invoice_id&#34;: &#34;in_1&#34;" in edit.text
        bad = await ui.post("/ui/event-types/invoice.paid/edit", data={
            "csrf": csrf, "description": "Paid.", "sample": "{}", "schema": schema})
        assert bad.status_code == 422 and field_error(bad.text, "sample")
        saved = await ui.post("/ui/event-types/invoice.paid/edit", follow_redirects=False,
                              data={"csrf": csrf, "description": "Paid.", "sample": "{}",
                                    "schema": ""})
        assert saved.status_code == 303
        stored = (await r.client.get("/v1/event-types/invoice.paid")).json()
        assert (stored["description"], stored["schema"]) == ("Paid.", None)
        for change, expected in (("deprecate", True), ("undeprecate", False)):
            done = await ui.post("/ui/event-types/invoice.paid/deprecate",
                                 data={"csrf": csrf, "change": change}, follow_redirects=False)
            assert done.status_code == 303
            stored = (await r.client.get("/v1/event-types/invoice.paid")).json()
            assert stored["deprecated"] is expected

        for path, data in (("edit", {"description": "x"}), ("deprecate", {"change": "deprecate"}),
                           ("delete", {})):
            refused = await ui.post(f"/ui/event-types/lead.lost/{path}",
                                    data={"csrf": csrf, **data})
            assert refused.status_code == 409, path
        assert (await ui.get("/ui/event-types/relay.endpoint.disabled/delete")).status_code == 409
        confirm = await ui.get("/ui/event-types/invoice.paid/delete")
        assert "refused as unknown" in confirm.text
        assert (await ui.post("/ui/event-types/invoice.paid/delete", data={})).status_code == 403
        gone = await ui.post("/ui/event-types/invoice.paid/delete", data={"csrf": csrf},
                             follow_redirects=False)
        assert gone.headers["location"] == "/ui/event-types?done=type-deleted"
        assert (await r.client.get("/v1/event-types/invoice.paid")).status_code == 404

        # A portal session sees the catalog, changes nothing.
        link = (await r.client.post("/v1/portal-sessions", json={"tenant": "acme"})).json()
        async with httpx.AsyncClient(timeout=10) as portal:
            await portal.get(link["url"])
            page = await portal.get(f"{r.url}/ui/event-types")
            assert page.status_code == 200 and "lead.qualified" in page.text
            assert "/ui/event-types/new" not in page.text
            assert (await portal.get(f"{r.url}/ui/event-types/new")).status_code == 404
            refused = await portal.post(f"{r.url}/ui/event-types", data={
                "csrf": _csrf(page.text), "name": "evil.type"})
            assert refused.status_code == 404
        assert (await r.client.get("/v1/event-types/evil.type")).status_code == 404
