"""Host names as relay compares them, and the [server] keys built on them."""

from __future__ import annotations

from typing import Any

import pytest

from relay import config as cfgmod
from relay.errors import ConfigError
from relay.hosts import origin, parse_host_header

KEYS = [{"name": "k", "key_sha256": "0" * 64, "scopes": ["admin"]}]  # beyond loopback


@pytest.mark.parametrize(("value", "parsed"), [
    ("localhost", ("localhost", None)),
    ("LocalHost.:8080", ("localhost", 8080)),
    ("127.0.0.1:", ("127.0.0.1", None)),  # RFC 3986 allows an empty port
    ("[::1]:", ("[::1]", None)),
    ("[::1]:8080", ("[::1]", 8080)),
    ("[0:0:0:0:0:0:0:1]", ("[::1]", None)),
    ("[::FFFF:127.0.0.1]", ("[::ffff:7f00:1]", None)),
    ("xn--bcher-kva.example", ("xn--bcher-kva.example", None)),
    ("under_score.internal:65535", ("under_score.internal", 65535)),
])
def test_host_header(value: str, parsed: tuple[str, int | None]) -> None:
    assert parse_host_header(value) == parsed


@pytest.mark.parametrize("value", [
    "", "user@localhost", "user:pw@localhost", "localhost:65536", "localhost:8a",
    "localhost:-1", "localhost: 80", "[::1", "::1", "[::1]x", "[fe80::1%eth0]",
    "[evil.com]", "local host", "bücher.example", "a..b", ".", "-a.example", "a-.example",
    "localhost/ui", "localhost?x", "a" * 64 + ".example", "localhost:٣",
])
def test_bad_host_header(value: str) -> None:
    with pytest.raises(ValueError):
        parse_host_header(value)


@pytest.mark.parametrize(("url", "expected"), [
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ("http://127.0.0.1:80/ui/?x=1", "http://127.0.0.1"),
    ("https://Relay.Example.com.:443", "https://relay.example.com"),
    ("https://relay.example.com:80", "https://relay.example.com:80"),
    ("http://[::1]:8080/", "http://[::1]:8080"),
    ("null", None), ("file:///etc", None), ("ftp://x.example", None),
    ("http://user@x.example", None), ("http://x.example:99999", None), ("", None),
])
def test_origin(url: str, expected: str | None) -> None:
    assert origin(url) == expected


@pytest.mark.parametrize(("server", "base_url", "hosts"), [
    ({}, "http://127.0.0.1:8080", {"localhost", "127.0.0.1", "[::1]"}),
    ({"listen": "[::1]:9000"}, "http://[::1]:9000", {"localhost", "127.0.0.1", "[::1]"}),
    ({"listen": "127.0.0.2:80"}, "http://127.0.0.2:80",
     {"localhost", "127.0.0.1", "[::1]", "127.0.0.2"}),
    ({"listen": "Relay.LAN:8080"}, "http://Relay.LAN:8080", {"relay.lan"}),
    ({"listen": "10.0.0.5:8080"}, "http://10.0.0.5:8080", {"10.0.0.5"}),
    ({"listen": "0.0.0.0:8080", "public_url": "https://Relay.example.com/"},
     "https://Relay.example.com", {"localhost", "127.0.0.1", "[::1]", "relay.example.com"}),
    ({"listen": "[::]:8080", "public_url": "http://[fd00::1]:8080"},
     "http://[fd00::1]:8080", {"localhost", "127.0.0.1", "[::1]", "[fd00::1]"}),
    ({"listen": "10.0.0.5:8080", "allowed_hosts": ["Relay.Internal.", "fd00::5", "*"]},
     "http://10.0.0.5:8080", {"10.0.0.5", "relay.internal", "[fd00::5]", "*"}),
])
def test_defaults(server: dict[str, Any], base_url: str, hosts: set[str]) -> None:
    config = cfgmod.validate({"server": server, "api_keys": KEYS}, {}).config.server
    assert config.base_url == base_url
    assert config.host_names == hosts


@pytest.mark.parametrize(("server", "error"), [
    ({"listen": "0.0.0.0:8080"}, "server.public_url: required when listening on every address"),
    ({"listen": "[::]:8080", "allowed_hosts": ["*"]}, "server.public_url: required"),
    ({"public_url": "https://relay.example.com/relay"}, "server.public_url: 'https://relay."
     "example.com/relay' must be http(s)://HOST[:PORT] without a path"),
    ({"public_url": "relay.example.com"}, "must be http(s)://HOST[:PORT]"),
    ({"public_url": "https://user@relay.example.com"}, "must be http(s)://HOST[:PORT]"),
    ({"public_url": "https://relay.example.com?x"}, "must be http(s)://HOST[:PORT]"),
    ({"allowed_hosts": ["relay.example.com:443"]},
     "server.allowed_hosts[0]: 'relay.example.com:443' has a port: give the host alone"),
    ({"allowed_hosts": ["ok.example", "https://relay.example.com"]},
     "server.allowed_hosts[1]:"),
    ({"allowed_hosts": ["*.example.com"]}, "server.allowed_hosts[0]: '*.example.com' is not"),
    ({"allowed_hosts": "relay.example.com"}, "server.allowed_hosts: Input should be a valid list"),
    ({"listen": "bad host:8080"}, "server.listen: 'bad host:8080' must be HOST:PORT: 'bad host'"),
])
def test_invalid(server: dict[str, Any], error: str) -> None:
    with pytest.raises(ConfigError) as caught:
        cfgmod.validate({"server": server, "api_keys": KEYS}, {})
    assert any(str(d).startswith(error) or error in str(d) for d in caught.value.details), \
        caught.value.details
