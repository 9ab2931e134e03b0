"""Endpoint headers are HTTP: refused in the API and the console, and a stored row from
before the rules is delivered without its bad headers, as a raw socket on loopback sees
the request (no Transfer-Encoding beside Content-Length, no injected line)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import pytest

from relay import config as cfgmod
from relay.types import EndpointSpec, NewEndpoint
from tests.helpers import (
    BAD_HEADER_NAMES,
    BAD_HEADER_VALUES,
    FORBIDDEN_HEADERS,
    admin_api,
    assert_error,
    config_on,
    relay,
)
from tests.serving import running

HOOK = {"name": "n", "url": "https://x.example/", "events": ["lead.*"]}


@pytest.mark.slow
async def test_api_refuses_each_bad_header_naming_it(
        make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with admin_api(make_config) as (r, _rx):
        hook = (await r.client.post("/v1/webhooks", json=HOOK)).json()
        before = await r.relay.store.list_endpoints()
        cases = ([({name: "x"}, name) for name in FORBIDDEN_HEADERS + BAD_HEADER_NAMES]
                 + [({"X-Team": value}, "X-Team") for value in BAD_HEADER_VALUES
                    if value != "a\ud800"]  # not JSON text: a 400
                 + [({"X-A": "1", "x-a": "2"}, "x-a")])
        for headers, name in cases:
            for method, path, body in (("POST", "/v1/webhooks", {**HOOK, "headers": headers}),
                                       ("PATCH", f"/v1/webhooks/{hook['id']}",
                                        {"headers": headers})):
                response = await r.client.request(method, path, json=body)
                error = assert_error(response, 422, "validation_failed")
                assert [d["path"] for d in error["details"]] == [f"headers.{name}"], \
                    (method, headers, error)
        for name in [n for n in FORBIDDEN_HEADERS + BAD_HEADER_NAMES
                     if n.lower() not in ("relay-signature", "x-relay-signature")]:
            response = await r.client.post("/v1/webhooks", json={
                **HOOK, "signature": "hmac-sha256-body", "signature_header": name})
            error = assert_error(response, 422, "validation_failed")
            assert [d["path"] for d in error["details"]] == ["signature_header"], (name, error)
        # A custom header may not be the endpoint's own signature header, on create or
        # on a PATCH of the headers alone.
        signed = {**HOOK, "signature": "hmac-sha256-body", "signature_header": "X-Sig"}
        clash = await r.client.post("/v1/webhooks", json={**signed, "headers": {"x-sig": "1"}})
        error = assert_error(clash, 422, "validation_failed")
        assert error["details"] == [{"path": "headers.x-sig",
                                     "message": "x-sig is this endpoint's signature_header"}]
        sig_hook = (await r.client.post("/v1/webhooks", json=signed)).json()
        clash = await r.client.patch(f"/v1/webhooks/{sig_hook['id']}",
                                     json={"headers": {"X-SIG": "1"}})
        assert assert_error(clash, 422, "validation_failed")["details"][0]["path"] == \
            "headers.X-SIG"
        after = await r.relay.store.list_endpoints()
        assert [row.spec for row in after if row.id != sig_hook["id"]] == \
            [row.spec for row in before]


async def test_console_form_refuses_bad_headers(
        make_config: Callable[..., cfgmod.Loaded]) -> None:
    async with running(make_config()) as r:
        form = await r.client.get("/ui/t/default/endpoints/new")
        csrf = re.search(r'"X-CSRF-Token": "([^"]+)"', form.text)
        assert csrf is not None
        base = {"csrf": csrf.group(1), "name": "n", "url": "https://x.example/h",
                "events": "*", "signature": "standard-webhooks"}
        for text in ("Transfer-Encoding: chunked", "X-Team: sales\r\nHost: evil",
                     "X-Team: a\x00b", "X-Team: a\x0bb", "X-Team: a\x85b", "Bad Name: 1",
                     "X-A: 1\nx-a: 2", "proxy-authorization: x"):
            refused = await r.client.post("/ui/t/default/endpoints",
                                          data={**base, "headers": text})
            assert refused.status_code == 422, text
            assert 'id="headers-error"' in refused.text, (text, refused.text)
        assert (await r.client.get("/v1/webhooks")).json()["data"] == []
        # The form's own syntax: CRLF lines, spaces around name and value.
        created = await r.client.post("/ui/t/default/endpoints", data={
            **base, "headers": "X-Team:  sales \r\n\r\n  X-Tab:\ta\tb\r\n"})
        assert created.status_code == 200, created.text
        [hook] = (await r.client.get("/v1/webhooks")).json()["data"]
        assert hook["headers"] == {"X-Team": "sales", "X-Tab": "a\tb"}


class RawReceiver:
    """An HTTP/1.1 server on loopback that keeps each request's bytes as they arrived."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.arrived = asyncio.Condition()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"\r\ncontent-length: *(\d+)", head, re.IGNORECASE)
                body = await reader.readexactly(int(length.group(1)) if length else 0)
                async with self.arrived:
                    self.requests.append(head + body)
                    self.arrived.notify_all()
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def wait_for(self, count: int) -> list[bytes]:
        async with self.arrived:
            await asyncio.wait_for(
                self.arrived.wait_for(lambda: len(self.requests) >= count), 10)
        return self.requests

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        async with server:
            yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


