"""The console and portal in a real browser: what an operator and a tenant click through.

relay runs in-process on a loopback port with a real SQLite file and API keys; deliveries
go to a real loopback receiver. Each test also takes screenshots, which it saves into
docs/ui/ when RELAY_SCREENSHOTS=1.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from relay import config as cfgmod
from relay import sessions
from tests.helpers import auth, sha, shoot
from tests.receiver import Receiver
from tests.serving import Running, eventually, running

if TYPE_CHECKING:
    from playwright.async_api import Browser, Locator, Page

ADMIN = "k-console-admin-0123456789"
SAMPLE = {"lead_id": "lead_4c88e100", "score": 0.87}


def console_config(make_config: Callable[..., cfgmod.Loaded], url: str) -> cfgmod.Loaded:
    return make_config(
        tenants=[{"id": "acme"}, {"id": "globex"}],
        api_keys=[{"name": "admin", "key_sha256": sha(ADMIN), "scopes": ["admin"]}],
        event_types=[{"name": "lead.qualified", "description": "A lead crossed the "
                      "qualification threshold.", "sample": SAMPLE,
                      "schema": {"type": "object", "required": ["lead_id"],
                                 "properties": {"lead_id": {"type": "string"}}}},
                     {"name": "lead.lost", "description": "A lead went cold."}],
        endpoints=[{"id": "crm", "url": f"{url}/crm", "events": ["lead.*"]}],
        ui={"title": "Acme Webhooks", "accent": "#0f766e"},
    )


async def api(r: Running, method: str, path: str, **kwargs: Any) -> Any:
    response = await r.client.request(method, path, headers=auth(ADMIN), **kwargs)
    assert response.status_code < 300, response.text
    return response.json() if response.content else None


def nav(page: Page, name: str) -> Locator:
    return page.get_by_role("navigation", name="Main").get_by_role("link", name=name)


async def sign_in(page: Page, base: str) -> None:
    await page.goto(f"{base}/ui/")
    await page.get_by_label("Admin API key").fill(ADMIN)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{base}/ui/")


async def test_operator_creates_tests_pauses_retries_and_replays(
        make_config: Callable[..., cfgmod.Loaded], browser: Browser) -> None:
    async with Receiver() as rx, running(console_config(make_config, rx.url)) as r:
        page = await browser.new_page(viewport={"width": 1280, "height": 800})
        dialogs: list[str] = []
        page.on("dialog", lambda d: dialogs.append(d.message))
        # Not signed in: the login form; a wrong key is refused with a message.
        await page.goto(f"{r.url}/ui/")
        await page.wait_for_url(re.compile(r".*/ui/login\?next=%2Fui%2F$"))
        await shoot(page, "login")
        await page.get_by_label("Admin API key").fill("not-a-key")
        await page.get_by_role("button", name="Sign in").click()
        await page.get_by_text("That is not an admin API key of this relay.").wait_for()
        await page.get_by_label("Admin API key").fill(ADMIN)
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url(f"{r.url}/ui/")
        [cookie] = [c for c in await page.context.cookies() if c["name"] == "relay_session"]
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert not cookie["secure"]  # loopback: plain http
        await page.get_by_role("heading", name="Overview").wait_for()

        # Create an endpoint pointing at the receiver: the secret is shown once.
        await nav(page, "Endpoints").click()
        await page.get_by_role("link", name="Create endpoint").first.click()
        await page.get_by_label("Name").fill("orders")
        await page.get_by_label("URL").fill(f"{rx.url}/orders")
        await page.get_by_label("Events").fill("lead.*")
        await page.get_by_label("Headers").fill("X-Team: sales")
        await page.get_by_label("Timeout").fill("ten")
        await page.get_by_role("button", name="Create endpoint").click()
        await page.get_by_text("is not a duration").wait_for()  # the API's validation
        await shoot(page, "endpoint-form")
        await page.get_by_label("Timeout").fill("5s")
        await page.get_by_role("button", name="Create endpoint").click()
        await page.get_by_role("heading", name="Endpoint created").wait_for()
        secret = await page.get_by_label("Signing secret").input_value()
        assert secret.startswith("whsec_")
        await shoot(page, "secret")
        await page.get_by_role("link", name="Continue to the endpoint").click()
        await page.get_by_role("heading", name=re.compile("orders")).wait_for()
        endpoint_url = page.url
        webhook_id = endpoint_url.rsplit("/", 1)[1]
        assert secret not in await page.content()  # never shown again

        # Send a test: the attempt's result, the receiver's status, shown in place (htmx).
        await page.get_by_label("Test event").select_option("lead.qualified")
        await page.get_by_role("button", name="Send test").click()
        await page.locator("#test-result").get_by_text("Delivered").wait_for()
        assert "200" in await page.locator("#test-result").inner_text()
        [got] = rx.received("/orders")
        assert got.json()["data"] == SAMPLE and got.headers["x-team"] == "sales"

        # Pause and resume.
        await page.get_by_role("button", name="Pause").click()
        await page.get_by_text("Paused: new deliveries are held").wait_for()
        assert (await api(r, "GET", f"/v1/webhooks/{webhook_id}"))["is_paused"] is True
        await page.get_by_role("button", name="Resume").click()
        await page.get_by_text("Resumed").wait_for()
        assert (await api(r, "GET", f"/v1/webhooks/{webhook_id}"))["is_paused"] is False

        # An event that fails every attempt shows up live (htmx polling) as failed.
        rx.respond("/orders", 500, 500, 500)
        event = await api(r, "POST", "/v1/events",
                          json={"type": "lead.qualified", "data": {"lead_id": "lead_7"}})
        row = page.locator("#deliveries tbody tr").first
        await row.get_by_text("failed").wait_for(timeout=15000)
        await shoot(page, "endpoint")
        await row.get_by_role("link", name=re.compile("^dlv_")).click()
        await page.get_by_role("heading", name=re.compile("Attempt 3")).wait_for()
        assert await page.get_by_text("webhook-signature").count() >= 3  # request headers
        await shoot(page, "delivery")
        # Retry it: the receiver answers 200 now.
        await page.get_by_role("button", name="Retry").click()
        await page.get_by_text("The delivery is queued again.").wait_for()
        await rx.wait_for(5, "/orders")  # test + 3 failures + the retry

        async def retried() -> bool:
            await page.reload()
            return await page.get_by_role("heading", name=re.compile("Attempt 4")).count() > 0

        await eventually(retried, message="the retried attempt on the delivery page")

        # Replay the event to every matching endpoint (crm and orders).
        await nav(page, "Events").click()
        await page.get_by_label("or id").fill(event["id"])
        await page.get_by_role("button", name="Search").click()
        await page.get_by_role("heading", name="lead.qualified").wait_for()
        await page.get_by_role("button", name="Replay").click()
        await page.get_by_text("2 new deliveries queued.").wait_for()
        replays = await rx.wait_for(6, "/orders")
        assert replays[-1].headers["webhook-id"] == event["id"]
        await rx.wait_for(2, "/crm")
        await shoot(page, "event")
        await nav(page, "Events").click()
        await shoot(page, "events")
        await nav(page, "Event types").click()
        await page.get_by_role("heading", name="lead.qualified").wait_for()
        await page.get_by_text('"required": [').wait_for()  # its schema
        await shoot(page, "event-types")
        await page.goto(f"{r.url}/ui/t/default/endpoints")
        await shoot(page, "endpoints")
        await nav(page, "Overview").click()
        await page.locator("svg.chart rect.bad").first.wait_for()
        await shoot(page, "overview")
        assert dialogs == []


async def test_fifo_endpoint_from_the_form_and_its_failing_head_cancelled(
        make_config: Callable[..., cfgmod.Loaded], browser: Browser) -> None:
    """An operator makes a fifo endpoint in the form, sees deliveries blocked behind a
    head the receiver refuses, and cancels the head from the console: the next ones go."""
    async with Receiver() as rx, running(console_config(make_config, rx.url)) as r:
        page = await browser.new_page(viewport={"width": 1280, "height": 800})
        dialogs: list[str] = []
        page.on("dialog", lambda d: dialogs.append(d.message))
        await sign_in(page, r.url)
        await page.goto(f"{r.url}/ui/t/default/endpoints/new")
        await page.get_by_label("Name").fill("ledger")
        await page.get_by_label("URL").fill(f"{rx.url}/ledger")
        await page.get_by_label("Events").fill("lead.*")
        await page.get_by_label("Retry schedule").fill("1h")  # a failed head waits an hour
        assert await page.get_by_label("Ordering").input_value() == "none"  # the default
        await page.get_by_label("Ordering").select_option("fifo")
        await page.get_by_text("fifo sends one request at a time").wait_for()  # the hint
        await page.get_by_role("button", name="Create endpoint").click()
        await page.get_by_role("heading", name="Endpoint created").wait_for()
        await page.get_by_role("link", name="Continue to the endpoint").click()
        await page.get_by_role("heading", name=re.compile("ledger")).wait_for()
        endpoint_url = page.url
        webhook_id = endpoint_url.rsplit("/", 1)[1]
        made = await api(r, "GET", f"/v1/webhooks/{webhook_id}")
        assert (made["ordering"], made["retry_schedule"]) == ("fifo", ["1h"])
        await page.get_by_text("fifo: one at a time, in event order").wait_for()

        # Editing keeps the ordering: the form shows fifo, saving leaves it so.
        await page.get_by_role("link", name="Edit").click()
        assert await page.get_by_label("Ordering").input_value() == "fifo"
        await page.get_by_label("Name").fill("ledger-eu")
        await page.get_by_role("button", name="Save").click()
        await page.get_by_text("Changes saved.").wait_for()
        saved = await api(r, "GET", f"/v1/webhooks/{webhook_id}")
        assert (saved["name"], saved["ordering"]) == ("ledger-eu", "fifo")

        # The receiver refuses the first event: the two behind it wait.
        rx.respond("/ledger", 500)
        for n in range(3):
            await api(r, "POST", "/v1/events",
                      json={"type": "lead.qualified", "data": {"lead_id": f"lead_{n}"}})

        async def blocked() -> bool:
            await page.goto(endpoint_url)
            return await page.get_by_text("2 blocked behind a failing head").count() == 1

        await eventually(blocked, message="the endpoint page to show 2 blocked deliveries")
        assert (await api(r, "GET", f"/v1/webhooks/{webhook_id}"))["blocked_behind_head"] == 2
        assert [q.json()["data"]["lead_id"] for q in rx.received("/ledger")] == ["lead_0"]
        await shoot(page, "endpoint-fifo")

        # Open the head (the oldest delivery: the table's last row) and cancel it.
        head = page.locator("#deliveries tbody tr").last
        await head.locator(".code.bad", has_text="500").wait_for()
        await head.get_by_role("link", name=re.compile("^dlv_")).click()
        await page.get_by_role("heading", name=re.compile("Attempt 1")).wait_for()
        assert await page.get_by_role("button", name="Retry").count() == 0  # not finished
        await page.get_by_role("link", name="Cancel…").click()
        await page.get_by_role("heading", name=re.compile("^Cancel delivery")).wait_for()
        await page.get_by_text("ledger-eu is fifo").wait_for()
        await page.get_by_text("2 wait behind a failing head now").wait_for()
        await shoot(page, "cancel")
        await page.get_by_role("button", name="Cancel delivery").click()
        await page.get_by_text("Cancelled: relay will not send it").wait_for()
        await page.locator("h1").get_by_text("cancelled").wait_for()
        arrived = await rx.wait_for(3, "/ledger")
        assert [q.json()["data"]["lead_id"] for q in arrived] == ["lead_0", "lead_1", "lead_2"]

        async def unblocked() -> bool:
            hook = await api(r, "GET", f"/v1/webhooks/{webhook_id}")
            return hook["blocked_behind_head"] == 0 and hook["pending"] == 0

        await eventually(unblocked, message="the queue behind the cancelled head to drain")
        await page.locator(".crumbs").get_by_role("link", name=webhook_id).click()
        await page.get_by_role("heading", name=re.compile("ledger-eu")).wait_for()
        assert await page.get_by_text("blocked behind a failing head").count() == 0
        assert dialogs == []  # the confirm step is a page, not a script dialog


async def test_portal_shows_one_tenant_and_read_only_changes_nothing(
        make_config: Callable[..., cfgmod.Loaded], browser: Browser) -> None:
    async with Receiver() as rx, running(console_config(make_config, rx.url)) as r:
        theirs = (await r.client.post("/v1/webhooks", headers={**auth(ADMIN)},
                                      json={"name": "globex-private-hook",
                                            "url": f"{rx.url}/g", "events": ["*"]}))
        assert theirs.status_code == 201  # in tenant default: the admin key's own
        link = await api(r, "POST", "/v1/portal-sessions", json={"tenant": "acme"})
        page = await browser.new_page(viewport={"width": 1280, "height": 800})
        await page.goto(link["url"])
        await page.wait_for_url(f"{r.url}/ui/t/acme/endpoints")
        await page.get_by_text("No endpoints yet").wait_for()
        # Create one in the portal: its secret is shown once; it is acme's.
        await page.get_by_role("link", name="create one").click()
        await page.get_by_label("Name").fill("acme-hook")
        await page.get_by_label("URL").fill(f"{rx.url}/acme")
        await page.get_by_role("button", name="Create endpoint").click()
        assert (await page.get_by_label("Signing secret").input_value()).startswith("whsec_")
        await page.get_by_role("link", name="Continue to the endpoint").click()
        await page.get_by_role("button", name="Send test").click()
        await page.locator("#test-result").get_by_text("Delivered").wait_for()
        await nav(page, "Endpoints").click()
        await page.get_by_role("link", name="acme-hook").wait_for()
        await shoot(page, "portal")
        html = await page.content()
        assert "globex-private-hook" not in html
        assert "Overview" not in html  # the cross-tenant page is the operator's
        # Another tenant's pages, and another tenant's endpoint by id, are plain 404s.
        for path in ("/ui/t/default/endpoints", f"/ui/t/acme/endpoints/{theirs.json()['id']}",
                     "/ui/t/default/endpoints/crm", "/ui/"):
            response = await page.goto(f"{r.url}{path}")
            assert response is not None
            text = await page.content()
            assert "globex-private-hook" not in text and "lead.qualified" not in text
            if path != "/ui/":
                assert response.status == 404, path
        # Read-only: the same pages, no buttons, and the POSTs refused by the server.
        ro = await api(r, "POST", "/v1/portal-sessions",
                       json={"tenant": "acme", "read_only": True})
        viewer = await browser.new_page(viewport={"width": 1280, "height": 800})
        await viewer.goto(ro["url"])
        await viewer.get_by_role("link", name="acme-hook").click()
        await viewer.get_by_role("heading", name=re.compile("acme-hook")).wait_for()
        for action in ("Pause", "Send test", "Rotate secret", "Recover", "Delete endpoint"):
            assert await viewer.get_by_role("button", name=action).count() == 0, action
        assert await viewer.get_by_role("link", name="Edit").count() == 0
        assert await viewer.get_by_text("read-only").count() == 1
        csrf = await viewer.locator("body").get_attribute("hx-headers")
        assert csrf is not None
        token = re.search(r'"X-CSRF-Token": "([^"]+)"', csrf)
        assert token is not None
        webhook_path = viewer.url.removeprefix(r.url)
        refused = await viewer.request.post(f"{r.url}{webhook_path}/state",
                                            form={"csrf": token.group(1), "change": "pause"})
        assert refused.status == 403
        hooks = (await api(r, "GET", "/v1/webhooks")).get("data")
        assert all(not h["is_paused"] for h in hooks)
        await shoot(viewer, "portal-read-only")


async def test_forged_expired_and_altered_links_are_refused(
        make_config: Callable[..., cfgmod.Loaded], browser: Browser) -> None:
    async with running(console_config(make_config, "http://127.0.0.1:9")) as r:
        link = await api(r, "POST", "/v1/portal-sessions", json={"tenant": "acme"})
        key = await r.relay.secret_key(sessions.KEY_NAME, sessions.new_key)
        expired = sessions.sign(key, sessions.new_session("p", "acme", r.relay.clock() - 1,
                                                          False))
        altered = link["url"].replace("p.acme.", "p.globex.", 1)
        forged = sessions.sign(sessions.new_key(), sessions.new_session(
            "p", "acme", r.relay.clock() + 3600, False))
        page = await browser.new_page()
        for url in (f"{r.url}/ui/portal?token={expired}", altered,
                    f"{r.url}/ui/portal?token={forged}", f"{r.url}/ui/portal"):
            response = await page.goto(url)
            assert response is not None and response.status == 401, url
            await page.get_by_text("this portal link is invalid or has expired").wait_for()
            assert [c for c in await page.context.cookies()
                    if c["name"] == "relay_session" and c["value"].startswith("p.")] == []
        await shoot(page, "portal-refused")


async def test_post_without_csrf_is_refused_and_names_render_as_text(
        make_config: Callable[..., cfgmod.Loaded], browser: Browser) -> None:
    async with Receiver() as rx, running(console_config(make_config, rx.url)) as r:
        xss = "<script>alert(1)</script>"
        made = await api(r, "POST", "/v1/webhooks",
                         json={"name": xss, "url": f"{rx.url}/x", "events": ["*"]})
        page = await browser.new_page(viewport={"width": 1280, "height": 800})
        dialogs: list[str] = []
        page.on("dialog", lambda d: dialogs.append(d.message))
        await sign_in(page, r.url)
        await page.goto(f"{r.url}/ui/t/default/endpoints")
        await page.get_by_text(xss).first.wait_for()  # shown as text
        await page.goto(f"{r.url}/ui/t/default/endpoints/{made['id']}")
        await page.get_by_role("heading", name=xss).wait_for()
        assert await page.locator("script").count() == 1  # htmx only
        assert dialogs == []
        # A signed-in browser's POST without the token (a cross-site form) is refused.
        for form in ({"change": "pause"}, {"change": "pause", "csrf": "forged"}):
            refused = await page.request.post(
                f"{r.url}/ui/t/default/endpoints/{made['id']}/state", form=form)
            assert refused.status == 403
            assert "security token" in await refused.text()
        assert (await api(r, "GET", f"/v1/webhooks/{made['id']}"))["is_paused"] is False
        csp = (await page.request.get(f"{r.url}/ui/t/default/endpoints")).headers[
            "content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp


@pytest.mark.parametrize("width", [375])
async def test_pages_fit_a_phone(make_config: Callable[..., cfgmod.Loaded], browser: Browser,
                                 width: int) -> None:
    """At 375 px no page scrolls sideways (tables scroll inside their own box)."""
    async with Receiver() as rx, running(console_config(make_config, rx.url)) as r:
        made = await api(r, "POST", "/v1/webhooks", json={
            "name": "a-rather-long-endpoint-name-for-a-phone",
            "url": f"{rx.url}/a/very/long/path/that/goes/on/and/on", "events": ["*"]})
        await api(r, "POST", "/v1/webhooks", json={
            "name": "failing", "url": f"{rx.url}/status/500", "events": ["*"]})
        await api(r, "POST", "/v1/events", json={"type": "lead.qualified", "data": SAMPLE})

        async def failed() -> bool:  # so the overview lists recent errors too
            return (await r.relay.store.counts()).get("failed", 0) == 1

        await eventually(failed, message="the failing endpoint's delivery to fail")
        page = await browser.new_page(viewport={"width": width, "height": 740})
        await sign_in(page, r.url)
        for path in ("/ui/", "/ui/t/default/endpoints", f"/ui/t/default/endpoints/{made['id']}",
                     "/ui/t/default/events", "/ui/event-types",
                     f"/ui/t/default/endpoints/{made['id']}/edit"):
            await page.goto(f"{r.url}{path}")
            overflow = await page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 0, (path, overflow)


async def test_events_by_time_and_every_tenants_endpoints(
        make_config: Callable[..., cfgmod.Loaded], browser: Browser) -> None:
    """The events search bounds the accepted time; the operator's endpoint list shows
    every tenant's endpoints with a tenant column, filtered by tenant and state, in pages."""
    hooks = [{"id": f"hook-{n:02d}", "url": f"http://127.0.0.1:9/{n}", "events": ["lead.*"],
              "tenant": ("default", "acme", "globex")[n % 3]} for n in range(27)]
    loaded = make_config(
        tenants=[{"id": "acme"}, {"id": "globex"}],
        api_keys=[{"name": "admin", "key_sha256": sha(ADMIN), "scopes": ["admin"]}],
        event_types=[{"name": "lead.qualified", "description": "A lead qualified."}],
        endpoints=hooks,
    )
    shift = [0.0]  # the clock relay reads: events accepted days apart
    async with running(loaded, clock=lambda: time.time() + shift[0]) as r:
        accepted = {}
        for name, days in (("old", -2), ("middle", -1), ("new", 0)):
            shift[0] = days * 86400.0
            sent = await r.client.post("/v1/events", headers=auth(ADMIN),
                                       json={"type": "lead.qualified", "data": {"n": name}})
            assert sent.status_code == 202, sent.text
            accepted[name] = sent.json()["id"]
        shift[0] = 0.0
        middle = time.gmtime(time.time() - 86400)
        page = await browser.new_page(viewport={"width": 1280, "height": 800})
        await sign_in(page, r.url)
        await page.goto(f"{r.url}/ui/t/default/events")
        for name in accepted.values():
            await page.get_by_role("link", name=name).wait_for()
        day = time.strftime("%Y-%m-%d", middle)
        await page.get_by_label("Accepted from").fill(f"{day}T00:00:00")
        await page.get_by_label("until").fill(f"{day}T23:59:59")
        await page.get_by_role("button", name="Search").click()
        await page.wait_for_url(re.compile(r".*since=.*until=.*"))
        await page.get_by_role("link", name=accepted["middle"]).wait_for()
        html = await page.content()
        assert accepted["old"] not in html and accepted["new"] not in html
        await shoot(page, "events-by-time")
        listed = await api(r, "GET", "/v1/events", params={
            "since": f"{day}T00:00:00Z", "until": f"{day}T23:59:59Z"})
        assert [e["id"] for e in listed["data"]] == [accepted["middle"]]

        # Every tenant's endpoints, 25 to a page, with a tenant column.
        await nav(page, "Endpoints").click()
        await page.wait_for_url(f"{r.url}/ui/endpoints")
        rows = page.locator("table.list tbody tr")
        assert await rows.count() == 25
        assert await page.get_by_role("columnheader", name="Tenant").count() == 1
        assert await rows.filter(has_text="globex").count() > 0
        await shoot(page, "endpoints-all-tenants")
        await page.get_by_role("link", name="Next page").click()
        assert [await rows.nth(i).locator("strong").inner_text() for i in range(2)] == [
            "hook-25", "hook-26"]
        await page.get_by_label("Tenant").select_option("acme")
        await page.get_by_role("button", name="Filter").click()
        await page.wait_for_url(re.compile(r".*tenant=acme"))
        names = await page.locator("table.list tbody strong").all_inner_texts()
        assert names == [h["id"] for h in hooks if h["tenant"] == "acme"]
        await page.get_by_role("link", name="hook-01").click()
        await page.wait_for_url(f"{r.url}/ui/t/acme/endpoints/hook-01")
        # State filter across tenants: none is paused, then one is.
        await api(r, "PATCH", "/v1/webhooks/hook-00", json={"is_paused": True})
        await page.goto(f"{r.url}/ui/endpoints?state=paused")
        assert await page.locator("table.list tbody strong").all_inner_texts() == ["hook-00"]
        await page.goto(f"{r.url}/ui/endpoints?tenant=acme&state=paused")
        await page.get_by_text("No paused endpoints in acme").wait_for()
        response = await page.goto(f"{r.url}/ui/endpoints?tenant=nope")
        assert response is not None and response.status == 404
