"""relay answers only its own hosts (DNS rebinding), hands out links from public_url, and
refuses console changes sent from another origin."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from relay import config as cfgmod
from tests.helpers import ADMIN, api_config, assert_error, auth, sha
from tests.receiver import Receiver
from tests.serving import Running, eventually, running

ATTACKER = "rebind.attacker.example"
HOOK = {"name": "x", "url": "http://127.0.0.1:9/h", "events": ["*"]}


def _port(url: str) -> str:
    return url.rpartition(":")[2]


@pytest.mark.slow
async def test_a_rebound_name_is_refused_before_any_route(
        make_config: Callable[..., cfgmod.Loaded]) -> None:
    """The README's first config (no api_keys, loopback): a page whose name resolves to
    127.0.0.1 creates nothing and gets no console cookie."""
    async with running(make_config()) as r:
        evil = {"host": f"{ATTACKER}:{_port(r.url)}"}
        error = assert_error(await r.client.post("/v1/webhooks", json=HOOK, headers=evil),
                             421, "host_not_allowed")
        assert ATTACKER in error["message"] and "[server] allowed_hosts" in error["message"]
        assert (await r.client.get("/v1/webhooks")).json()["data"] == []  # nothing created
        console = await r.client.get("/ui/", headers=evil)
        assert console.status_code == 421 and "set-cookie" not in console.headers
        assert "relay_session" not in r.client.cookies
        for method, path in (("GET", "/openapi.json"), ("GET", "/ui/login"),
                             ("GET", "/v1/events"), ("POST", "/v1/events"), ("GET", "/ui"),
                             ("GET", "/nowhere"), ("GET", "/healthz/"),
                             ("GET", "/ui/static/console.css")):
            response = await r.client.request(method, path, headers=evil)
            assert_error(response, 421, "host_not_allowed")
        # X-Forwarded-Host is never read, either way round.
        forwarded = {**evil, "x-forwarded-host": f"127.0.0.1:{_port(r.url)}"}
        assert (await r.client.get("/v1/webhooks", headers=forwarded)).status_code == 421
        assert (await r.client.get("/v1/webhooks",
                                   headers={"x-forwarded-host": ATTACKER})).status_code == 200
        # Probes answer an IP address too (load balancers and Prometheus use those), but
        # not a name: a rebinding page cannot read /metrics.
        for path in ("/healthz", "/readyz", "/metrics"):
            assert_error(await r.client.get(path, headers=evil), 421, "host_not_allowed")
            for address in ("10.0.0.5", f"10.0.0.5:{_port(r.url)}", "[fd00::1]:9090",
                            "127.0.0.1"):
                assert (await r.client.get(path, headers={"host": address})).status_code \
                    == 200, (path, address)


@pytest.mark.parametrize(("server", "allowed", "refused"), [
    # Loopback: its names in any case, with or without a trailing dot, any port.
    ({}, ["127.0.0.1", "localhost", "LocalHost.", "[::1]", "[0:0::1]:1", "localhost:"],
     ["127.0.0.2", "localhost.localdomain", "0.0.0.0", "[::2]", "evil.com"]),
    # public_url's host is allowed; lookalikes are not.
    ({"public_url": "https://Relay.Example.com"},
     ["relay.example.com", "RELAY.example.com.:443", "127.0.0.1"],
     ["relay.example.com.evil.com", "example.com", "xrelay.example.com"]),
    # allowed_hosts add names; an IPv6 address may be written without brackets.
    ({"allowed_hosts": ["relay.internal", "10.0.0.5", "fd00::5"]},
     ["relay.internal", "10.0.0.5:8080", "[fd00::5]", "localhost"],
     ["other.internal", "10.0.0.6"]),
    # A wildcard bind: loopback names and public_url's host; nothing else.
    ({"listen": "0.0.0.0:8080", "public_url": "http://relay.lan:8080"},
     ["relay.lan", "127.0.0.1", "localhost"], ["10.0.0.5", ATTACKER]),
    # "*": every well-formed host.
    ({"allowed_hosts": ["*"]}, [ATTACKER, "10.0.0.6"], []),
])
async def test_allowed_hosts(make_config: Callable[..., cfgmod.Loaded],
                             server: dict[str, object], allowed: list[str],
                             refused: list[str]) -> None:
    keys = [{"name": "admin", "key_sha256": sha(ADMIN), "scopes": ["admin"]}]
    async with running(make_config(server=server, api_keys=keys)) as r:
        for host in allowed:
            response = await r.client.get("/v1/webhooks", headers={"host": host, **auth(ADMIN)})
            assert response.status_code == 200, (host, response.text)
        for host in refused:
            assert_error(await r.client.get("/v1/webhooks", headers={"host": host}), 421,
                         "host_not_allowed")


async def _raw(url: str, head: bytes) -> tuple[int, bytes]:
    """Send a request as bytes (httpx would fix its Host); the status and the whole answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", int(_port(url)))
    try:
        writer.write(head)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    return int(data.split(b" ", 2)[1]), data


