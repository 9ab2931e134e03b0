"""The network guard: which destinations a delivery may reach (SSRF protection, SPEC §5).

Two layers, because one cannot see everything:
- `check_url` runs before a request: the URL's form (`url_problem`), scheme, userinfo,
  and hosts that are IP literals.
  aiohttp never asks the resolver about an IP literal, so this is the only check they get.
- `GuardedResolver` runs at connect time for host names: aiohttp connects to exactly the
  addresses the resolver returns, so dropping forbidden ones there means a DNS answer that
  changes between any earlier check and the connect (DNS rebinding) cannot slip through.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from relay.errors import DestinationRefused
from relay.text import control_problem

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

# Checked in order; the first match names the reason. Anything else that is not globally
# routable falls through to "reserved" (see forbidden_reason).
_V4_RULES: tuple[tuple[ipaddress.IPv4Network, str], ...] = (
    (_V4("0.0.0.0/32"), "unspecified"),
    (_V4("0.0.0.0/8"), "this network"),
    (_V4("127.0.0.0/8"), "loopback"),
    (_V4("10.0.0.0/8"), "private"),
    (_V4("172.16.0.0/12"), "private"),
    (_V4("192.168.0.0/16"), "private"),
    (_V4("100.64.0.0/10"), "shared address space"),
    (_V4("169.254.0.0/16"), "link-local"),
    (_V4("192.0.0.0/24"), "reserved"),  # IETF protocol assignments
    (_V4("192.0.2.0/24"), "documentation"),
    (_V4("198.51.100.0/24"), "documentation"),
    (_V4("203.0.113.0/24"), "documentation"),
    (_V4("198.18.0.0/15"), "benchmarking"),
    (_V4("224.0.0.0/4"), "multicast"),
    (_V4("255.255.255.255/32"), "broadcast"),
    (_V4("240.0.0.0/4"), "reserved"),
)

_V6_RULES: tuple[tuple[ipaddress.IPv6Network, str], ...] = (
    (_V6("::/128"), "unspecified"),
    (_V6("::1/128"), "loopback"),
    (_V6("::/8"), "reserved"),  # includes the deprecated IPv4-compatible ::a.b.c.d
    (_V6("100::/64"), "reserved"),  # discard-only
    (_V6("2001:db8::/32"), "documentation"),
    (_V6("fc00::/7"), "private"),  # unique local
    (_V6("fe80::/10"), "link-local"),
    (_V6("fec0::/10"), "private"),  # deprecated site-local
    (_V6("ff00::/8"), "multicast"),
)

_GLOBAL_UNICAST = _V6("2000::/3")
_NAT64 = (_V6("64:ff9b::/96"), _V6("64:ff9b:1::/48"))


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, NAT64), if any: the packet
    may end up there, so it is judged by that address."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def forbidden_reason(ip: IPAddress) -> str | None:
    """Why a delivery may not connect to `ip` ("loopback", "private", ...), or None if the
    address is public. IPv6 forms that embed an IPv4 address are judged by that address."""
    if isinstance(ip, ipaddress.IPv4Address):
        for net, reason in _V4_RULES:
            if ip in net:
                return reason
        return None if ip.is_global else "reserved"
    inner = _embedded_v4(ip)
    if inner is not None:
        return forbidden_reason(inner)
    for net6, reason in _V6_RULES:
        if ip in net6:
            return reason
    if ip not in _GLOBAL_UNICAST or not ip.is_global:
        return "reserved"
    return None


def _parse_ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


_SPACE = re.compile(r"\s")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")
_NUMERIC_LABEL = re.compile(r"[0-9]+|0[xX][0-9A-Fa-f]*")
_DOTTED_DECIMAL = re.compile(r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}"
                             r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])")


def _host_problem(host: str) -> str | None:
    """Why `host` (from the URL, brackets kept) is not a canonical host, or None."""
    if not host:
        return "the URL has no host"
    if host.startswith("["):
        if "%" in host:
            return f"host {host!r} has a zone id (%...): not for a delivery"
        try:
            ipaddress.IPv6Address(host[1:-1] if host.endswith("]") else "")
        except ValueError:
            return f"host {host!r} is not a valid IPv6 address"
        return None
    labels = host.split(".")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):  # an IPv4 address, as a resolver reads it
        if _DOTTED_DECIMAL.fullmatch(host):
            return None
        try:
            meant = f" ({socket.inet_ntoa(socket.inet_aton(host))})"
        except OSError:
            meant = ""
        return (f"host {host!r} is not a valid IP address: write an IPv4 address as four "
                f"decimal numbers without leading zeros{meant}")
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        return (f"host {host!r} is not a valid DNS name (letters, digits, - and _ in "
                "dot-separated labels of 1-63 characters)")
    return None


def url_problem(url: str) -> str | None:
    """Why `url` is not a delivery URL in canonical form, or None. Canonical: ASCII
    without control characters, whitespace or backslashes; valid %-escapes;
    scheme://host[:port]/path?query with no user:password@ (it would be logged and shown
    everywhere the URL is; send credentials in `headers`), no #fragment (never sent), a
    host that is a DNS name, dotted-decimal IPv4 or [IPv6] (no other spellings of an
    address: 0x7f.1, 2130706433, 0177.0.0.1) and a port 1-65535. An international host
    name is written in its xn-- form, so what is stored is what is looked up. Without
    `://` it is no URL at all: check_url names the missing scheme."""
    if "://" not in url:
        return None
    if problem := control_problem(url):
        return f"the URL {problem}"
    if match := _SPACE.search(url):
        return f"the URL holds whitespace ({match[0]!r} at position {match.start()})"
    if "\\" in url:
        return "the URL holds a backslash: use / in paths, %5C for a literal backslash"
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # an unclosed [IPv6
        return f"invalid URL: {exc}"
    if not url.isascii():
        try:
            ascii_host = (parts.hostname or "").encode("idna").decode()
        except UnicodeError:
            ascii_host = ""
        if parts.hostname and not parts.hostname.isascii() and ascii_host:
            return (f"the host {parts.hostname!r} is not ASCII: write it as {ascii_host}")
        return "the URL holds non-ASCII characters: percent-encode them (UTF-8)"
    if match := _BAD_PERCENT.search(url):
        return (f"invalid percent-encoding at position {match.start()}: % must be followed "
                "by two hex digits (%25 for a literal %)")
    if not parts.netloc:
        return None  # no host: check_url says so
    if "#" in url:
        return "a #fragment is never sent to the receiver: leave it out"
    if "@" in parts.netloc:
        return "credentials in the URL (user:password@) are not allowed; use headers"
    host, port = parts.netloc, ""
    if (end := host.rfind("]")) >= 0 or not host.startswith("["):
        host, colon, port = host.rpartition(":") if ":" in host[end + 1:] else (host, "", "")
        if colon and not (port.isdigit() and 0 < int(port) < 65536 and port[0] != "0"):
            return f"port {port!r} is not a number from 1 to 65535 (without leading zeros)"
    return _host_problem(host)


def check_url(url: str, *, allow_http: bool, allow_private: bool) -> None:
    """Refuse a delivery URL before any request leaves: raise DestinationRefused saying why.

    Host names are not resolved here (GuardedResolver does that at connect time). The URL is
    parsed with yarl, the parser aiohttp itself uses, so both read the same host.
    """
    if problem := url_problem(url):
        raise DestinationRefused(problem)
    try:
        parsed = URL(url)
    except (ValueError, TypeError) as exc:
        raise DestinationRefused(f"invalid URL {url!r}: {exc}") from None
    scheme = parsed.scheme
    if scheme not in ("http", "https"):
        raise DestinationRefused(f"scheme {scheme or '(none)'!r} is not allowed: use https://")
    if scheme == "http" and not allow_http:
        raise DestinationRefused(
            "plain http:// is not allowed: use https://, or set delivery.allow_http = true"
        )
    host = parsed.raw_host
    if not host:
        raise DestinationRefused(f"URL {url!r} has no host")
    # Mirror aiohttp.helpers.is_ip_address: hosts it takes for IP literals never reach the
    # resolver, so each of them must be a literal we can judge here.
    if ":" in host or host.replace(".", "").isdigit():
        ip = _parse_ip(parsed.host or host)
        if ip is None:
            raise DestinationRefused(f"host {host!r} is not a valid IP address")
        if allow_private:
            return
        reason = forbidden_reason(ip)
        if reason is not None:
            inner = _embedded_v4(ip) if isinstance(ip, ipaddress.IPv6Address) else None
            shown = f"{ip} ({inner})" if inner is not None else str(ip)
            raise DestinationRefused(f"{shown} is not a public address ({reason}); "
                                     "set allow_private_networks to allow it")


class GuardRefused(OSError):
    """Every address a host name resolved to is forbidden.

    An OSError, so aiohttp wraps it as it wraps DNS failures (ClientConnectorDNSError) and
    no connection is attempted.
    """

    def __init__(self, host: str, refused: list[tuple[str, str]]) -> None:
        self.host = host
        self.refused = refused
        detail = ", ".join(f"{addr} ({reason})" for addr, reason in refused)
        self.detail = f"{host} -> {detail}" if refused else f"{host} -> no address"
        super().__init__(None, f"refused {self.detail}")

    def __str__(self) -> str:
        return str(self.strerror)


class GuardedResolver(AbstractResolver):
    """getaddrinfo (aiohttp's ThreadedResolver) minus every forbidden address.

    This is the connect-time check: aiohttp connects only to what resolve() returns.
    """

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner if inner is not None else ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed: list[ResolveResult] = []
        refused: list[tuple[str, str]] = []
        for result in results:
            addr = result["host"]
            ip = _parse_ip(addr)
            reason = "unparseable" if ip is None else forbidden_reason(ip)
            if reason is None:
                allowed.append(result)
            elif (addr, reason) not in refused:
                refused.append((addr, reason))
        if not allowed:
            raise GuardRefused(host, refused)
        return allowed

    async def close(self) -> None:
        await self._inner.close()

    def __repr__(self) -> str:
        return f"GuardedResolver({self._inner!r})"
