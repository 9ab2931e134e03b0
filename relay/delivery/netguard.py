"""The network guard: which destinations a delivery may reach (SSRF protection, SPEC §5).

Two layers, because one cannot see everything:
- `check_url` runs before a request: scheme, userinfo, and hosts that are IP literals.
  aiohttp never asks the resolver about an IP literal, so this is the only check they get.
- `GuardedResolver` runs at connect time for host names: aiohttp connects to exactly the
  addresses the resolver returns, so dropping forbidden ones there means a DNS answer that
  changes between any earlier check and the connect (DNS rebinding) cannot slip through.
"""

from __future__ import annotations

import ipaddress
import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from relay.errors import DestinationRefused

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


def check_url(url: str, *, allow_http: bool, allow_private: bool) -> None:
    """Refuse a delivery URL before any request leaves: raise DestinationRefused saying why.

    Host names are not resolved here (GuardedResolver does that at connect time). The URL is
    parsed with yarl, the parser aiohttp itself uses, so both read the same host.
    """
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
    if parsed.raw_user is not None or parsed.raw_password is not None:
        raise DestinationRefused("credentials in the URL (user:password@) are not allowed")
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
