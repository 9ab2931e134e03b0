"""Tenants and API keys in the operator console, in a real browser: create a tenant,
create a key in it (shown once, copied with the button), revoke it after the confirm
page; at 1280 px and on a 375 px phone, where no page scrolls sideways."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from relay import config as cfgmod
from tests.browser.test_console import ADMIN, api, console_config, nav, sign_in
from tests.helpers import auth, shoot
from tests.serving import running

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page


async def fits(page: Page) -> None:
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, (page.url, overflow)


@pytest.mark.parametrize("width", [1280, 375])
async def test_tenant_then_key_shown_once_then_revoked(
        make_config: Callable[..., cfgmod.Loaded], browser: Browser, width: int) -> None:
    async with running(console_config(make_config, "http://127.0.0.1:9")) as r:
        page = await browser.new_page(viewport={"width": width, "height": 800})
        dialogs: list[str] = []
        page.on("dialog", lambda d: dialogs.append(d.message))
        await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
        await sign_in(page, r.url)
        wide = width == 1280

        # Tenants: the file's are listed (read-only); a new one through the form.
        await nav(page, "Tenants").click()
        await page.get_by_role("heading", name="Tenants").wait_for()
        await page.get_by_role("link", name="acme", exact=True).wait_for()
        await fits(page)
        await page.get_by_role("link", name="Create tenant").click()
        await page.get_by_label("Id").fill("initech")
        await page.get_by_label("Name").fill("Initech LLC")
        await page.get_by_label("Max webhooks").fill("five")
        await page.get_by_label("Metadata").fill("plan=enterprise\nregion=us")
        await page.get_by_role("button", name="Create tenant").click()
        await page.locator("#max_webhooks-error").wait_for()
        assert await page.get_by_label("Id").input_value() == "initech"  # kept
        await fits(page)
        if wide:
            await shoot(page, "tenant-form")
        await page.get_by_label("Max webhooks").fill("5")
        await page.get_by_role("button", name="Create tenant").click()
        await page.get_by_text("Tenant created.").wait_for()
        await page.get_by_role("heading", name=re.compile("initech")).wait_for()
        made = await api(r, "GET", "/v1/tenants/initech")
        assert (made["name"], made["max_webhooks"], made["metadata"]) == (
            "Initech LLC", 5, {"plan": "enterprise", "region": "us"})
        await fits(page)

        # A key in it: the form, the key once, the copy button.
        await page.get_by_role("link", name="Create an API key").click()
        assert await page.get_by_label("Tenant").input_value() == "initech"
        await page.get_by_label("Name").fill("initech-orders")
        await page.get_by_label("webhooks:read").check()
        await page.get_by_label("webhooks:write").check()
        await fits(page)
        await page.get_by_role("button", name="Create API key").click()
        await page.get_by_role("heading", name="API key created").wait_for()
        key = await page.get_by_label("API key").input_value()
        assert key.startswith("rk_") and len(key) > 40
        copy = page.get_by_role("button", name="Copy")
        await copy.click()
        await page.get_by_role("button", name="Copied").wait_for()
        if wide:
            assert await page.evaluate("navigator.clipboard.readText()") == key
        await fits(page)
        if wide:
            await shoot(page, "api-key-created")
        hooks = await r.client.get("/v1/webhooks", headers=auth(key))
        assert hooks.status_code == 200

        # Never shown again: the list has no key material.
        await page.get_by_role("link", name="Continue to the API keys").click()
        await page.get_by_role("heading", name="API keys").wait_for()
        assert key not in await page.content()
        await page.get_by_text("initech-orders").wait_for()
        await fits(page)
        if wide:
            await shoot(page, "api-keys")

        # Revoke it through the confirm page: refused at once.
        await page.get_by_role("link", name="Revoke initech-orders").click()
        await page.get_by_role("heading", name=re.compile("^Revoke API key")).wait_for()
        await fits(page)
        await page.get_by_role("button", name="Revoke API key").click()
        await page.get_by_text("API key revoked").wait_for()
        assert await page.get_by_text("initech-orders").count() == 0
        assert (await r.client.get("/v1/webhooks", headers=auth(key))).status_code == 401

        # The tenant's page: disable, then the delete confirm page and delete.
        await nav(page, "Tenants").click()
        if wide:
            await shoot(page, "tenants")
        await page.get_by_role("link", name="initech", exact=True).click()
        await page.get_by_role("button", name="Disable webhooks").click()
        await page.get_by_role("status").get_by_text("Disabled: its ingest").wait_for()
        assert (await api(r, "GET", "/v1/tenants/initech"))["webhooks_enabled"] is False
        if wide:
            await shoot(page, "tenant")
        await page.get_by_role("link", name="Delete tenant…").click()
        await page.get_by_text("unfinished deliveries are cancelled").wait_for()
        await fits(page)
        if wide:
            await shoot(page, "tenant-delete")
        await page.get_by_role("button", name="Delete tenant").click()
        await page.get_by_text("Tenant deleted").wait_for()
        assert await page.get_by_role("link", name="initech", exact=True).count() == 0
        # A file tenant: shown, with the note, and no buttons.
        await page.get_by_role("link", name="acme", exact=True).click()
        await page.get_by_text("defines this tenant: change it there").wait_for()
        assert await page.get_by_role("button", name="Disable webhooks").count() == 0
        assert dialogs == []
        # ADMIN is the file's key: listed without a revoke link.
        await nav(page, "API keys").click()
        assert await page.get_by_role("link", name=re.compile("^Revoke")).count() == 0
        assert ADMIN not in await page.content()


async def test_event_types_of_both_sources(make_config: Callable[..., cfgmod.Loaded],
                                           browser: Browser) -> None:
    """The file's types read-only beside one made in the console (a field error first),
    deprecated there; the pages fit a phone."""
    async with running(console_config(make_config, "http://127.0.0.1:9")) as r:
        page = await browser.new_page(viewport={"width": 1280, "height": 800})
        await sign_in(page, r.url)
        await nav(page, "Event types").click()
        await page.get_by_role("link", name="Create event type").click()
        await page.get_by_label("Name").fill("invoice.paid")
        await page.get_by_label("Description").fill("An invoice was paid.")
        await page.get_by_label("Sample (JSON)").fill('{"amount": 5}')
        await page.get_by_label("Schema (JSON)").fill(
            '{"type": "object", "required": ["invoice_id"]}')
        await page.get_by_role("button", name="Create event type").click()
        await page.locator("#sample-error").get_by_text("invoice_id").wait_for()
        await fits(page)
        await shoot(page, "event-type-form")
        await page.get_by_label("Sample (JSON)").fill('{"invoice_id": "in_1", "amount": 5}')
        await page.get_by_role("button", name="Create event type").click()
        await page.get_by_text("Event type created.").wait_for()
        await page.get_by_role("button", name="Deprecate").click()
        await page.get_by_text("Changes saved.").wait_for()
        assert (await api(r, "GET", "/v1/event-types/invoice.paid"))["deprecated"] is True
        assert await page.get_by_role("link", name=re.compile("^Edit")).count() == 1  # its own
        await fits(page)
        await shoot(page, "event-types-both")