@pytest.mark.parametrize("host", [
    None, b"user@127.0.0.1", b"127.0.0.1:99999", b"127.0.0.1:8a", b"[::1", b"::1",
    b"127.0.0.1/ui", b"local host", b"[fe80::1%eth0]", b"ex\xc3\xa4mple.com", b"",
    b"127.0.0.1, evil.com", b"127.0.0.1:+80", b"localhost..", b"-evil.com",
])
async def test_a_missing_or_malformed_host_is_a_400(
        make_config: Callable[..., cfgmod.Loaded], host: bytes | None) -> None:
    async with running(make_config()) as r:
        line = b"" if host is None else b"Host: " + host + b"\r\n"
        for version in (b"HTTP/1.0", b"HTTP/1.1"):
            status, answer = await _raw(r.url, b"GET /v1/webhooks " + version + b"\r\n" + line
                                        + b"Connection: close\r\n\r\n")
            assert status == 400 and b'"host_invalid"' in answer, answer
        # HAProxy's default check is an HTTP/1.0 request without Host: probes answer that
        # (an empty Host too), not a malformed one.
        status, _ = await _raw(r.url, b"GET /healthz HTTP/1.0\r\n" + line + b"\r\n")
        assert status == (200 if host in (None, b"") else 400), host


async def test_two_host_headers_are_a_400(make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with running(make_config()) as r:
        status, answer = await _raw(r.url, b"GET /v1/webhooks HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                    b"Host: " + ATTACKER.encode() + b"\r\n"
                                    b"Connection: close\r\n\r\n")
        assert status == 400 and b'"host_invalid"' in answer


async def test_a_config_edit_applies_to_hosts(tmp_path: Path) -> None:
    """allowed_hosts is read per request: a reloaded config applies at once."""
    path = tmp_path / "relay.toml"
    path.write_text(f'[storage]\npath = "{tmp_path / "relay.db"}"\n')
    loaded = cfgmod.load(path)
    async with running(loaded) as r:
        assert (await r.client.get("/v1/webhooks", headers={"host": "relay.lan"})).status_code \
            == 421
        path.write_text(path.read_text() + '[server]\nallowed_hosts = ["relay.lan"]\n')
        assert await r.relay.reload()
        assert (await r.client.get("/v1/webhooks", headers={"host": "relay.lan"})).status_code \
            == 200


async def test_a_reload_is_judged_on_the_address_relay_listens_on(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A `listen` change waits for a restart, so a reload validates the file with the
    address relay still listens on: removing the keys of a relay on every address is
    refused (every caller would be admin), and so is a move to loopback that deletes the
    public_url that address needs; a move with a new public_url applies it at once."""
    caplog.set_level("INFO", logger="relay")
    path = tmp_path / "relay.toml"
    keys = f'[[api_keys]]\nname = "admin"\nkey_sha256 = "{sha(ADMIN)}"\nscopes = ["admin"]\n'

    def write(server: str, with_keys: bool = True) -> None:
        path.write_text(f'[storage]\npath = "{tmp_path / "relay.db"}"\n[server]\n{server}\n'
                        + (keys if with_keys else ""))

    async def answer(host: str, key: str | None = ADMIN) -> int:
        headers = {"host": host, **(auth(key) if key else {})}
        return (await r.client.get("/v1/webhooks", headers=headers)).status_code

    async def link() -> str:
        made = await r.client.post("/v1/portal-sessions", json={"tenant": "default"},
                                   headers=auth(ADMIN))
        assert made.status_code == 201, made.text
        return str(made.json()["url"])

    def refusals() -> list[str]:
        return [rec.fields["details"] for rec in caplog.records  # type: ignore[attr-defined]
                if rec.msg == "config_reload" and rec.fields.get("result") == "refused"]

    write('listen = "0.0.0.0:8080"\npublic_url = "https://relay.example.com"')
    async with running(cfgmod.load(path)) as r:
        port = _port(r.url)
        wildcard = f'listen = "0.0.0.0:{port}"\npublic_url = "https://relay.example.com"'
        write(wildcard, with_keys=False)  # the same address, the keys gone
        assert not await r.relay.reload()
        assert "api_keys: required when listening beyond loopback" in refusals()[-1]
        assert await answer("relay.example.com", key=None) == 401
        # Moved to loopback in the file, public_url deleted: refused, as it would leave
        # relay on every address without it (or without keys); nothing changed.
        for with_keys in (True, False):
            write(f'listen = "127.0.0.1:{port}"', with_keys)
            assert not await r.relay.reload()
            assert f"(0.0.0.0:{port})" in refusals()[-1]
            assert await answer("relay.example.com") == 200
            assert await answer("relay.example.com", key=None) == 401
            assert (await link()).startswith("https://relay.example.com/ui/portal?token=")
        # Moved with a new public_url and allowed_hosts: those apply now, the address at
        # the restart.
        write(f'listen = "127.0.0.1:{port}"\npublic_url = "https://new.example.com"\n'
              'allowed_hosts = ["relay.internal"]')
        assert await r.relay.reload()
        assert r.relay.config.server.listen == f"0.0.0.0:{port}"
        for host, status in (("new.example.com", 200), ("relay.internal", 200),
                             ("localhost", 200), ("relay.example.com", 421)):
            assert await answer(host) == status, host
        assert (await link()).startswith("https://new.example.com/ui/portal?token=")


# --- public_url: links and the log ---------------------------------------------------------


async def test_portal_links_come_from_public_url_not_from_host(
        make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with running(api_config(make_config, "http://127.0.0.1:9")) as r:
        # No public_url: the listen address, whatever name the request used.
        link = (await r.client.post("/v1/portal-sessions", json={"tenant": "acme"}, headers={
            **auth(ADMIN), "host": f"localhost:{_port(r.url)}"})).json()["url"]
        assert link.startswith(f"{r.url}/ui/portal?token=p.acme."), link
    loaded = api_config(make_config, "http://127.0.0.1:9",
                        server={"public_url": "https://hooks.example.com/"})
    async with running(loaded) as r:
        link = (await r.client.post("/v1/portal-sessions", json={"tenant": "acme"},
                                    headers=auth(ADMIN))).json()["url"]
        assert link.startswith("https://hooks.example.com/ui/portal?token=p.acme."), link


async def test_started_line_names_the_console(make_config: Callable[..., cfgmod.Loaded],
                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="relay")
    async with running(make_config()) as r:
        [started] = [rec for rec in caplog.records if rec.msg == "started"]
        assert started.fields["console"] == f"{r.url}/ui/"  # type: ignore[attr-defined]
    caplog.clear()
    async with running(make_config(server={"public_url": "https://hooks.example.com"})):
        [started] = [rec for rec in caplog.records if rec.msg == "started"]
        assert started.fields["console"] == "https://hooks.example.com/ui/"  # type: ignore[attr-defined]


# --- Origin on the console's changes -------------------------------------------------------


def _csrf(page: str) -> str:
    found = re.search(r'"X-CSRF-Token": "([^"]+)"', page)
    assert found is not None, "no CSRF token on the page"
    return found.group(1)


async def test_a_cross_origin_change_is_refused_even_with_a_valid_token(
        make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with running(make_config(server={"public_url": "https://relay.example.com"})) as r:
        form = await r.client.get("/ui/t/default/endpoints/new")  # the cookie, and its token
        fields = {"csrf": _csrf(form.text), "name": "ledger", "events": "*",
                  "url": "https://ledger.example.com/h", "signature": "standard-webhooks"}
        port = _port(r.url)
        for headers in ({"origin": "https://evil.example"},
                        {"origin": "null"},  # a sandboxed frame, a no-referrer page
                        {"origin": f"http://localhost:{port}"},  # another origin of the host
                        {"origin": f"https://127.0.0.1:{port}"},  # another scheme
                        {"origin": f"http://127.0.0.1:{int(port) + 1}"},  # another port
                        {"referer": "https://evil.example/page"},  # no Origin: the Referer
                        {"origin": "https://evil.example", "referer": f"{r.url}/ui/"}):
            refused = await r.client.post("/ui/t/default/endpoints", data=fields,
                                          headers=headers)
            assert refused.status_code == 403, (headers, refused.text)
            assert "from another site" in refused.text
        assert (await r.client.get("/v1/webhooks")).json()["data"] == []  # nothing created
        # Its own origins: the request's scheme and Host, and public_url's (a TLS proxy).
        for n, headers in enumerate(({"origin": r.url}, {"origin": f"{r.url}/"},
                                     {"referer": f"{r.url}/ui/t/default/endpoints/new"},
                                     {"origin": "https://relay.example.com"},
                                     {"origin": "https://relay.example.com:443"},
                                     {})):  # neither: the CSRF token decides, as before
            created = await r.client.post("/ui/t/default/endpoints",
                                          data={**fields, "name": f"ledger-{n}"},
                                          headers=headers, follow_redirects=False)
            assert created.status_code == 200 and "Endpoint created" in created.text, headers
        assert len((await r.client.get("/v1/webhooks")).json()["data"]) == 6
        # The sign-in form too, before its token is looked at.
        login = await r.client.post("/ui/login", data={"csrf": "x", "key": "k"},
                                    headers={"origin": "https://evil.example"})
        assert login.status_code == 403 and "from another site" in login.text


@pytest.mark.slow
async def test_another_sites_page_cannot_post_to_the_open_api(
        make_config: Callable[..., cfgmod.Loaded]) -> None:
    """Without api_keys every loopback caller is admin, and a page of any site can send a
    POST that needs no preflight (no body, or a form) to 127.0.0.1: its Origin says
    where it came from."""
    async with Receiver() as rx, running(make_config(endpoints=[
            {"id": "dev", "url": f"{rx.url}/dev"}])) as r:
        assert (await r.send()).status_code == 202
        await rx.wait_for(1, "/dev")
        [delivery] = await eventually(lambda: _deliveries(r), message="a delivery")
        for origin in ("https://evil.example", "null", f"http://localhost:{_port(r.url)}"):
            for path in ("/v1/webhooks/dev/test", "/v1/webhooks/dev/rotate-secret",
                         f"/v1/deliveries/{delivery['id']}/retry", "/v1/events",
                         f"/v1/deliveries/{delivery['id']}/cancel"):
                response = await r.client.post(path, headers={"origin": origin})
                error = assert_error(response, 403, "origin_not_allowed")
                assert "another site" in error["message"]
            refused = await r.client.post("/v1/events", json={"type": "t", "data": {}},
                                          headers={"origin": origin})
            assert_error(refused, 403, "origin_not_allowed")
        assert len(rx.received()) == 1  # no test sent, nothing retried
        # A Referer counts when there is no Origin; GETs are not changes.
        assert_error(await r.client.post("/v1/webhooks/dev/test", headers={
            "referer": "https://evil.example/x"}), 403, "origin_not_allowed")
        assert (await r.client.get("/v1/webhooks", headers={
            "origin": "https://evil.example"})).status_code == 200
        # relay's own origin, or none at all (curl, SDKs): answered.
        for headers in ({"origin": r.url}, {}):
            tested = await r.client.post("/v1/webhooks/dev/test", headers=headers)
            assert tested.status_code == 200, tested.text


async def _deliveries(r: Running) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = (await r.client.get("/v1/webhooks/dev/deliveries")).json()[
        "data"]
    return data


async def test_own_pages_ask_for_a_same_origin_referrer(
        make_config: Callable[..., cfgmod.Loaded]) -> None:
    """`no-referrer` would make a browser send `Origin: null` on relay's own forms."""
    async with running(make_config()) as r:
        page = await r.client.get("/ui/")
        assert page.headers["referrer-policy"] == "same-origin"
