"""The scheduler: claims due deliveries within caps and sends them.

Claim/lease protocol: the scheduler keeps, per endpoint, a hint of when its next
delivery is due (`_Lane.due`). It claims only for endpoints that are due and below their
concurrency cap, inside the global cap, in one store transaction that marks the rows
`delivering` with a lease and counts the attempt. Each claimed delivery is sent by its
own task, whose outcome is recorded (attempt row + next state) before its slot is freed.
A crash leaves rows `delivering`; the next start returns them to `pending`.

Hints, not polling: ingest, retries and releases lower an endpoint's hint (`notify`);
a claim that exhausts an endpoint's due work sets the hint to its next due time from the
database. The loop sleeps until the earliest hint or a wake-up (new work, a freed slot).
Memory is bounded by the caps: at most `concurrency` deliveries are ever loaded.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from relay import __version__
from relay.delivery.endpoints import Endpoint
from relay.delivery.retry import decide
from relay.delivery.sender import Outcome, Sender
from relay.delivery.signing import sign
from relay.errors import RelayError
from relay.ids import delivery_ref
from relay.logs import log
from relay.metrics import Metrics
from relay.storage.base import AttemptResult, Claimed, Recorded, Store

_MAX_CLAIM = 256  # deliveries claimed per endpoint per round
_LEASE_MARGIN = 30.0  # seconds beyond the timeout before a lease counts as expired
USER_AGENT = f"relay/{__version__}"


@dataclass(slots=True)
class _Lane:
    """Per-endpoint scheduling state."""

    due: float | None = 0.0  # earliest known due time; 0 = unknown, look; None = nothing
    notified: float | None = None  # lowest hint received while a claim was running
    inflight: int = 0
    tokens: float = 0.0
    refilled: float = 0.0
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


class Scheduler:
    def __init__(
        self,
        store: Store,
        sender: Sender,
        metrics: Metrics,
        *,
        concurrency: int,
        disable_after: Callable[[], float],
        on_disabled: Callable[[dict[str, str]], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._sender = sender
        self._metrics = metrics
        self.concurrency = concurrency
        self._disable_after = disable_after
        self._on_disabled = on_disabled
        self._clock = clock
        self._endpoints: dict[str, Endpoint] = {}
        self._lanes: dict[str, _Lane] = {}
        self._inflight = 0
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._stopping = False
        self._claiming = False
        self._rotation = itertools.count()
        self._task: asyncio.Task[None] | None = None

    # --- control ------------------------------------------------------------------

    def set_endpoints(self, endpoints: dict[str, Endpoint]) -> None:
        """Replace the endpoint set (config reload, API change). New lanes look for work."""
        self._endpoints = endpoints
        for endpoint_id in endpoints:
            self._lanes.setdefault(endpoint_id, _Lane())
        for endpoint_id in set(self._lanes) - set(endpoints):
            if not self._lanes[endpoint_id].inflight:
                del self._lanes[endpoint_id]
        self._wake.set()

    def notify(self, endpoint_id: str, due: float) -> None:
        """An endpoint has a delivery due at `due` (new, retried or released)."""
        lane = self._lanes.get(endpoint_id)
        if lane is None:
            return
        if lane.due is None or due < lane.due:
            lane.due = due
        if self._claiming:
            lane.notified = due if lane.notified is None else min(lane.notified, due)
        self._wake.set()

    def rescan(self) -> None:
        """Forget the hints and look at every endpoint again (a safety net)."""
        for lane in self._lanes.values():
            lane.due = 0.0
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="relay-scheduler")

    async def stop(self, grace: float) -> None:
        """Stop claiming; let in-flight attempts finish for up to `grace` seconds. Any
        still running are cancelled and stay `delivering`: the next start retries them."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
        tasks = [t for lane in self._lanes.values() for t in lane.tasks]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
                log("shutdown", abandoned=len(late), note="left for the next start")

    @property
    def inflight(self) -> int:
        return self._inflight

    async def wait_idle(self, timeout: float) -> None:
        """Until nothing is in flight and no endpoint has due work (tests, drains)."""
        async with asyncio.timeout(timeout):
            while True:
                self._idle.clear()
                if self._is_idle():
                    return
                await self._idle.wait()

    def _is_idle(self) -> bool:
        now = self._clock()
        return self._inflight == 0 and not any(
            lane.due is not None and lane.due <= now and self._accepting(eid)
            for eid, lane in self._lanes.items()
        )

    def _accepting(self, endpoint_id: str) -> bool:
        endpoint = self._endpoints.get(endpoint_id)
        return endpoint is not None and endpoint.accepting

    # --- the loop -----------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                soonest = await self._round()
            except RelayError as exc:
                log("claim_failed", logging.ERROR, error=exc.message)
                soonest = self._clock() + 1.0
            if self._is_idle():
                self._idle.set()
            if self._wake.is_set() or self._stopping:
                continue
            timeout = None if soonest is None else max(0.0, soonest - self._clock())
            try:
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _round(self) -> float | None:
        """Claim what is due within the caps, start sending it; return the next due time."""
        now = self._clock()
        free_total = self.concurrency - self._inflight
        wanted: dict[str, int] = {}
        soonest: float | None = None
        ids = list(self._lanes)
        if ids:
            start = next(self._rotation) % len(ids)
            ids = ids[start:] + ids[:start]  # fairness across endpoints
        for endpoint_id in ids:
            lane = self._lanes[endpoint_id]
            endpoint = self._endpoints.get(endpoint_id)
            if lane.due is None or endpoint is None or not endpoint.accepting:
                continue
            if lane.due > now:
                soonest = lane.due if soonest is None else min(soonest, lane.due)
                continue
            free = min(endpoint.concurrency - lane.inflight, free_total, _MAX_CLAIM)
            if endpoint.rate_limit:
                free = min(free, self._take_tokens(lane, endpoint.rate_limit, now))
                if free <= 0 and lane.inflight < endpoint.concurrency:
                    when = now + (1 - lane.tokens) / endpoint.rate_limit
                    soonest = when if soonest is None else min(soonest, when)
            if free <= 0:
                continue
            wanted[endpoint_id] = free
            free_total -= free
            if free_total <= 0:
                break
        if not wanted:
            return soonest
        for endpoint_id in wanted:
            self._lanes[endpoint_id].notified = None
        self._claiming = True
        try:
            claimed, next_due = await self._store.claim(
                wanted, now, now + self._lease_for(wanted)
            )
        finally:
            self._claiming = False
        for endpoint_id in wanted:
            lane = self._lanes.get(endpoint_id)
            if lane is None:
                continue
            if endpoint_id in next_due:
                due = next_due[endpoint_id]
                if lane.notified is not None:
                    due = lane.notified if due is None else min(due, lane.notified)
                lane.due = due
            else:
                lane.due = now  # the claim was full: more may be due
        for item in claimed:
            self._launch(item)
        if claimed:
            self._wake.set()  # look again: other endpoints or more work may be due
        return soonest

    def _lease_for(self, wanted: dict[str, int]) -> float:
        timeouts = [self._endpoints[e].timeout for e in wanted if e in self._endpoints]
        return max(timeouts, default=0.0) + _LEASE_MARGIN

    @staticmethod
    def _take_tokens(lane: _Lane, rate: float, now: float) -> int:
        """Token bucket (burst of one second's worth): how many sends may start now."""
        lane.tokens = min(rate, lane.tokens + (now - lane.refilled) * rate)
        lane.refilled = now
        allowed = int(lane.tokens)
        lane.tokens -= allowed
        return allowed

    def _launch(self, item: Claimed) -> None:
        endpoint = self._endpoints.get(item.endpoint_id)
        lane = self._lanes.get(item.endpoint_id)
        if endpoint is None or lane is None:  # removed while claiming: lease expiry retries
            return
        lane.inflight += 1
        self._inflight += 1
        task = asyncio.create_task(self._deliver(item, endpoint, lane))
        lane.tasks.add(task)
        task.add_done_callback(lane.tasks.discard)

    # --- one delivery ---------------------------------------------------------------

    async def _deliver(self, item: Claimed, endpoint: Endpoint, lane: _Lane) -> None:
        try:
            started = self._clock()
            body = item.payload if endpoint.payload == "envelope" else b"[" + item.payload + b"]"
            headers = {
                "content-type": "application/json",
                "user-agent": USER_AGENT,
                **endpoint.headers,
                "webhook-id": item.event_id,
                **sign(endpoint.signature, endpoint.secrets, item.event_id, int(started), body,
                       endpoint.signature_header),
            }
            outcome = await self._sender.send(
                endpoint.url, headers, body, timeout=endpoint.timeout,
                allow_private=endpoint.allow_private, allow_http=endpoint.allow_http,
            )
            await self._finish(item, endpoint, headers, started, outcome)
        finally:
            lane.inflight -= 1
            self._inflight -= 1
            self._wake.set()

    async def _finish(
        self, item: Claimed, endpoint: Endpoint, headers: dict[str, str], started: float,
        outcome: Outcome,
    ) -> None:
        now = self._clock()
        current = self._endpoints.get(endpoint.id, endpoint)
        decision = decide(
            attempt=item.attempt, status=outcome.status, ok=outcome.ok,
            retry_after=outcome.retry_after, schedule=endpoint.schedule, now=now,
            accepting=current.accepting,
        )
        result = AttemptResult(
            delivery_id=item.id, endpoint_id=endpoint.id, attempt=item.attempt,
            started_at=started, duration_ms=outcome.duration_ms, request_headers=headers,
            status=outcome.status, response_headers=outcome.headers,
            response_body=outcome.body, error=outcome.error, state=decision.state,
            next_at=decision.next_at, success=outcome.ok, gone=decision.gone,
        )
        try:
            recorded: Recorded = await self._store.record([result], now, self._disable_after())
        except RelayError as exc:
            # The row stays `delivering`; its lease expires and the attempt is repeated.
            log("record_failed", logging.ERROR, delivery=delivery_ref(item.id),
                error=exc.message)
            return
        outcome_name = "retry" if decision.state == "pending" else decision.state
        self._metrics.outcomes.labels(outcome_name).inc()
        self._metrics.latency.observe(outcome.duration_ms / 1000)
        log(
            "attempt",
            logging.INFO if outcome.ok else logging.WARNING,
            delivery=delivery_ref(item.id), event=item.event_id, endpoint=endpoint.id,
            attempt=item.attempt, status=outcome.status,
            duration_ms=round(outcome.duration_ms, 1), outcome=outcome_name,
            retry_in=None if decision.next_at is None else f"{decision.next_at - now:.1f}s",
            error=outcome.error,
        )
        if decision.state == "pending" and decision.next_at is not None:
            self.notify(endpoint.id, decision.next_at)
        if recorded.disabled:
            for endpoint_id, reason in recorded.disabled.items():
                log("endpoint_disabled", logging.WARNING, endpoint=endpoint_id, reason=reason)
            self._on_disabled(recorded.disabled)
