"""Console and portal sessions that end: signing out kills the cookie (also on a second
relay sharing the PostgreSQL database), idle and old sessions expire (an injected clock),
and a config that no longer grants the admin key or the portal's tenant ends the sessions
it backed, on every process. The store's session rows on both backends."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from relay import config as cfgmod
from relay.storage.base import Store
from relay.types import SessionRow
from relay.ui.security import COOKIE
from tests.helpers import NOW, FakeClock, auth, sha
from tests.serving import Running, running

ADMIN = "k-session-admin-0123456789"
OTHER = "k-session-other-0123456789"  # a second admin key, left in every config
HOUR = 3600.0


def toml(storage: str, *, admin: bool = True, acme: bool | None = True,
         ui: str = "") -> str:
    """relay.toml with two admin keys (ADMIN left out when `admin` is false) and tenant
    acme (webhooks disabled when `acme` is false, absent when None)."""
    keys = [("other", OTHER)] + ([("admin", ADMIN)] if admin else [])
    text = f"{storage}\n[ui]\n{ui}\n"
    if acme is not None:
        text += f'[[tenants]]\nid = "acme"\nwebhooks_enabled = {str(acme).lower()}\n'
    for name, key in keys:
        text += (f'[[api_keys]]\nname = "{name}"\nkey_sha256 = "{sha(key)}"\n'
                 'scopes = ["admin"]\n')
    return text


def sqlite(tmp_path: Path) -> str:
    return f'[storage]\npath = "{tmp_path / "relay.db"}"'


def postgres(url: str) -> str:
    return f'[storage]\nurl = "{url}"'


def write(path: Path, text: str) -> cfgmod.Loaded:
    path.write_text(text)
    return cfgmod.load(path)


async def sign_in(r: Running, key: str = ADMIN) -> str:
    """Sign in to the console with `key`, as a new browser; the session cookie's value."""
    r.client.cookies.clear()
    form = await r.client.get("/ui/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    signed = await r.client.post("/ui/login", data={"csrf": csrf[1], "key": key},
                                 follow_redirects=False)
    assert signed.status_code == 303, signed.text
    token = r.client.cookies.get(COOKIE)
    assert token is not None and token.startswith("o.")
    return token


async def enter_portal(r: Running, tenant: str = "acme") -> str:
    """Open a new portal link to `tenant`, as a new browser; the session cookie's value."""
    r.client.cookies.clear()
    link = await r.client.post("/v1/portal-sessions", headers=auth(ADMIN),
                               json={"tenant": tenant, "expires_in": "7d"})
    assert link.status_code == 201, link.text
    entered = await r.client.get(link.json()["url"])
    assert entered.status_code == 200, entered.text
    token = r.client.cookies.get(COOKIE)
    assert token is not None and token.startswith("p.")
    return token


async def with_cookie(url: str, token: str, path: str = "/ui/",
                      **headers: str) -> httpx.Response:
    """A GET carrying exactly this cookie (a browser replaying it), not following
    redirects."""
    async with httpx.AsyncClient(base_url=url) as client:
        return await client.get(path, headers={"cookie": f"{COOKIE}={token}", **headers},
                                follow_redirects=False)


async def assert_open(r: Running, token: str, path: str = "/ui/", **headers: str) -> None:
    page = await with_cookie(r.url, token, path, **headers)
    assert page.status_code == 200, (page.status_code, page.headers.get("location"))
    assert "Sign in" not in page.text


async def assert_ended(r: Running, token: str, path: str = "/ui/") -> None:
    """The cookie opens nothing any more: the page sends to the login form."""
    page = await with_cookie(r.url, token, path)
    assert page.status_code == 303, page.text
    assert page.headers["location"].startswith("/ui/login")


