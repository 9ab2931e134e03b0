"""The console's HTTP contract without a browser: cookie flags, open mode, CSP and frame
ancestors, the store reads behind the overview, the endpoint form's ordering field and
refused cancels."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from relay import config as cfgmod
from relay.storage.sqlite import SQLiteStore
from relay.ui.overview import _LastHour
from tests.helpers import auth, sha
from tests.receiver import Receiver
from tests.serving import eventually, running

ADMIN = "k-console-admin-0123456789"
KEYS = [{"name": "admin", "key_sha256": sha(ADMIN), "scopes": ["admin"]}]


async def test_cookie_is_secure_off_loopback_and_strict_everywhere(
        make_config: Callable[..., cfgmod.Loaded]) -> None:
    for server, secure in (({"listen": "0.0.0.0:8080", "public_url": "https://relay.example"},
                            True), ({"listen": "127.0.0.1:8080"}, False)):
        loaded = make_config(server=server, api_keys=KEYS)
        async with running(loaded) as r:
            response = await r.client.get("/ui/login")
            assert response.status_code == 200
            cookie = response.headers["set-cookie"].lower()
            assert "httponly" in cookie and "samesite=strict" in cookie and "path=/ui/" in cookie
            assert ("; secure" in cookie) is secure, (server, cookie)
            # Not signed in: pages send to the login form, POSTs are refused.
            page = await r.client.get("/ui/t/default/endpoints", follow_redirects=False)
            assert page.status_code == 303
            assert page.headers["location"] == "/ui/login?next=%2Fui%2Ft%2Fdefault%2Fendpoints"


async def test_open_on_loopback_without_api_keys(
        make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with running(make_config()) as r:
        overview = await r.client.get("/ui/")
        assert overview.status_code == 200 and "Overview" in overview.text
        assert "No endpoints yet" in overview.text
        listed = await r.client.get("/ui/t/default/endpoints")
        assert "add <code>[[endpoints]]</code> to relay.toml" in listed.text
        assert (await r.client.get("/ui", follow_redirects=False)).status_code in (307, 308)


async def test_csp_and_frame_ancestors_and_theme(
        make_config: Callable[..., cfgmod.Loaded]) -> None:
    loaded = make_config(api_keys=KEYS, tenants=[{"id": "acme"}],
                         ui={"frame_ancestors": ["https://app.example.com"],
                             "accent": "#0f766e", "title": "Acme Hooks",
                             "logo_url": "https://cdn.example.com/logo.svg"})
    async with running(loaded) as r:
        login = await r.client.get("/ui/login")
        csp = login.headers["content-security-policy"]
        assert "script-src 'self';" in csp and "unsafe" not in csp
        assert "frame-ancestors 'none'" in csp  # the operator console is never framed
        assert "img-src 'self' data: https://cdn.example.com" in csp
        assert "<title>Sign in · Acme Hooks</title>" in login.text
        assert login.headers["referrer-policy"] == "same-origin"
        link = (await r.client.post("/v1/portal-sessions", headers=auth(ADMIN),
                                    json={"tenant": "acme"})).json()["url"]
        entry = await r.client.get(link)
        assert entry.status_code == 200
        assert 'content="0;url=/ui/t/acme/endpoints"' in entry.text
        page = await r.client.get("/ui/t/acme/endpoints")
        assert page.status_code == 200
        assert page.headers["content-security-policy"].endswith(
            "frame-ancestors 'self' https://app.example.com")
        theme = await r.client.get("/ui/theme.css")
        assert theme.headers["content-type"].startswith("text/css")
        assert "--accent: #0f766e;" in theme.text
        htmx = await r.client.get("/ui/static/htmx-2.0.4.min.js")
        assert htmx.status_code == 200 and len(htmx.content) > 40_000


async def test_overview_reads_count_attempts_per_minute_and_recent_failures(
        make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with Receiver() as rx:
        loaded = make_config(tenants=[{"id": "acme"}], endpoints=[
            {"id": "ok", "url": f"{rx.url}/ok"},
            {"id": "bad", "url": f"{rx.url}/status/500", "tenant": "acme"}])
        async with running(loaded) as r:
            since = time.time() - 60
            assert await r.relay.store.outcomes_per_minute(since) == []
            assert await r.relay.store.recent_failures(since, 10) == []
            for _ in range(2):
                assert (await r.send()).status_code == 202
                assert (await r.send(tenant="acme")).status_code == 202
            # two events to ok (1 attempt each), two to bad (3 attempts each: retries)

            async def settled() -> bool:
                counts = await r.relay.store.counts()
                return counts.get("succeeded", 0) == 2 and counts.get("failed", 0) == 2

            await eventually(settled, message="2 succeeded and 2 failed deliveries")
            buckets = await r.relay.store.outcomes_per_minute(since)
            assert sum(b.succeeded for b in buckets) == 2
            assert sum(b.failed for b in buckets) == 6
            assert all(b.minute % 60 == 0 for b in buckets)
            failures = await r.relay.store.recent_failures(since, 4)
            assert len(failures) == 4
            assert {(f.endpoint_id, f.tenant, f.status) for f in failures} == {
                ("bad", "acme", 500)}
            assert [f.started_at for f in failures] == sorted(
                (f.started_at for f in failures), reverse=True)
            assert await r.relay.store.outcomes_per_minute(time.time() + 60) == []
            overview = await r.client.get("/ui/")
            assert "succeeded 2" in overview.text and "failed 6" in overview.text
            assert 'href="/ui/t/acme/endpoints/bad"' in overview.text


async def test_chart_reads_each_settled_minute_once(tmp_path: Path) -> None:
    """Minutes that ended over two minutes ago are kept; only recent ones are re-read."""
    store = SQLiteStore(tmp_path / "relay.db")
    await store.open()
    try:
        def attempt(at: float, status: int) -> None:
            with sqlite3.connect(tmp_path / "relay.db") as db:
                db.execute("INSERT INTO attempts (delivery_id, n, started_at, status) "
                           "VALUES (1, 1, ?, ?)", (at, status))

        now = 1_800_000_000.0 + 30  # half past a minute
        attempt(now - 600, 200)
        attempt(now - 600, 500)
        attempt(now - 10, 200)
        last_hour = _LastHour()
        first = await last_hour.read(store, now)
        assert [(b.minute, b.succeeded, b.failed) for b in first] == [
            (now - 30 - 600, 1, 1), (now - 30, 1, 0)]
        attempt(now - 600, 200)  # recorded late into a settled minute: not re-read
        attempt(now - 5, 500)  # the current minute is read every time
        again = await last_hour.read(store, now)
        assert [(b.minute, b.succeeded, b.failed) for b in again] == [
            (now - 30 - 600, 1, 1), (now - 30, 1, 1)]
        later = await last_hour.read(store, now + 3600)  # the hour moved past all of them
        assert later == []
    finally:
        await store.close()


def _csrf(page: str) -> str:
    """The session's CSRF token, as every page carries it for htmx (read-only ones too)."""
    found = re.search(r'"X-CSRF-Token": "([^"]+)"', page)
    assert found is not None, "no CSRF token on the page"
    return found.group(1)


