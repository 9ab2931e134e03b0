"""The sender and the network guard against a real loopback receiver (SPEC §5: outcomes,
redirects, timeouts, Retry-After, SSRF refusals including DNS rebinding)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import AsyncIterator, Iterator
from email.utils import formatdate

import pytest
from aiohttp.abc import ResolveResult
from aiohttp.resolver import ThreadedResolver

from relay.delivery.netguard import GuardedResolver, GuardRefused, check_url, forbidden_reason
from relay.delivery.sender import RESPONSE_BODY_LIMIT, Outcome, Sender, parse_retry_after
from relay.errors import DestinationRefused
from tests.receiver import Receiver

UA = "relay/test"
JSON = {"content-type": "application/json"}
LOCAL = {"allow_private": True, "allow_http": True}  # what loopback tests need
GUARDED = {"allow_private": False, "allow_http": True}


@pytest.fixture
async def sender() -> AsyncIterator[Sender]:
    s = Sender(user_agent=UA, max_connections=50)
    await s.start()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def rx() -> AsyncIterator[Receiver]:
    async with Receiver() as receiver:
        yield receiver


def port_of(rx: Receiver) -> int:
    return int(rx.url.rsplit(":", 1)[1])


# --- outcomes -----------------------------------------------------------------------------


async def test_2xx_is_ok_and_the_request_arrives_as_given(sender: Sender, rx: Receiver) -> None:
    body = b'{"id":"evt_1","data":{"name":"Zo\xc3\xab"}}'
    headers = {**JSON, "webhook-id": "evt_1", "X-Team": "sales"}
    out = await sender.send(f"{rx.url}/hook", headers, body, timeout=5, **LOCAL)
    assert out.ok and out.status == 200 and out.error is None and out.retry_after is None
    assert out.body == b'{"ok":true}'
    assert out.headers["content-type"] == "application/json"
    assert 0 < out.duration_ms < 5000
    [got] = rx.received("/hook")
    assert got.method == "POST" and got.body == body
    assert got.headers["user-agent"] == UA
    assert got.headers["content-type"] == "application/json"
    assert got.headers["webhook-id"] == "evt_1" and got.headers["x-team"] == "sales"
    assert "cookie" not in got.headers


async def test_headers_are_sent_as_given_without_guessing(sender: Sender, rx: Receiver) -> None:
    await sender.send(f"{rx.url}/a", {"User-Agent": "custom/1"}, b"raw", timeout=5, **LOCAL)
    [got] = rx.received("/a")
    assert got.headers["user-agent"] == "custom/1"  # the caller's value wins
    assert "content-type" not in got.headers  # none invented for a bytes body
    assert got.body == b"raw"


@pytest.mark.parametrize("code", [200, 201, 202, 204, 299])
async def test_every_2xx_is_ok(sender: Sender, rx: Receiver, code: int) -> None:
    out = await sender.send(f"{rx.url}/status/{code}", JSON, b"{}", timeout=5, **LOCAL)
    assert (out.status, out.ok, out.error) == (code, True, None)


@pytest.mark.parametrize("code", [400, 401, 404, 410, 429, 500, 502, 503])
async def test_non_2xx_fails_with_the_status(sender: Sender, rx: Receiver, code: int) -> None:
    out = await sender.send(f"{rx.url}/status/{code}", JSON, b"{}", timeout=5, **LOCAL)
    assert (out.status, out.ok, out.error) == (code, False, None)
    assert out.body == b'{"status":%d}' % code


@pytest.mark.parametrize("size", [10, RESPONSE_BODY_LIMIT, RESPONSE_BODY_LIMIT + 1, 20_000,
                                  2_000_000])
async def test_response_body_is_cut_at_4_kib(sender: Sender, rx: Receiver, size: int) -> None:
    big = bytes(i % 251 for i in range(size))
    rx.respond("/big", (500, {"X-Why": "boom", "Content-Type": "text/plain"}, big))
    out = await sender.send(f"{rx.url}/big", JSON, b"{}", timeout=5, **LOCAL)
    assert out.status == 500 and not out.ok and out.error is None
    assert out.headers["x-why"] == "boom" and out.headers["content-type"] == "text/plain"
    assert out.headers["content-length"] == str(size)
    assert out.body == big[:RESPONSE_BODY_LIMIT]
    # The connection was released or closed properly: the next send works (script used up).
    again = await sender.send(f"{rx.url}/big", JSON, b"{}", timeout=5, **LOCAL)
    assert again.ok and again.body == b'{"ok":true}'
    assert len(rx.received("/big")) == 2


async def test_redirect_is_not_followed(sender: Sender, rx: Receiver) -> None:
    out = await sender.send(f"{rx.url}/redirect", JSON, b"{}", timeout=5, **LOCAL)
    assert out.status == 302 and not out.ok
    assert out.error == "redirect not followed (302 -> /ok)"
    assert out.headers["location"] == "/ok"
    assert [r.path for r in rx.requests] == ["/redirect"]


async def test_redirect_without_location(sender: Sender, rx: Receiver) -> None:
    rx.respond("/r", 307)
    out = await sender.send(f"{rx.url}/r", JSON, b"{}", timeout=5, **LOCAL)
    assert (out.status, out.error) == (307, "redirect not followed (307, no Location)")


async def test_timeout(sender: Sender, rx: Receiver) -> None:
    started = time.monotonic()
    out = await sender.send(f"{rx.url}/hang", JSON, b"{}", timeout=0.5, **LOCAL)
    elapsed = time.monotonic() - started
    assert out.status is None and not out.ok and out.error == "timeout after 0.5s"
    assert 0.45 <= elapsed < 2 and 450 <= out.duration_ms < 2000
    assert len(rx.received("/hang")) == 1


async def test_connection_refused(sender: Sender) -> None:
    # Bound but not listening: connects are refused, and nothing else can take the port.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        out = await sender.send(f"http://127.0.0.1:{port}/x", JSON, b"{}", timeout=5, **LOCAL)
    assert out.status is None and not out.ok
    assert out.error == f"connection refused: 127.0.0.1:{port}"
    assert out.headers == {} and out.body == b"" and out.retry_after is None


async def test_bad_header_value_is_an_outcome_not_an_exception(
    sender: Sender, rx: Receiver,
) -> None:
    out = await sender.send(f"{rx.url}/x", {"x-bad": "a\r\nb"}, b"{}", timeout=5, **LOCAL)
    assert out.status is None and not out.ok
    assert out.error == ("request failed: ValueError: Forbidden control character detected in "
                         "headers. Potential header injection attack.")
    assert rx.requests == []


async def test_send_after_close_is_an_outcome(rx: Receiver) -> None:
    s = Sender(user_agent=UA)
    await s.start()
    await s.close()
    out = await s.send(f"{rx.url}/x", JSON, b"{}", timeout=5, **LOCAL)
    assert (out.status, out.error) == (None, "sender is closed")


async def test_cancellation_propagates(sender: Sender, rx: Receiver) -> None:
    task = asyncio.create_task(sender.send(f"{rx.url}/hang", JSON, b"{}", timeout=30, **LOCAL))
    await rx.wait_for(1, "/hang")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# --- Retry-After --------------------------------------------------------------------------

NOW = 1_445_412_480.0  # Wed, 21 Oct 2015 07:28:00 GMT


@pytest.mark.parametrize(("value", "expected"), [
    (None, None),
    ("", None),
    ("   ", None),
    ("0", 0.0),
    ("120", 120.0),
    (" 5 ", 5.0),
    ("86400000", 86_400_000.0),  # capped by the caller, not here
    ("-1", None),
    ("1.5", None),
    ("1e3", None),
    ("soon", None),
    ("\u0663", None),  # a non-ASCII digit
    ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),  # IMF-fixdate
    ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
    ("Wed, 21 Oct 2015 07:00:00 GMT", 0.0),  # in the past
    ("Wednesday, 21-Oct-15 07:29:00 GMT", 60.0),  # obsolete RFC 850
    ("Wed Oct 21 07:28:10 2015", 10.0),  # obsolete asctime
    ("Wed, 21 Oct 2015 07:28:05 -0000", 5.0),
    ("Wed, 32 Oct 2015 07:28:00 GMT", None),
    ("99 Foo 2015", None),
])
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


async def test_retry_after_is_read_from_any_response(sender: Sender, rx: Receiver) -> None:
    when = formatdate(time.time() + 120, usegmt=True)
    rx.respond("/busy", (429, {"Retry-After": "7"}), (503, {"Retry-After": when}),
               (200, {"Retry-After": "3"}))
    first = await sender.send(f"{rx.url}/busy", JSON, b"{}", timeout=5, **LOCAL)
    second = await sender.send(f"{rx.url}/busy", JSON, b"{}", timeout=5, **LOCAL)
    third = await sender.send(f"{rx.url}/busy", JSON, b"{}", timeout=5, **LOCAL)
    assert (first.status, first.retry_after) == (429, 7.0)
    assert second.status == 503 and second.retry_after is not None
    assert 115 <= second.retry_after <= 120
    assert third.ok and third.retry_after == 3.0


# --- SSRF ---------------------------------------------------------------------------------

HINT = "set allow_private_networks to allow it"
SPELL = "write an IPv4 address as four decimal numbers without leading zeros (127.0.0.1)"


@pytest.mark.parametrize(("url", "error"), [
    ("http://127.0.0.1:{port}/ssrf", f"127.0.0.1 is not a public address (loopback); {HINT}"),
    ("http://[::1]:{port}/ssrf", f"::1 is not a public address (loopback); {HINT}"),
    ("http://[::ffff:127.0.0.1]:{port}/ssrf",
     f"::ffff:7f00:1 (127.0.0.1) is not a public address (loopback); {HINT}"),
    ("http://0.0.0.0:{port}/ssrf", f"0.0.0.0 is not a public address (unspecified); {HINT}"),
    ("http://[::]:{port}/ssrf", f":: is not a public address (unspecified); {HINT}"),
    ("http://10.0.0.1/ssrf", f"10.0.0.1 is not a public address (private); {HINT}"),
    ("http://169.254.169.254/latest/meta-data/",
     f"169.254.169.254 is not a public address (link-local); {HINT}"),
    ("http://[fd00::1]/ssrf", f"fd00::1 is not a public address (private); {HINT}"),
    # Forms socket would accept as 127.0.0.1 (aiohttp takes the first two for IP literals,
    # unresolved, and would resolve the third): not canonical, refused by their form.
    ("http://127.1:{port}/ssrf", f"host '127.1' is not a valid IP address: {SPELL}"),
    ("http://2130706433:{port}/ssrf", f"host '2130706433' is not a valid IP address: {SPELL}"),
    ("http://0x7f.0.0.1:{port}/ssrf", f"host '0x7f.0.0.1' is not a valid IP address: {SPELL}"),
])
async def test_private_ip_literals_are_refused_before_sending(
    sender: Sender, rx: Receiver, url: str, error: str,
) -> None:
    out = await sender.send(url.format(port=port_of(rx)), JSON, b"{}", timeout=2, **GUARDED)
    assert out == Outcome(None, {}, b"", out.duration_ms, f"destination refused: {error}", None)
    assert rx.requests == []


@pytest.mark.parametrize("name", ["localhost", "LOCALHOST"])
async def test_names_resolving_to_loopback_are_refused_at_connect(
    sender: Sender, rx: Receiver, name: str,
) -> None:
    out = await sender.send(f"http://{name}:{port_of(rx)}/ssrf", JSON, b"{}", timeout=2,
                            **GUARDED)
    assert out.status is None and not out.ok and out.error is not None
    assert out.error.startswith(f"destination refused: {name.lower()} -> ")
    assert "127.0.0.1 (loopback)" in out.error
    assert rx.requests == []


async def test_allow_private_reaches_loopback(sender: Sender, rx: Receiver) -> None:
    """The control for the refusals above: the same destinations, allowed."""
    port = port_of(rx)
    for host in ("127.0.0.1", "localhost"):
        out = await sender.send(f"http://{host}:{port}/ok", JSON, b"{}", timeout=5, **LOCAL)
        assert out.ok, out
    assert len(rx.received("/ok")) == 2


async def test_http_refused_unless_allowed(sender: Sender, rx: Receiver) -> None:
    out = await sender.send(f"{rx.url}/x", JSON, b"{}", timeout=2, allow_private=True,
                            allow_http=False)
    assert out.status is None and out.error == (
        "destination refused: plain http:// is not allowed: use https://, or set "
        "delivery.allow_http = true")
    assert rx.requests == []


def _result(host: str, addr: str, port: int) -> ResolveResult:
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    return ResolveResult(hostname=host, host=addr, port=port, family=family, proto=6,
                         flags=socket.AI_NUMERICHOST)


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[list[str]]]]:
    """Scripted answers for *.example names (one list of addresses per lookup, in order);
    other names resolve for real. Patches getaddrinfo's wrapper, under the guard."""
    answers: dict[str, list[list[str]]] = {}
    real = ThreadedResolver.resolve

    async def resolve(self: ThreadedResolver, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        if not host.endswith(".example"):
            return await real(self, host, port, family)
        script = answers[host]
        if not script:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [_result(host, addr, port) for addr in script.pop(0)]

    monkeypatch.setattr(ThreadedResolver, "resolve", resolve)
    yield answers


async def test_dns_rebinding_cannot_reach_loopback(
    sender: Sender, rx: Receiver, fake_dns: dict[str, list[list[str]]],
) -> None:
    """A name that looks public when checked, then answers 127.0.0.1: the connect-time
    lookup is the one that counts, so nothing reaches the loopback receiver."""
    fake_dns["rebind.example"] = [["93.184.216.34"], ["127.0.0.1"]]
    url = f"http://rebind.example:{port_of(rx)}/rebind"
    check_url(url, allow_http=True, allow_private=False)  # an up-front check passes ...
    [first] = await GuardedResolver().resolve("rebind.example", 80)  # ... and looks public
    assert first["host"] == "93.184.216.34"
    out = await sender.send(url, JSON, b"{}", timeout=2, **GUARDED)
    assert out.status is None and not out.ok
    assert out.error == "destination refused: rebind.example -> 127.0.0.1 (loopback)"
    assert fake_dns["rebind.example"] == []  # the sender did its own lookup
    assert rx.requests == []


async def test_rebinding_to_several_private_addresses(
    sender: Sender, rx: Receiver, fake_dns: dict[str, list[list[str]]],
) -> None:
    fake_dns["multi.example"] = [["10.1.2.3", "::ffff:127.0.0.1", "fe80::1", "10.1.2.3"]]
    out = await sender.send(f"http://multi.example:{port_of(rx)}/", JSON, b"{}", timeout=2,
                            **GUARDED)
    assert out.error == ("destination refused: multi.example -> 10.1.2.3 (private), "
                         "::ffff:127.0.0.1 (loopback), fe80::1 (link-local)")
    assert rx.requests == []


async def test_allow_private_uses_the_unguarded_resolver(
    sender: Sender, rx: Receiver, fake_dns: dict[str, list[list[str]]],
) -> None:
    fake_dns["internal.example"] = [["127.0.0.1"]]
    out = await sender.send(f"http://internal.example:{port_of(rx)}/in", JSON, b"{}",
                            timeout=5, **LOCAL)
    assert out.ok, out
    assert len(rx.received("/in")) == 1


async def test_dns_failure_is_a_connection_failure(
    sender: Sender, fake_dns: dict[str, list[list[str]]],
) -> None:
    fake_dns["gone.example"] = []
    out = await sender.send("https://gone.example/", JSON, b"{}", timeout=2, **GUARDED)
    assert out.status is None and out.error == (
        "connection failed: cannot resolve gone.example: Name or service not known")


async def test_guarded_resolver_keeps_only_public_addresses(
    fake_dns: dict[str, list[list[str]]],
) -> None:
    fake_dns["mixed.example"] = [["127.0.0.1", "93.184.216.34", "fc00::5", "2606:4700::1"]]
    got = await GuardedResolver().resolve("mixed.example", 443, socket.AF_UNSPEC)
    assert [r["host"] for r in got] == ["93.184.216.34", "2606:4700::1"]
    fake_dns["private.example"] = [["192.168.1.10"]]
    with pytest.raises(GuardRefused) as err:
        await GuardedResolver().resolve("private.example", 443)
    assert isinstance(err.value, OSError)
    assert str(err.value) == "refused private.example -> 192.168.1.10 (private)"


# --- netguard tables ----------------------------------------------------------------------


@pytest.mark.parametrize(("addr", "reason"), [
    # IPv4
    ("8.8.8.8", None),
    ("1.1.1.1", None),
    ("93.184.216.34", None),
    ("172.32.0.1", None),
    ("100.128.0.1", None),
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "this network"),
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("10.0.0.1", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("100.64.0.1", "shared address space"),
    ("100.127.255.255", "shared address space"),
    ("169.254.169.254", "link-local"),
    ("192.0.0.8", "reserved"),
    ("192.0.2.1", "documentation"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"),
    ("198.18.0.1", "benchmarking"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "broadcast"),
    # IPv6
    ("2606:4700:4700::1111", None),
    ("2001:4860:4860::8888", None),
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
    ("::ffff:10.0.0.1", "private"),
    ("::ffff:169.254.169.254", "link-local"),
    ("::ffff:8.8.8.8", None),
    ("::127.0.0.1", "reserved"),  # deprecated IPv4-compatible
    ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
    ("2002:a9fe:a9fe::1", "link-local"),  # 6to4 of 169.254.169.254
    ("2002:808:808::1", None),  # 6to4 of 8.8.8.8
    ("64:ff9b::7f00:1", "loopback"),  # NAT64 of 127.0.0.1
    ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
    ("64:ff9b::808:808", None),  # NAT64 of 8.8.8.8
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"),
    ("febf::1", "link-local"),
    ("fec0::1", "private"),
    ("ff02::1", "multicast"),
    ("2001:db8::1", "documentation"),
    ("100::1", "reserved"),
    ("2001::1", "reserved"),  # Teredo
    ("4000::1", "reserved"),  # outside global unicast
])
def test_forbidden_reason(addr: str, reason: str | None) -> None:
    assert forbidden_reason(ipaddress.ip_address(addr)) == reason


@pytest.mark.parametrize(("url", "allow_http", "allow_private"), [
    ("https://hooks.example.com/x", False, False),
    ("https://hooks.example.com:8443/x?a=1&b=%2F%C3%A9", False, False),
    ("https://my_service:8080/", False, False),  # compose service names have underscores
    ("HTTPS://Hooks.Example.COM/", False, False),
    ("http://hooks.example.com/x", True, False),
    ("https://localhost/", False, False),  # names are judged at connect time
    ("https://8.8.8.8/", False, False),
    ("https://[2606:4700::1]:443/", False, False),
    ("https://[::ffff:8.8.8.8]/", False, False),
    ("http://127.0.0.1:8080/", True, True),
    ("http://[::1]/", True, True),
    ("https://10.0.0.1/", False, True),
])
def test_check_url_accepts(url: str, allow_http: bool, allow_private: bool) -> None:
    check_url(url, allow_http=allow_http, allow_private=allow_private)


@pytest.mark.parametrize(("url", "allow_http", "allow_private", "message"), [
    ("ftp://example.com/", True, True, "scheme 'ftp' is not allowed: use https://"),
    ("file:///etc/passwd", True, True, "scheme 'file' is not allowed: use https://"),
    ("example.com/hook", True, True, "scheme '(none)' is not allowed: use https://"),
    ("http://example.com/", False, True,
     "plain http:// is not allowed: use https://, or set delivery.allow_http = true"),
    ("https:///path", True, True, "URL 'https:///path' has no host"),
    ("https://user:pw@example.com/", True, True,
     "credentials in the URL (user:password@) are not allowed"),
    ("https://a.example@evil.example/", True, True,
     "credentials in the URL (user:password@) are not allowed"),
    ("https://token@example.com/", True, True,
     "credentials in the URL (user:password@) are not allowed"),
    ("https://example.com:99999/", True, True, "port '99999' is not a number from 1 to 65535"),
    ("https://example.com:0/", True, True, "port '0' is not a number from 1 to 65535"),
    ("https://example.com:/", True, True, "port '' is not a number from 1 to 65535"),
    ("https://[::1/", True, True, "invalid URL: Invalid IPv6 URL"),
    ("https://[fe80::1%25eth0]/", True, True, "host '[fe80::1%25eth0]' has a zone id"),
    # Control characters and whitespace anywhere, backslashes, bad escapes, fragments.
    ("http://host/a\u0000b", True, True,
     "the URL holds the control character '\\x00' at position 13"),
    ("https://a.example/a\rb", True, True,
     "the URL holds the control character '\\r' at position 19"),
    ("https://a.example/\nb", True, True, "the URL holds the control character '\\n'"),
    ("https://a.example/\x7f", True, True, "the URL holds the control character"),
    ("https://a.example/\x9b", True, True, "the URL holds the control character"),
    ("https://a.example/\x01", True, True, "the URL holds the control character"),
    (" https://a.example/", True, True, "the URL holds whitespace (' ' at position 0)"),
    ("https://a.example/\u00a0", True, True, "the URL holds whitespace"),
    ("https://a.example/\u2028", True, True, "the URL holds whitespace"),
    ("https://a.example\\path", True, True, "the URL holds a backslash"),
    ("https:\\\\a.example/", True, True, "URL 'https:\\\\\\\\a.example/' has no host"),
    ("https://a.example\\@evil.example/", True, True, "the URL holds a backslash"),
    ("https://a.example/%zz", True, True, "invalid percent-encoding at position 18"),
    ("https://a.example/%4", True, True, "invalid percent-encoding"),
    ("https://a.example/x#frag", True, True, "a #fragment is never sent"),
    ("https://b\u00fccher.example/", True, True,
     "the host 'b\u00fccher.example' is not ASCII: write it as xn--bcher-kva.example"),
    ("https://a.example/caf\u00e9", True, True, "the URL holds non-ASCII characters"),
    ("https://a..example/", True, True, "host 'a..example' is not a valid DNS name"),
    ("https://a.example./", True, True, "host 'a.example.' is not a valid DNS name"),
    ("https://-a.example/", True, True, "host '-a.example' is not a valid DNS name"),
    ("https://a%2eexample/", True, True, "host 'a%2eexample' is not a valid DNS name"),
    # IP addresses in other spellings than dotted decimal (what inet_aton reads them as).
    ("http://0x7f.1/", True, True, "host '0x7f.1' is not a valid IP address: write an IPv4 "
     "address as four decimal numbers without leading zeros (127.0.0.1)"),
    ("http://2130706433/", True, True, "host '2130706433' is not a valid IP address"),
    ("http://017700000001/", True, True, "host '017700000001' is not a valid IP address"),
    ("http://0x7f000001/", True, True, "host '0x7f000001' is not a valid IP address"),
    ("http://127.0.0.01/", True, True, "host '127.0.0.01' is not a valid IP address"),
    ("http://256.1.1.1/", True, True, "host '256.1.1.1' is not a valid IP address"),
    ("http://example.0x10/", True, True, "host 'example.0x10' is not a valid IP address"),
    ("https://127.0.0.1/", True, False, f"127.0.0.1 is not a public address (loopback); {HINT}"),
    ("https://[::ffff:a9fe:a9fe]/", True, False,
     f"::ffff:a9fe:a9fe (169.254.169.254) is not a public address (link-local); {HINT}"),
    ("https://100.64.1.1/", True, False,
     f"100.64.1.1 is not a public address (shared address space); {HINT}"),
    ("https://127.1/", True, True, "host '127.1' is not a valid IP address"),
    ("https://0177.0.0.1/", True, True, "host '0177.0.0.1' is not a valid IP address"),
])
def test_check_url_refuses(url: str, allow_http: bool, allow_private: bool,
                           message: str) -> None:
    with pytest.raises(DestinationRefused) as err:
        check_url(url, allow_http=allow_http, allow_private=allow_private)
    assert err.value.message.startswith(message)


# --- the receiver helper itself -----------------------------------------------------------


async def test_receiver_stops_promptly_with_slow_and_hanging_requests(sender: Sender) -> None:
    async with Receiver() as rx:
        slow = asyncio.create_task(
            sender.send(f"{rx.url}/slow/30", JSON, b"{}", timeout=60, **LOCAL))
        hang = asyncio.create_task(
            sender.send(f"{rx.url}/hang", JSON, b"{}", timeout=60, **LOCAL))
        await rx.wait_for(1, "/slow/30")
        await rx.wait_for(1, "/hang")
        started = time.monotonic()
    assert time.monotonic() - started < 1.0
    assert (await slow).status == 503 and (await hang).status == 503


async def test_receiver_slow_route_answers_after_the_delay(sender: Sender, rx: Receiver) -> None:
    out = await sender.send(f"{rx.url}/slow/0.1", JSON, b"{}", timeout=5, **LOCAL)
    assert out.ok and out.duration_ms >= 100


async def test_receiver_wait_for_times_out_with_a_useful_message(rx: Receiver) -> None:
    with pytest.raises(AssertionError, match=r"expected 1 request\(s\) on /never within "
                                             r"0\.05s, got 0; all requests by path: none"):
        await rx.wait_for(1, "/never", timeout=0.05)


async def test_receiver_script_then_default(sender: Sender, rx: Receiver) -> None:
    rx.respond("/s", 500, (429, {"Retry-After": "1"}))
    statuses = [(await sender.send(f"{rx.url}/s", JSON, b"{}", timeout=5, **LOCAL)).status
                for _ in range(3)]
    assert statuses == [500, 429, 200]
    assert [r.json() for r in rx.received("/s")] == [{}, {}, {}]