async def test_signing_out_ends_the_session_for_a_replayed_cookie(tmp_path: Path) -> None:
    loaded = write(tmp_path / "relay.toml", toml(sqlite(tmp_path)))
    async with running(loaded) as r:
        token = await sign_in(r)
        await assert_open(r, token)
        shown = await with_cookie(r.url, token, "/ui/t/default/endpoints/new")
        csrf = re.search(r'"X-CSRF-Token": "([^"]+)"', shown.text)
        assert csrf is not None
        out = await r.client.post("/ui/logout", data={"csrf": csrf[1]}, follow_redirects=False)
        assert out.status_code == 303 and out.headers["location"] == "/ui/login"
        await assert_ended(r, token)
        await assert_ended(r, token, "/ui/t/default/endpoints")
        # A POST with the old cookie and its own CSRF token changes nothing: the cookie
        # is a stranger's now, whose form token that is not.
        async with httpx.AsyncClient(base_url=r.url) as client:
            refused = await client.post(
                "/ui/t/default/endpoints", headers={"cookie": f"{COOKIE}={token}"},
                data={"csrf": csrf[1], "name": "x", "url": "https://x.example/"})
        assert refused.status_code == 403 and "security token" in refused.text
        assert (await r.client.get("/v1/webhooks", headers=auth(ADMIN))).json()["data"] == []
        # Another sign-in is a new session; the old cookie stays dead.
        again = await sign_in(r)
        assert again != token
        await assert_open(r, again)
        await assert_ended(r, token)


@pytest.fixture
async def two_relays(tmp_path: Path, pg_url: str) -> AsyncIterator[tuple[Running, Running]]:
    """Two relays sharing one PostgreSQL database, each with its own config file (the
    same content), as two `relay serve` processes would be."""
    one, two = tmp_path / "one.toml", tmp_path / "two.toml"
    async with running(write(one, toml(postgres(pg_url)))) as a, \
            running(write(two, toml(postgres(pg_url)))) as b:
        yield a, b


async def test_signing_out_on_one_relay_ends_the_session_on_the_other(
        two_relays: tuple[Running, Running]) -> None:
    a, b = two_relays
    token = await sign_in(a)
    await assert_open(b, token)  # the same session is valid on both
    page = await with_cookie(a.url, token, "/ui/t/default/endpoints/new")
    csrf = re.search(r'"X-CSRF-Token": "([^"]+)"', page.text)
    assert csrf is not None
    out = await a.client.post("/ui/logout", data={"csrf": csrf[1]}, follow_redirects=False)
    assert out.status_code == 303
    await assert_ended(b, token)
    await assert_ended(a, token)


async def test_another_relays_config_ends_the_key_and_tenant_sessions_it_no_longer_grants(
        tmp_path: Path, two_relays: tuple[Running, Running], pg_url: str) -> None:
    a, b = two_relays
    operator = await sign_in(a)
    other = await sign_in(a, OTHER)
    portal = await enter_portal(a)
    for token in (operator, other):
        await assert_open(b, token)
    await assert_open(b, portal, "/ui/t/acme/endpoints")
    # relay one's config loses ADMIN and disables acme; two's still grants both.
    write(tmp_path / "one.toml", toml(postgres(pg_url), admin=False, acme=False))
    assert await a.relay.reload()
    for r in (a, b):
        await assert_ended(r, operator)
        await assert_ended(r, portal, "/ui/t/acme/endpoints")
        await assert_open(r, other)  # a key still configured keeps its session
    # Removing the tenant altogether does the same.
    portal = await enter_portal(b)
    write(tmp_path / "one.toml", toml(postgres(pg_url), acme=None))
    assert await a.relay.reload()
    await assert_ended(b, portal, "/ui/t/acme/endpoints")


