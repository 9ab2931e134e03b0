"""Failed authentications per source address: a token bucket each, in a bounded table.

A source may fail BURST times at once, then once per 1/RATE seconds. With its bucket
empty its requests are refused (429 with Retry-After) before the key is looked at, so
guessing keys costs time and tells nothing, while other sources go on unaffected. A
success spends nothing and refills nothing: one valid key must not buy guesses at others.

The table holds only sources whose bucket is not full (a full one is the same as none):
it forgets a source once it has refilled, and past MAX_SOURCES it drops the one that
failed longest ago, so memory stays bounded whatever the number of addresses. IPv6
sources count per /64, the block one host usually has to itself.

Log lines (written by relay.api.auth from what this returns): each failure of a source
until its bucket runs empty, then one line saying it is throttled, then while it stays
throttled at most one line per REPORT_EVERY counting what was refused and failed since;
a source that refills completely starts over. /metrics counts every one.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

BURST = 10  # failures a source may make at once
RATE = 1.0  # failures a source may make per second after that
REPORT_EVERY = 60.0  # seconds between log lines about one throttled source
MAX_SOURCES = 10_000  # sources remembered at once (each a few hundred bytes)
_ROUNDING = 1e-9  # a token this close to whole counts as whole


@functools.lru_cache(maxsize=1024)
def source_key(address: str) -> str:
    """Which bucket an address spends from: an IPv4 address, an IPv6 /64 (an IPv4
    address mapped into IPv6 as that IPv4 address), else the text as given."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


@dataclass(slots=True)
class _Source:
    tokens: float
    at: float  # when `tokens` was counted
    throttled: bool = False  # emptied since it was last full: counted, not logged each
    unreported: int = 0  # refused and failed attempts since the last line about it
    reported_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Refused:
    """Refuse this request unchecked."""

    retry_after: int  # whole seconds until the source has a token again
    report: int  # log a line counting this many attempts now (0: no line due)


@dataclass(frozen=True, slots=True)
class Failed:
    """What to log about one failed authentication."""

    log: bool  # a line of its own
    throttled: bool  # it emptied the bucket: log that the source is throttled
    report: int  # log a line counting this many attempts now (0: no line due)
    retry_after: int  # when the source may try again (0: it still may)


class Throttle:
    def __init__(self, clock: Callable[[], float] = time.monotonic, *, burst: int = BURST,
                 rate: float = RATE, max_sources: int = MAX_SOURCES,
                 report_every: float = REPORT_EVERY) -> None:
        self.clock = clock
        self.burst = burst
        self.rate = rate
        self.max_sources = max_sources
        self.report_every = report_every
        self._sources: OrderedDict[str, _Source] = OrderedDict()  # least recent first

    def __len__(self) -> int:
        return len(self._sources)

    def check(self, address: str) -> Refused | None:
        """Before looking at a request's key: None (go ahead) unless the bucket of
        `address` is empty."""
        if not self._sources:  # nobody failed lately: the common case, at once
            return None
        entry = self._sources.get(source_key(address))
        if entry is None:
            return None
        now = self.clock()
        tokens = self._refill(entry, now)
        if tokens >= 1 - _ROUNDING:
            return None
        entry.unreported += 1
        return Refused(self._retry_after(tokens), self._report(entry, now))

    def fail(self, address: str) -> Failed:
        """A request from `address` failed to authenticate: spend one token."""
        now = self.clock()
        source = source_key(address)
        entry = self._sources.get(source)
        if entry is None:
            self._make_room(now)
            entry = self._sources[source] = _Source(float(self.burst), now)
        tokens = self._refill(entry, now)
        if tokens >= self.burst - _ROUNDING:  # full again: what came before is over
            entry.throttled, entry.unreported = False, 0
        entry.tokens, entry.at = max(0.0, tokens - 1), now
        self._sources.move_to_end(source)
        if entry.throttled:
            entry.unreported += 1
            return Failed(False, False, self._report(entry, now),
                          self._retry_after(entry.tokens))
        if entry.tokens >= 1 - _ROUNDING:
            return Failed(True, False, 0, 0)
        entry.throttled, entry.reported_at = True, now
        return Failed(True, True, 0, self._retry_after(entry.tokens))

    def _refill(self, entry: _Source, now: float) -> float:
        return min(float(self.burst), entry.tokens + max(0.0, now - entry.at) * self.rate)

    def _retry_after(self, tokens: float) -> int:
        return max(1, math.ceil((1 - tokens) / self.rate - _ROUNDING))

    def _report(self, entry: _Source, now: float) -> int:
        if not entry.unreported or now - entry.reported_at < self.report_every:
            return 0
        count, entry.unreported, entry.reported_at = entry.unreported, 0, now
        return count

    def _make_room(self, now: float) -> None:
        """Forget sources that refilled (oldest first), then, at the cap, the one that
        failed longest ago."""
        while self._sources:
            oldest = next(iter(self._sources.values()))
            if self._refill(oldest, now) < self.burst - _ROUNDING:
                break
            self._sources.popitem(last=False)
        while len(self._sources) >= self.max_sources:
            self._sources.popitem(last=False)
