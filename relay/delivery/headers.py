"""A delivery's request headers: the ones relay sets, and what an endpoint's own may be.

Every delivery carries `FIXED_HEADERS` (build_request sets them), the event id header
(`webhook-id`, or `svix-id`) and the signature headers (`signing.SIGNATURE_HEADERS`);
those, the rest of `webhook-*` and `svix-*`, and the headers that frame the request or
are meant for a proxy (a `Transfer-Encoding` beside the `Content-Length` aiohttp sets is
a request-smuggling primitive) are `reserved`: an
endpoint's `headers` may not name them, nor may its `signature_header`. Names are RFC
9110 tokens; values are visible characters with spaces and tabs inside (non-ASCII ones
are sent as UTF-8, obs-text), no controls and no leading or trailing whitespace: what is
stored is what is sent.

The same rules judge stored rows written before they existed (`sendable`): such a
header is left out of every request and reported by `relay status`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from relay import __version__
from relay.delivery.signing import DEFAULT_HEADER, SIGNATURE_HEADERS
from relay.text import control_problem

USER_AGENT = f"relay/{__version__}"
# Set by build_request on every delivery, before the endpoint's own headers.
FIXED_HEADERS: dict[str, str] = {"content-type": "application/json", "user-agent": USER_AGENT}
# Framing and hop-by-hop headers (RFC 9110 §7.6.1, RFC 9112 §6-§7): aiohttp frames the body.
_FRAMING = ("host", "content-length", "transfer-encoding", "connection", "upgrade", "te",
            "trailer", "keep-alive")
_RELAY_SETS = frozenset([*FIXED_HEADERS, *(h.lower() for h in SIGNATURE_HEADERS)])
# Name families: proxies' own, and the Standard Webhooks and Svix headers (relay sets three
# of each, by scheme).
_PROXY, _STANDARD = "proxy-", ("webhook-", "svix-")
# A signature_header may name a scheme's default signature header (relay sends only one).
_SIGNATURE_DEFAULTS = frozenset(h.lower() for h in DEFAULT_HEADER.values())
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_SURROGATE = re.compile("[\ud800-\udfff]")


def reserved(name: str) -> str | None:
    """Why relay keeps the header `name` to itself, or None."""
    lower = name.lower()
    if lower in _RELAY_SETS or lower.startswith(_STANDARD):
        return f"relay sets {name} itself"
    if lower in _FRAMING or lower.startswith(_PROXY):
        return (f"{name} frames the request or is meant for a proxy (Host, Content-Length, "
                "Transfer-Encoding, Connection, Upgrade, TE, Trailer, Keep-Alive, Proxy-*): "
                "relay's HTTP client sets what is needed")
    return None


def name_problem(name: str, *, signature: bool = False) -> str | None:
    """Why `name` cannot be an endpoint's header (`signature`: its signature_header)."""
    if not _TOKEN.fullmatch(name):
        bad = next((c for c in name if not _TOKEN.fullmatch(c)), "")
        return (f"{name!r} is not an HTTP header name: use letters, digits and "
                f"!#$%&'*+-.^_`|~ (not {bad!r})" if name else "a header name cannot be empty")
    if signature and name.lower() in _SIGNATURE_DEFAULTS:
        return None
    return reserved(name)


def value_problem(value: str) -> str | None:
    """Why `value` cannot be a header value, or None."""
    if problem := control_problem(value, tab=True):
        return f"the value {problem}: only visible characters, spaces and tabs"
    if _SURROGATE.search(value):
        return "the value holds a lone surrogate (not text)"
    if value != value.strip(" \t"):
        return "the value starts or ends with whitespace; leave it out"
    return None


def header_problems(headers: Mapping[str, str]) -> list[tuple[str, str]]:
    """(name, why) for each header of `headers` that cannot be sent as it is."""
    problems = []
    seen: set[str] = set()
    for name, value in headers.items():
        problem = name_problem(name) or value_problem(value)
        if problem is None and name.lower() in seen:
            problem = f"{name} is given twice (header names ignore case)"
        seen.add(name.lower())
        if problem is not None:
            problems.append((name, problem))
    return problems


def clashes(names: Iterable[str], signature_header: str | None) -> list[tuple[str, str]]:
    """(name, why) for each custom header naming the endpoint's own signature header."""
    if signature_header is None:
        return []
    return [(name, f"{name} is this endpoint's signature_header")
            for name in names if name.lower() == signature_header.lower()]


@dataclass(frozen=True, slots=True)
class Sendable:
    """A stored endpoint's headers as they can be sent, and what was left out."""

    headers: dict[str, str]
    signature_header: str | None  # None: the scheme's default
    skipped: list[str]  # one line each: what, and why


def sendable(headers: Mapping[str, str], signature_header: str | None) -> Sendable:
    """Every rule applied to a stored endpoint (rows stored before the rules, or by a
    config file edited since): a bad header is left out, a bad signature_header gives way
    to the scheme's default, so deliveries stay signed."""
    skipped = []
    if signature_header is not None and (
            why := name_problem(signature_header, signature=True)):
        skipped.append(f"signature_header {signature_header!r} is not used (the "
                       f"default is): {why}")
        signature_header = None
    bad = dict(header_problems(headers) + clashes(headers, signature_header))
    skipped += [f"header {name!r} is not sent: {why}" for name, why in bad.items()]
    return Sendable({k: v for k, v in headers.items() if k not in bad}, signature_header,
                    skipped)