async def test_endpoint_form_validates_ordering_as_the_api_does(
        make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with running(make_config()) as r:
        form = await r.client.get("/ui/t/default/endpoints/new")
        assert '<option value="none" selected>' in form.text
        fields = {"csrf": _csrf(form.text), "name": "ledger", "url": "https://ledger.example.com/h",
                  "events": "*", "signature": "standard-webhooks", "ordering": "lifo"}
        refused = await r.client.post("/ui/t/default/endpoints", data=fields)
        assert refused.status_code == 422
        # The API's message, next to the field, and the select marked invalid.
        assert re.search(r'<p class="field-error" id="ordering-error">[^<]*'
                         r"&#39;none&#39; or &#39;fifo&#39;", refused.text), refused.text
        assert 'id="ordering" name="ordering" aria-invalid="true"' in refused.text
        assert 'value="ledger"' in refused.text  # what was typed stays
        assert (await r.client.get("/v1/webhooks")).json()["data"] == []  # nothing created
        created = await r.client.post("/ui/t/default/endpoints",
                                      data={**fields, "ordering": "fifo"})
        assert created.status_code == 200 and "Endpoint created" in created.text
        [hook] = (await r.client.get("/v1/webhooks")).json()["data"]
        assert hook["ordering"] == "fifo"
        # Editing: the form shows fifo; a bad value is refused, changing nothing; a
        # form without the field (as a PATCH without it) keeps the ordering.
        edit = f"/ui/t/default/endpoints/{hook['id']}/edit"
        shown = await r.client.get(edit)
        assert '<option value="fifo" selected>' in shown.text
        base = {"csrf": _csrf(shown.text), "name": "ledger-2", "url": hook["url"], "events": "*"}
        bad = await r.client.post(edit, data={**base, "ordering": "random"})
        assert bad.status_code == 422 and 'id="ordering-error"' in bad.text
        after = (await r.client.get(f"/v1/webhooks/{hook['id']}")).json()
        assert (after["name"], after["ordering"]) == ("ledger", "fifo")
        saved = await r.client.post(edit, data=base, follow_redirects=False)
        assert saved.status_code == 303, saved.text
        after = (await r.client.get(f"/v1/webhooks/{hook['id']}")).json()
        assert (after["name"], after["ordering"]) == ("ledger-2", "fifo")
        back = await r.client.post(edit, data={**base, "ordering": "none"},
                                   follow_redirects=False)
        assert back.status_code == 303
        assert (await r.client.get(f"/v1/webhooks/{hook['id']}")).json()["ordering"] == "none"


async def test_cancel_refuses_a_finished_delivery_and_needs_the_csrf_token(
        make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with Receiver() as rx, running(make_config(endpoints=[
            {"id": "ok", "url": f"{rx.url}/ok"}])) as r:
        assert (await r.send()).status_code == 202
        await rx.wait_for(1, "/ok")

        async def delivered() -> dict[str, Any] | None:
            [d] = (await r.client.get("/v1/webhooks/ok/deliveries")).json()["data"]
            return d if d["status"] == "succeeded" else None

        done = await eventually(delivered, message="the delivery to succeed")
        page = f"/ui/t/default/deliveries/{done['id']}"
        shown = await r.client.get(page)
        assert f"{page}/cancel" not in shown.text  # no Cancel for a finished delivery
        message = (f"delivery {done['id']} is succeeded already; only unfinished deliveries "
                   "(pending, held, delivering) can be cancelled")
        confirm = await r.client.get(f"{page}/cancel")
        assert confirm.status_code == 409 and message in confirm.text
        refused = await r.client.post(f"{page}/cancel", data={"csrf": _csrf(shown.text)})
        assert refused.status_code == 409
        assert "Not possible now" in refused.text and message in refused.text
        after = (await r.client.get(f"/v1/deliveries/{done['id']}")).json()
        assert (after["status"], after["updated_at"]) == ("succeeded", done["updated_at"])
        assert len(rx.received()) == 1

        # A held delivery can be cancelled, but not by a POST without the form's token.
        paused = await r.client.patch("/v1/webhooks/ok", json={"is_paused": True})
        assert paused.status_code == 200
        assert (await r.send()).status_code == 202
        [held, _] = (await r.client.get("/v1/webhooks/ok/deliveries")).json()["data"]
        assert held["status"] == "held"
        page = f"/ui/t/default/deliveries/{held['id']}"
        shown = await r.client.get(page)
        assert f'href="{page}/cancel"' in shown.text
        for form in ({}, {"csrf": "forged"}):
            forged = await r.client.post(f"{page}/cancel", data=form)
            assert forged.status_code == 403 and "security token" in forged.text
        assert (await r.client.get(f"/v1/deliveries/{held['id']}")).json()["status"] == "held"
        confirm = await r.client.get(f"{page}/cancel")
        assert confirm.status_code == 200 and "Cancel delivery" in confirm.text
        cancelled = await r.client.post(f"{page}/cancel", data={"csrf": _csrf(confirm.text)},
                                        follow_redirects=False)
        assert cancelled.status_code == 303
        assert cancelled.headers["location"] == f"{page}?done=cancelled"
        after = (await r.client.get(f"/v1/deliveries/{held['id']}")).json()
        assert after["status"] == "cancelled"


async def test_a_read_only_portal_session_cannot_cancel(
        make_config: Callable[..., cfgmod.Loaded]) -> None:
    loaded = make_config(api_keys=KEYS, tenants=[{"id": "acme"}], endpoints=[
        {"id": "acme-ledger", "url": "http://127.0.0.1:9/in", "tenant": "acme",
         "ordering": "fifo", "enabled": False}])  # its deliveries wait, held
    async with running(loaded) as r:
        sent = await r.client.post("/v1/events", headers=auth(ADMIN),
                                   json={"type": "lead.qualified", "data": {}, "tenant": "acme"})
        assert sent.status_code == 202, sent.text
        [held] = await r.relay.store.list_deliveries("acme-ledger")  # not the key's tenant
        assert held.state == "held"
        link = (await r.client.post("/v1/portal-sessions", headers=auth(ADMIN), json={
            "tenant": "acme", "read_only": True})).json()["url"]
        assert (await r.client.get(link)).status_code == 200  # the session cookie is set
        page = f"/ui/t/acme/deliveries/dlv_{held.id}"
        shown = await r.client.get(page)
        assert shown.status_code == 200 and f"{page}/cancel" not in shown.text
        assert (await r.client.get(f"{page}/cancel")).status_code == 403
        refused = await r.client.post(f"{page}/cancel", data={"csrf": _csrf(shown.text)})
        assert refused.status_code == 403 and "read-only" in refused.text
        [after] = await r.relay.store.list_deliveries("acme-ledger")
        assert after == held
