"""List cursors belong to their list and their caller: another tenant's cursor, an altered
one or a raw id answers 400 `invalid_cursor` on every paginated route (never a page that
would confirm another tenant's ids exist or tell their order); the caller's own cursors
walk every item once; the console's and the CLI's pagination pass them through."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import Any

import pytest

from relay import client, cursors
from relay import config as cfgmod
from relay.errors import InvalidCursor
from relay.models import PageQuery
from relay.operations import list_webhooks
from tests.helpers import ACME, ADMIN, admin_api, assert_error, auth, create, send
from tests.serving import Running, eventually


async def _page(r: Running, path: str, key: str, **params: Any) -> dict[str, Any]:
    response = await r.client.get(path, params={"limit": 1, **params}, headers=auth(key))
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def _walk(r: Running, path: str, key: str) -> list[str]:
    """Every id of a list, a page of one at a time, following `next`."""
    seen: list[str] = []
    after: str | None = None
    while True:
        page = await _page(r, path, key, **({"after": after} if after else {}))
        seen += [item["id"] for item in page["data"]]
        after = page["next"]
        if after is None:
            return seen


def _refused(response: Any) -> None:
    error = assert_error(response, 400, "invalid_cursor")
    assert "not a cursor relay handed to this caller" in error["message"]
    assert error["details"][0]["path"] == "after"


@pytest.mark.slow
async def test_another_tenants_cursor_an_altered_one_or_a_raw_id_answers_400(
        make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with admin_api(make_config) as (r, rx):
        acme_hooks = [await create(r, f"{rx.url}/acme", key=ACME) for _ in range(2)]
        own_hook = await create(r, f"{rx.url}/own")
        acme_events = [await send(r, key=ACME, n=i) for i in range(3)]
        own_events = [await send(r, n=i) for i in range(3)]
        await rx.wait_for(6, "/acme")
        await rx.wait_for(3, "/own")

        async def delivered() -> bool:
            pages = [await _page(r, f"/v1/webhooks/{h['id']}/deliveries", key, limit=10)
                     for h, key in ((acme_hooks[0], ACME), (own_hook, ADMIN))]
            return all(len(p["data"]) == 3 for p in pages)

        await eventually(delivered, message="three deliveries on each webhook")
        # Each list route: (the caller's own list, acme's list of the same kind).
        routes = [("/v1/events", "/v1/events"),
                  ("/v1/webhooks", "/v1/webhooks"),
                  (f"/v1/webhooks/{own_hook['id']}/deliveries",
                   f"/v1/webhooks/{acme_hooks[0]['id']}/deliveries")]
        for own, theirs in routes:
            acme_page = await _page(r, theirs, ACME)
            their_cursor = acme_page["next"]
            assert their_cursor is not None
            raw_id = acme_page["data"][0]["id"]
            assert raw_id not in their_cursor  # opaque: the id is not spelled out
            mine = await _page(r, own, ADMIN)
            my_cursor, my_id = mine["next"], mine["data"][0]["id"]
            flipped = my_cursor[:-2] + ("A" if my_cursor[-2] != "A" else "B") + my_cursor[-1]
            for bad in (their_cursor, raw_id, my_id, flipped, my_cursor + "x", "",
                        base64.urlsafe_b64encode(my_id.encode()).decode().rstrip("=")):
                _refused(await r.client.get(own, params={"after": bad}, headers=auth(ADMIN)))
            # The caller's own cursor still answers the next page, after its first item.
            after = await _page(r, own, ADMIN, after=my_cursor)
            assert after["data"] and after["data"][0]["id"] != my_id
        # A deliveries cursor is bound to its webhook too, in the same tenant.
        first = await _page(r, f"/v1/webhooks/{acme_hooks[0]['id']}/deliveries", ACME)
        _refused(await r.client.get(f"/v1/webhooks/{acme_hooks[1]['id']}/deliveries",
                                    params={"after": first["next"]}, headers=auth(ACME)))
        # And pagination walks every item exactly once, newest first.
        assert await _walk(r, "/v1/events", ADMIN) == own_events[::-1]
        assert await _walk(r, "/v1/events", ACME) == acme_events[::-1]
        assert await _walk(r, "/v1/webhooks", ACME) == [h["id"] for h in acme_hooks]
        walked = await _walk(r, f"/v1/webhooks/{own_hook['id']}/deliveries", ADMIN)
        assert len(walked) == len(set(walked)) == 3


@pytest.mark.slow
async def test_the_console_pages_with_cursors_and_refuses_another_tenants(
        make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with admin_api(make_config) as (r, _):
        for tenant_key in (ADMIN, ACME):
            for i in range(27):  # more than a console page (25)
                await send(r, key=tenant_key, n=i)
        acme_cursor = (await _page(r, "/v1/events", ACME))["next"]
        # The console: an operator signs in with the admin key.
        login = await r.client.get("/ui/login")
        token = login.text.split('name="csrf" value="')[1].split('"')[0]
        signed = await r.client.post("/ui/login", data={"csrf": token, "key": ADMIN},
                                     follow_redirects=False)
        assert signed.status_code == 303, signed.text
        first = await r.client.get("/ui/t/default/events")
        assert first.status_code == 200
        more = first.text.split('class="pager"><a href="?')[1].split('"')[0]
        second = await r.client.get(f"/ui/t/default/events?{more.replace('&amp;', '&')}")
        assert second.status_code == 200 and "Older events" not in second.text
        assert second.text.count('href="/ui/t/default/events/evt_') == 2
        refused = await r.client.get("/ui/t/default/events", params={"after": acme_cursor})
        assert refused.status_code == 400 and "not a cursor relay handed" in refused.text


def test_a_cursor_is_bound_to_its_key_and_scope() -> None:
    key, other_key = b"k" * 32, b"o" * 32
    cursor = cursors.mint(key, "events acme", "evt_01")
    assert cursors.position(key, "events acme", cursor) == "evt_01"
    assert len(cursor) < 40 and cursor.replace("-", "").replace("_", "").isalnum()
    for k, scope, given in ((other_key, "events acme", cursor), (key, "events beta", cursor),
                            (key, "webhooks acme", cursor), (key, "events acme", "evt_01"),
                            (key, "events acme", "\x00"), (key, "events acme", "é"),
                            (key, "events acme", cursor[:8])):
        with pytest.raises(InvalidCursor):
            cursors.position(k, scope, given)


async def test_the_cli_client_pages_through_with_the_cursors(
        make_config: Callable[..., cfgmod.Loaded], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client, "PAGE", 2)  # `relay deliveries` over several pages
    async with admin_api(make_config) as (r, rx):
        hook = await create(r, f"{rx.url}/cli")
        for i in range(5):
            await send(r, n=i)
        await rx.wait_for(5, "/cli")

        def listed() -> list[str]:
            with client.Client(r.url, ADMIN) as api:
                return [d["id"] for d in api.deliveries(hook["id"])]

        ids = await asyncio.to_thread(listed)
        assert len(ids) == len(set(ids)) == 5
        assert ids == sorted(ids, key=lambda d: int(d.removeprefix("dlv_")), reverse=True)


async def test_a_state_filtered_page_resumes_after_a_deleted_webhook(
        make_config: Callable[..., cfgmod.Loaded]) -> None:
    """The console's endpoint list filtered by state: the previous page's last webhook
    deleted since, the next page still starts right after where it stood (it ended the
    list instead)."""
    async with admin_api(make_config) as (r, rx):
        hooks = [(await create(r, f"{rx.url}/{n}", key=ACME))["id"] for n in range(4)]
        first = await list_webhooks(r.relay, "acme", PageQuery(limit=2), "active")
        assert [w.id for w in first.data] == hooks[:2] and first.next is not None
        deleted = await r.client.delete(f"/v1/webhooks/{hooks[1]}", headers=auth(ACME))
        assert deleted.status_code == 204
        rest = await list_webhooks(r.relay, "acme", PageQuery(limit=2, after=first.next),
                                   "active")
        assert [w.id for w in rest.data] == hooks[2:] and rest.next is None
