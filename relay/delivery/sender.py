"""One delivery attempt over HTTP: the hot path between the scheduler and a receiver.

`Sender.send` makes exactly one POST and turns whatever happens into an `Outcome`; it never
raises (except on cancellation), so the scheduler records every attempt the same way.
Sessions and their connection pools are long-lived; the per-send work is a cached URL
check, one request and a bounded read of the response.
"""

from __future__ import annotations

import asyncio
import email.utils
import errno
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from functools import lru_cache

import aiohttp
from aiohttp import ClientTimeout, DummyCookieJar, TCPConnector
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import ThreadedResolver
from multidict import CIMultiDictProxy
from yarl import URL

from relay.delivery.netguard import GuardedResolver, GuardRefused, check_url
from relay.errors import DestinationRefused

RESPONSE_BODY_LIMIT = 4096
# A body with a Content-Length up to 4 KiB + this much is read to its end so the keep-alive
# connection can be reused; a larger or unsized one is abandoned and its connection closed.
_DRAIN_LIMIT = 64 * 1024


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt produced; `error` says why it failed when the status alone cannot."""

    status: int | None
    headers: dict[str, str]  # lowercased names
    body: bytes
    duration_ms: float
    error: str | None
    retry_after: float | None

    @property
    def ok(self) -> bool:
        """2xx and no error: the receiver accepted the delivery."""
        return self.error is None and self.status is not None and 200 <= self.status < 300


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After value: delta-seconds or an HTTP-date (RFC 9110
    §10.2.3), measured from `now` (unix time). None when absent or unparseable; a date in
    the past gives 0. The caller caps it."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" means UTC with unknown local zone
        when = when.replace(tzinfo=UTC)
    seconds = when.timestamp() - now
    return max(0.0, seconds) if math.isfinite(seconds) else None


@lru_cache(maxsize=4096)
def _checked(url: str, allow_http: bool, allow_private: bool) -> URL:
    """check_url plus the parsed URL, cached: endpoints repeat, refusals are not cached."""
    check_url(url, allow_http=allow_http, allow_private=allow_private)
    return URL(url)


def _text(value: str) -> str:
    """A header value as valid Unicode. aiohttp keeps bytes that are not UTF-8 as lone
    surrogates, which cannot be stored or logged as JSON: they become U+FFFD."""
    if value.isascii():
        return value
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _response_headers(headers: CIMultiDictProxy[str]) -> dict[str, str]:
    """A plain dict with lowercased names (predictable lookups, as in HTTP/2); repeated
    headers are joined with ", " rather than losing all but one."""
    out: dict[str, str] = {}
    for name, value in headers.items():
        key, text = _text(name).lower(), _text(value)
        out[key] = f"{out[key]}, {text}" if key in out else text
    return out


async def _read_head(resp: aiohttp.ClientResponse, into: bytearray) -> None:
    """Read the first RESPONSE_BODY_LIMIT bytes of the body into `into` (kept even if the
    read fails half way). The rest is read only when small and sized, so the connection
    goes back to the pool; otherwise releasing the response closes it."""
    content = resp.content
    while len(into) < RESPONSE_BODY_LIMIT:
        chunk = await content.read(RESPONSE_BODY_LIMIT - len(into))
        into += chunk
        if not chunk or content.at_eof():  # most answers are small: no second read
            return
    length = resp.content_length
    # Not when compressed: the length bounds the wire bytes, not what they inflate to.
    if (length is not None and length <= RESPONSE_BODY_LIMIT + _DRAIN_LIMIT
            and "Content-Encoding" not in resp.headers):
        while await content.readany():
            pass


def _describe(exc: BaseException, timeout: float) -> str:
    """A short, human error text for a failed attempt."""
    if isinstance(exc, TimeoutError):  # includes aiohttp's ServerTimeoutError
        return f"timeout after {timeout:g}s"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"tls certificate error: {exc.host}:{exc.port}: {exc.certificate_error}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        cause = exc.os_error
        if isinstance(cause, GuardRefused):
            return f"destination refused: {cause.detail}"
        where = f"{exc.host}:{exc.port}"
        reason = cause.strerror or str(cause) or type(cause).__name__
        if isinstance(exc, aiohttp.ClientConnectorDNSError):
            return f"connection failed: cannot resolve {exc.host}: {reason}"
        if isinstance(cause, ConnectionRefusedError) or cause.errno == errno.ECONNREFUSED:
            return f"connection refused: {where}"
        return f"connection failed: {where}: {reason}"
    if isinstance(exc, aiohttp.ClientError):
        return str(exc) or type(exc).__name__
    return f"request failed: {type(exc).__name__}: {exc}"


class Sender:
    """POSTs deliveries through two long-lived aiohttp sessions: a guarded one (the
    resolver drops forbidden addresses) and a plain one for endpoints that may reach
    private networks."""

    def __init__(self, *, user_agent: str, max_connections: int = 1000) -> None:
        self.user_agent = user_agent
        self.max_connections = max_connections
        self._guarded: aiohttp.ClientSession | None = None
        self._open: aiohttp.ClientSession | None = None
        self._timeouts: dict[float, ClientTimeout] = {}

    def _session(self, resolver: AbstractResolver) -> aiohttp.ClientSession:
        connector = TCPConnector(resolver=resolver, limit=self.max_connections)
        return aiohttp.ClientSession(
            connector=connector,
            cookie_jar=DummyCookieJar(),  # receivers must not be able to set state
            trust_env=False,  # no proxy from the environment: it would bypass the guard
            headers={"User-Agent": self.user_agent},
            # Send only the headers given (plus user-agent), no guessed content-type.
            skip_auto_headers=("User-Agent", "Content-Type"),
            raise_for_status=False,
        )

    async def start(self) -> None:
        """Open the sessions (needs the running loop)."""
        if self._guarded is None:
            self._guarded = self._session(GuardedResolver())
            # getaddrinfo for both, so names resolve the same way on either path.
            self._open = self._session(ThreadedResolver())

    async def close(self) -> None:
        """Close both sessions and their pools; later sends fail with an error outcome."""
        sessions, self._guarded, self._open = (self._guarded, self._open), None, None
        for session in sessions:
            if session is not None:
                await session.close()

    def _timeout(self, seconds: float) -> ClientTimeout:
        timeout = self._timeouts.get(seconds)
        if timeout is None:
            # total=0 would mean "no timeout" to aiohttp; a hung receiver must never pin a slot.
            timeout = self._timeouts[seconds] = ClientTimeout(total=max(seconds, 0.001))
        return timeout

    async def send(
        self, url: str, headers: Mapping[str, str], body: bytes, *, timeout: float,
        allow_private: bool, allow_http: bool,
    ) -> Outcome:
        """One POST, redirects not followed, bounded by `timeout` in total. Never raises
        (except CancelledError): every failure is an Outcome with `error` set."""
        started = time.perf_counter()
        try:
            target = _checked(url, allow_http, allow_private)
        except DestinationRefused as exc:
            return Outcome(None, {}, b"", (time.perf_counter() - started) * 1000,
                           f"destination refused: {exc.message}", None)
        session = self._open if allow_private else self._guarded
        if session is None or session.closed:
            return Outcome(None, {}, b"", 0.0, "sender is closed", None)

        status: int | None = None
        response_headers: dict[str, str] = {}
        buf = bytearray()
        error: str | None = None
        retry_after: float | None = None
        try:
            async with session.post(
                target, data=body, headers=headers, allow_redirects=False,
                timeout=self._timeout(timeout),
            ) as resp:
                status = resp.status
                response_headers = _response_headers(resp.headers)
                if (value := resp.headers.get("Retry-After")) is not None:
                    retry_after = parse_retry_after(value, time.time())
                try:
                    await _read_head(resp, buf)
                except (TimeoutError, aiohttp.ClientError) as exc:
                    # The status arrived within the timeout: a 2xx stays a success.
                    if not 200 <= status < 300:
                        error = f"reading response body: {_describe(exc, timeout)}"
                if 300 <= status < 400:
                    location = response_headers.get("location")
                    error = (f"redirect not followed ({status} -> {location})" if location
                             else f"redirect not followed ({status}, no Location)")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = _describe(exc, timeout)
        return Outcome(status, response_headers, bytes(buf),
                       (time.perf_counter() - started) * 1000, error, retry_after)