# What an endpoint stored before the rules might hold: each must not reach the wire.
OLD_HEADERS = {"Transfer-Encoding": "chunked", "Content-Length": "5", "Host": "evil.example",
               "X-Split": "a\r\nInjected: 1", "X Bad": "1", "Connection": "close",
               "Content-Type": "text/plain", "webhook-id": "forged", "X-Good": "kept"}


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_stored_bad_headers_are_never_sent(
        caplog: pytest.LogCaptureFixture, backend: str, tmp_path: Path) -> None:
    caplog.set_level(logging.WARNING, logger="relay")
    raw = RawReceiver()
    async with raw.serving() as url, config_on(backend, tmp_path) as loaded, \
            running(loaded) as r:
        spec = EndpointSpec(url=url + "/old", events=("*",), headers=OLD_HEADERS,
                            signature="hmac-sha256-body", signature_header="Content-Length",
                            payload="envelope", filter={})
        await r.relay.store.create_endpoint(
            NewEndpoint("ep_old", "default", "old", spec, "s" * 20, r.relay.clock()), None)
        await r.relay.store.create_endpoint(NewEndpoint(
            "ep_url", "default", "old url", replace(spec, url="http://0x7f.1/x", headers={},
                                                    events=("none.*",)),
            "s" * 20, r.relay.clock()), None)
        await r.relay.refresh_endpoints()
        for n in range(10):
            assert (await r.send(data={"n": n})).status_code == 202
        requests = await raw.wait_for(10)
        for request_bytes in requests:
            head, _, body = request_bytes.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")[1:]
            names = [line.partition(":")[0].lower() for line in lines]
            fields = {line.partition(":")[0].lower(): line.partition(":")[2].strip()
                      for line in lines}
            assert "transfer-encoding" not in names and "injected" not in names, lines
            assert names.count("content-length") == 1 and \
                fields["content-length"] == str(len(body)), lines
            assert names.count("host") == 1 and fields["host"] == url.removeprefix("http://")
            assert names.count("content-type") == 1 and \
                fields["content-type"] == "application/json"
            assert fields["x-good"] == "kept" and "x-split" not in names
            assert "x bad" not in names and fields.get("connection") != "close", lines
            assert re.fullmatch(r"[0-9a-f]{64}", fields["x-relay-signature"])
            assert fields["webhook-id"].startswith("evt_")
        # Warned for each skipped header at each load of the endpoint (here one or two:
        # PostgreSQL's change notice reloads too), not at each delivery.
        warned = [rec.fields["problem"] for rec in caplog.records  # type: ignore[attr-defined]
                  if rec.msg == "endpoint_header_skipped" and rec.fields["endpoint"] == "ep_old"]
        skipped = len(OLD_HEADERS) - 1 + 1  # X-Good is sent; + the signature_header
        assert len(set(warned)) == skipped and len(warned) % skipped == 0, warned
        assert len(warned) < skipped * len(requests), warned
        # `relay status` says which headers are not sent.
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "relay", "status", "--url", r.url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        assert proc.returncode == 0, err
        text = out.decode()
        for name in OLD_HEADERS:
            if name != "X-Good":
                assert f"ep_old: header {name!r} is not sent: " in text, text
        assert "ep_old: signature_header 'Content-Length' is not used" in text
        assert "ep_url: url is refused at every delivery: host '0x7f.1' is not a valid IP " \
            "address" in text, text


def test_relay_check_names_each_bad_header(tmp_path: Path) -> None:
    (tmp_path / "relay.toml").write_text('''
[[endpoints]]
id = "crm"
url = "https://crm.example.com/h"
signature = "hmac-sha256-body"
secret = "0123456789abcdef"
signature_header = "Transfer-Encoding"
[endpoints.headers]
"Transfer-Encoding" = "chunked"
"X-Team" = "a\\u0000b"
"Bad Name" = "1"
"X-Ok" = "fine"
"proxy-authorization" = "x"
"x-relay-signature" = "forged"
''')
    done = relay("check", "--config", "relay.toml", cwd=tmp_path)
    assert done.returncode == 1 and done.stdout == "", done
    lines = sorted(line.strip() for line in done.stderr.splitlines()[1:])
    assert [line.partition(": ")[0] for line in lines] == [
        "endpoints[0].headers.Bad Name", "endpoints[0].headers.Transfer-Encoding",
        "endpoints[0].headers.X-Team", "endpoints[0].headers.proxy-authorization",
        "endpoints[0].headers.x-relay-signature", "endpoints[0].signature_header"], lines
    assert "relay sets x-relay-signature itself" in done.stderr
    assert "control character '\\x00'" in done.stderr