async def test_a_config_reload_ends_the_sessions_of_a_removed_key_or_a_disabled_tenant(
        tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    async with running(write(path, toml(sqlite(tmp_path)))) as r:
        operator = await sign_in(r)
        portal = await enter_portal(r)
        await assert_open(r, portal, "/ui/t/acme/endpoints")
        write(path, toml(sqlite(tmp_path), admin=False, acme=False))
        assert await r.relay.reload()
        await assert_ended(r, operator)
        await assert_ended(r, portal, "/ui/t/acme/endpoints")
        # Granted again, the old sessions stay ended: their rows are gone.
        write(path, toml(sqlite(tmp_path)))
        assert await r.relay.reload()
        await assert_ended(r, operator)
        await assert_ended(r, portal, "/ui/t/acme/endpoints")
        # A link to a disabled tenant opens nothing.
        link = await r.client.post("/v1/portal-sessions", headers=auth(ADMIN),
                                   json={"tenant": "acme"})
        write(path, toml(sqlite(tmp_path), acme=False))
        assert await r.relay.reload()
        assert (await r.client.get(link.json()["url"])).status_code == 401


async def test_what_a_config_edit_leaves_alone(tmp_path: Path) -> None:
    """As docs/ui.md says: a lower session_lifetime shortens only sessions started after
    it (their end is fixed at sign-in); a portal link is stateless, so with its tenant
    enabled again it opens again."""
    clock = FakeClock(NOW)
    path = tmp_path / "relay.toml"
    async with running(write(path, toml(sqlite(tmp_path))), clock=clock) as r:
        token = await sign_in(r)
        link = (await r.client.post("/v1/portal-sessions", headers=auth(ADMIN),
                                    json={"tenant": "acme", "expires_in": "7d"})).json()["url"]
        short = 'session_lifetime = "1h"'
        write(path, toml(sqlite(tmp_path), ui=short))
        assert await r.relay.reload()
        fresh = await sign_in(r)
        for _ in range(4):  # two hours, in use
            clock.now += 30 * 60
            await assert_open(r, token)
        await assert_ended(r, fresh)
        write(path, toml(sqlite(tmp_path), acme=False, ui=short))
        assert await r.relay.reload()
        assert (await r.client.get(link)).status_code == 401
        write(path, toml(sqlite(tmp_path), ui=short))
        assert await r.relay.reload()
        assert (await r.client.get(link)).status_code == 200


@pytest.mark.slow
async def test_idle_and_old_sessions_expire(tmp_path: Path) -> None:
    clock = FakeClock(NOW)
    loaded = write(tmp_path / "relay.toml", toml(sqlite(tmp_path)))
    async with running(loaded, clock=clock) as r:
        assert (r.relay.config.ui.session_idle, r.relay.config.ui.session_lifetime) == (
            HOUR, 12 * HOUR)
        token = await sign_in(r)
        clock.now += 50 * 60
        await assert_open(r, token)  # used: recorded at NOW + 50 min
        clock.now += 50 * 60
        await assert_open(r, token)  # 50 min after that use
        # The deliveries table's automatic refresh is not use.
        clock.now += 50 * 60
        await assert_open(r, token, **{"x-relay-refresh": "1"})
        clock.now += 11 * 60  # an hour since the last use
        await assert_ended(r, token)
        # The refresh itself then takes the whole page to the login form.
        page = "/ui/t/default/endpoints/ep_1"
        refresh = await with_cookie(r.url, token, f"{page}/deliveries", **{
            "hx-request": "true", "hx-current-url": f"{r.url}{page}", "x-relay-refresh": "1"})
        assert refresh.status_code == 204
        assert refresh.headers["hx-redirect"] == (
            "/ui/login?next=%2Fui%2Ft%2Fdefault%2Fendpoints%2Fep_1")
        # A session in use every 30 min still ends 12 h after signing in.
        token = await sign_in(r)
        start = clock.now
        while clock.now + 30 * 60 < start + 12 * HOUR:
            clock.now += 30 * 60
            await assert_open(r, token)
        clock.now = start + 12 * HOUR
        await assert_ended(r, token)
        # Housekeeping deletes the dead rows.
        store = r.relay.store
        live = await sign_in(r)
        await r.relay.housekeep()
        assert await store.purge_sessions(clock.now, HOUR) == 0
        await assert_open(r, live)
        clock.now += HOUR
        await r.relay.housekeep()
        await assert_ended(r, live)


async def test_a_short_idle_setting_and_a_portal_session_ending_with_its_link(
        tmp_path: Path) -> None:
    clock = FakeClock(NOW)
    loaded = write(tmp_path / "relay.toml", toml(sqlite(tmp_path),
                                                  ui='session_idle = "5m"'))
    async with running(loaded, clock=clock) as r:
        link = await r.client.post("/v1/portal-sessions", headers=auth(ADMIN),
                                   json={"tenant": "acme", "expires_in": "10m"})
        entered = await r.client.get(link.json()["url"])
        assert entered.status_code == 200
        token = r.client.cookies.get(COOKIE)
        assert token is not None
        for _ in range(2):  # used every 4 min: alive, until the link's 10 min are over
            clock.now += 4 * 60
            await assert_open(r, token, "/ui/t/acme/endpoints")
        clock.now += 4 * 60  # 4 min since the last use, 12 since the link was made
        await assert_ended(r, token, "/ui/t/acme/endpoints")
        # Idle for the 5 minutes of [ui] session_idle: ended too.
        token = await enter_portal(r)
        clock.now += 4 * 60
        await assert_open(r, token, "/ui/t/acme/endpoints")
        clock.now += 5 * 60
        await assert_ended(r, token, "/ui/t/acme/endpoints")


async def _opened(store: Store) -> Store:
    await store.open()
    return store


@pytest.fixture
def prepare_store() -> Callable[[Store], Awaitable[Store]]:
    return _opened


def session(id_: str, kind: str = "o", subject: str = "k1", **times: Any) -> SessionRow:
    values = {"created_at": NOW, "last_seen_at": NOW, "expires_at": NOW + 12 * HOUR, **times}
    return SessionRow(id_, kind, subject, **values)


async def test_the_stores_keep_touch_end_and_purge_sessions(store: Store) -> None:
    rows = [session("s1"), session("s2", subject="k2"), session("s3", "p", "acme"),
            session("s4", "p", "beta"), session("old", last_seen_at=NOW - HOUR),
            session("done", expires_at=NOW + 1)]
    for row in rows:
        await store.add_session(row)
    assert await store.get_session("s1") == rows[0]
    assert await store.get_session("nope") is None
    await store.touch_session("s1", NOW + 90)
    await store.touch_session("s1", NOW + 30)  # never backwards
    touched = await store.get_session("s1")
    assert touched is not None and touched.last_seen_at == NOW + 90
    assert await store.end_session("s2") is True
    assert await store.end_session("s2") is False
    # A config granting tenants acme and gamma, and key k1: the others' sessions end.
    assert await store.end_sessions("p", ["acme", "gamma"]) == 1  # beta's
    assert await store.end_sessions("o", ["k1"]) == 0  # k2's was signed out already
    assert await store.get_session("s4") is None and await store.get_session("s3") is not None
    # The purge deletes what relay.sessions.decide calls dead at that time.
    assert await store.purge_sessions(NOW + 1, 2 * HOUR) == 1  # done (expired)
    assert await store.purge_sessions(NOW + 2, HOUR) == 1  # old (idle an hour)
    assert [r.id for r in [await store.get_session(i) for i in ("s1", "s3")] if r] == [
        "s1", "s3"]
    assert await store.end_sessions("o", []) == 1  # no admin key left: s1 ends


async def test_keys_and_tenants_made_through_the_api_back_sessions_until_revoked(
        two_relays: tuple[Running, Running]) -> None:
    """An admin key made through the API signs in to the console; revoking it on one
    relay ends its session on the other, as disabling a tenant made there ends its
    portal sessions."""
    a, b = two_relays
    made = await a.client.post("/v1/api-keys", headers=auth(ADMIN), json={
        "name": "ops", "scopes": ["admin"], "tenant": "default"})
    assert made.status_code == 201, made.text
    assert (await a.client.post("/v1/tenants", headers=auth(ADMIN),
                                json={"id": "globex"})).status_code == 201
    operator = await sign_in(a, made.json()["key"])
    portal = await enter_portal(a, "globex")
    await assert_open(b, operator)
    await assert_open(b, portal, "/ui/t/globex/endpoints")
    revoked = await a.client.delete(f"/v1/api-keys/{made.json()['id']}",
                                    headers=auth(ADMIN))
    assert revoked.status_code == 204
    await assert_ended(b, operator)
    disabled = await a.client.patch("/v1/tenants/globex", headers=auth(ADMIN),
                                    json={"webhooks_enabled": False})
    assert disabled.status_code == 200
    await assert_ended(b, portal, "/ui/t/globex/endpoints")
