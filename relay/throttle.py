"""Failed authentications per source address: a token bucket each, in a bounded table.

A source may fail BURST times at once, then once per 1/RATE seconds. With its bucket
empty its requests are refused (429 with Retry-After) before the key is looked at, so
guessing keys costs time and tells nothing, while other sources go on unaffected. A
success spends nothing and refills nothing: one valid key must not buy guesses at others.

A key the source already failed with (one of its last REPEATS) spends nothing either: a
client left with an old key sends the same one again and again, a guesser sends new ones.
Else one stale client behind a NAT, an ingress or a Docker bridge would soon lock out
every valid key sharing its address. A repeat is still a 401, counted in /metrics.

The table holds only sources whose bucket is not full (a full one is the same as none):
it forgets a source once it has refilled and another needs room, and past MAX_SOURCES it
drops the one that failed longest ago, so memory stays bounded whatever the number of
addresses. IPv6 sources count per /64, the block one host usually has to itself; a
source that is not an IP address at all (a Unix socket, a forwarded value that is not
one) spends from one bucket shared by all such.

Log lines (written by relay.auth from what this returns): each failure of a source
with a new key until its bucket runs empty, then one line saying it is throttled; what
is not logged on its own (repeats, and everything while throttled) is counted, and a
summary line about the source reports the count at most once per REPORT_EVERY. Every
source together gets at most LOG_LINES lines a second: past that, failures are counted
in their source's summary instead, so a flood from many addresses cannot flood the log.
/metrics counts every attempt.
"""

from __future__ import annotations

import functools
import hashlib
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
REPEATS = 4  # failed keys remembered per source (a 16-byte digest each)
LOG_LINES = 20  # auth log lines a second, from every source together
NOT_AN_ADDRESS = "(not an IP address)"  # the one bucket of every such source
_ROUNDING = 1e-9  # a token this close to whole counts as whole


@functools.lru_cache(maxsize=1024)
def source_key(address: str) -> str:
    """Which bucket an address spends from: an IPv4 address, an IPv6 /64 (an IPv4
    address mapped into IPv6 as that IPv4 address), else NOT_AN_ADDRESS: text that varies
    freely must not buy a fresh bucket per spelling."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return NOT_AN_ADDRESS
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
    unreported: int = 0  # refused and failed attempts not logged since its last line
    reported_at: float = 0.0  # when the last line about it was due
    failed_keys: tuple[bytes, ...] = ()  # digests of its last REPEATS failed keys


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
    retry_after: int  # when the source may try again (0: it is not throttled)


class Throttle:
    def __init__(self, clock: Callable[[], float] = time.monotonic, *, burst: int = BURST,
                 rate: float = RATE, max_sources: int = MAX_SOURCES,
                 report_every: float = REPORT_EVERY, log_lines: int = LOG_LINES) -> None:
        self.clock = clock
        self.burst = burst
        self.rate = rate
        self.max_sources = max_sources
        self.report_every = report_every
        self.log_lines = log_lines
        self._sources: OrderedDict[str, _Source] = OrderedDict()  # least recent first
        self._second = 0  # the second of the clock the lines below were logged in
        self._lines = 0

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

    def fail(self, address: str, key: str) -> Failed:
        """A request from `address` failed to authenticate with `key` (what it sent, ""
        for none): spend one token, unless it is a key the source recently failed with."""
        now = self.clock()
        source = source_key(address)
        digest = hashlib.sha256(key.encode()).digest()[:16]
        entry = self._sources.get(source)
        if entry is None:
            self._make_room(now)
            entry = self._sources[source] = _Source(float(self.burst), now)
        tokens = self._refill(entry, now)
        if tokens >= self.burst - _ROUNDING:  # full again: log failures one by one again
            entry.throttled = False
        self._sources.move_to_end(source)
        if digest in entry.failed_keys:  # a stale client, not a guess: nothing spent
            entry.tokens, entry.at = tokens, now
            entry.unreported += 1
            return Failed(False, False, self._report(entry, now),
                          self._retry_after(tokens) if entry.throttled else 0)
        entry.failed_keys = (*entry.failed_keys, digest)[-REPEATS:]
        entry.tokens, entry.at = max(0.0, tokens - 1), now
        if entry.throttled:
            entry.unreported += 1
            return Failed(False, False, self._report(entry, now),
                          self._retry_after(entry.tokens))
        empty = entry.tokens < 1 - _ROUNDING
        entry.throttled = empty
        if not self._line(now):  # the log's cap: count it for the source's summary
            entry.unreported += 1
            return Failed(False, False, 0, self._retry_after(entry.tokens) if empty else 0)
        entry.reported_at = now
        return Failed(True, empty, 0, self._retry_after(entry.tokens) if empty else 0)

    def _refill(self, entry: _Source, now: float) -> float:
        return min(float(self.burst), entry.tokens + max(0.0, now - entry.at) * self.rate)

    def _retry_after(self, tokens: float) -> int:
        return max(1, math.ceil((1 - tokens) / self.rate - _ROUNDING))

    def _report(self, entry: _Source, now: float) -> int:
        """The count for a summary line about the source, when one is due (else 0)."""
        if not entry.unreported or now - entry.reported_at < self.report_every \
                or not self._line(now):
            return 0
        count, entry.unreported, entry.reported_at = entry.unreported, 0, now
        return count

    def _line(self, now: float) -> bool:
        """Whether one more line fits in this second's share of the log."""
        second = math.floor(now)
        if second != self._second:
            self._second, self._lines = second, 0
        if self._lines >= self.log_lines:
            return False
        self._lines += 1
        return True

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
