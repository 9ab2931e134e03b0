"""Host names as relay compares them: the `Host` header, `[server] allowed_hosts`, origins.

One spelling per host, so that comparing is `==`: lower case, no trailing dot
(`LocalHost.` is `localhost`), IPv6 literals in brackets and compressed (`[::1]`). The port
is parsed and checked, never compared (docs/configuration.md, `server.allowed_hosts`).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from urllib.parse import urlsplit

# Names that only ever mean this machine: a web page cannot point them elsewhere (DNS
# rebinding needs a name the attacker's DNS answers), so relay always answers them when
# it listens on loopback or on every address.
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})
ANY = "*"  # allowed_hosts = ["*"]: every well-formed host
# The probes also answer a Host that is an IP address, and none at all
# (relay.server.HostAndOrigin): load balancers and Prometheus address relay by IP,
# often without a name (a check would push operators to allowed_hosts = ["*"],
# unprotecting the rest). A name not relay's own is still refused: DNS rebinding needs
# one, and a page must not read /metrics that way.
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize(host: str) -> str:
    """A host name or IP address (no port) in relay's one spelling; ValueError saying why
    it is not one. Accepts an IPv6 address with or without brackets."""
    bracketed = host.startswith("[") and host.endswith("]")
    inside = host[1:-1] if bracketed else host
    if not bracketed and inside.count(":") == 1:
        raise ValueError(f"{host!r} has a port: give the host alone")
    if ":" in inside:
        if "%" in inside:
            raise ValueError("an IPv6 zone (%...) is not a host name")
        try:
            return f"[{ipaddress.IPv6Address(inside).compressed}]"
        except ValueError:
            raise ValueError(f"{host!r} is not an IPv6 address") from None
    name = host.lower()
    name = name[:-1] if name.endswith(".") else name
    if len(name) > 253 or not _NAME.fullmatch(name):
        raise ValueError(f"{host!r} is not a host name (letters, digits, -, _ and dots; "
                         "an IDN in its xn-- form)")
    return name


@functools.lru_cache(maxsize=256)
def parse_host_header(value: str) -> tuple[str, int | None]:
    """A `Host` value (RFC 9110 7.2: host, then an optional `:port`) as (host, port),
    the host normalized; ValueError for anything else (userinfo, a path, spaces,
    non-ASCII, a port past 65535). Cached: each client sends the same few values."""
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            raise ValueError("an IPv6 literal without its closing ]")
        host, rest = value[:end + 1], value[end + 1:]
    else:
        host, sep, port = value.rpartition(":")
        host, rest = (host, sep + port) if sep else (value, "")
    digits = rest[1:]
    port_ok = not digits or (digits.isascii() and digits.isdigit() and int(digits) < 65536)
    if rest[:1] not in ("", ":") or not port_ok:
        raise ValueError(f"{rest!r} is not :PORT")
    if not host.startswith("[") and ":" in host:
        raise ValueError("an IPv6 address must be in brackets")
    return normalize(host), int(digits) if digits else None


def is_address(host: str) -> bool:
    """A normalized host (`normalize`) that is an IP address, not a name."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def origin(url: str) -> str | None:
    """`scheme://host[:port]` of an http(s) URL or an `Origin` value, normalized (the
    scheme's default port left out), for comparing; None when it is not one (`null`,
    another scheme, garbage)."""
    try:
        parts = urlsplit(url)
        if parts.scheme not in _DEFAULT_PORTS or parts.username is not None:
            return None
        host, port = parse_host_header(parts.netloc)
    except ValueError:
        return None
    if port is None or port == _DEFAULT_PORTS[parts.scheme]:
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"
