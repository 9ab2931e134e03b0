"""The scheduler: claims due deliveries within caps and sends them.

Claim/lease protocol: the scheduler keeps, per endpoint, a hint of when its next
delivery is due (`_Lane.due`). It claims only for endpoints that are due and below their
concurrency cap, inside the global cap, in one store transaction that marks the rows
`delivering` with a lease and counts the attempt. Each claimed delivery is sent by its
own task, whose outcome is committed (attempt row + next state) before its slot is freed.
A crash leaves rows `delivering`; the next start returns them to `pending` (SQLite), or
another process does once their lease, renewed while held, runs out (PostgreSQL).

Hints, not polling: ingest, retries and releases lower an endpoint's hint (`notify`);
a claim that exhausts an endpoint's due work sets the hint to its next due time from the
database. The loop sleeps until the earliest hint or a wake-up (new work, a freed slot).
Memory is bounded by the caps (`budget.py`): at most 2 x `concurrency` deliveries are
ever loaded.

The policies are pure functions applied here: the claim budget (`budget.py`), the rate
limit's token bucket (`ratelimit.py`), the retry decision (`retry.py`), what a step of
the wall clock moves (`clocksteps.py`). Time comes only from `clock` (the wall clock:
stored times) and `monotonic` (waits, rate limits, noticing a step of the wall clock:
at every wake-up and at least once a second), so tests drive the scheduler with clocks
they advance by hand (`wake` after moving them, `wait_idle` to learn when it next has
work) or step one of them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from relay.delivery import budget, clocksteps, ratelimit
from relay.delivery.endpoints import Endpoint
from relay.delivery.headers import FIXED_HEADERS
from relay.delivery.headers import USER_AGENT as USER_AGENT
from relay.delivery.retry import decide
from relay.delivery.sender import Outcome, Sender
from relay.delivery.signing import WEBHOOK_ID, sign
from relay.errors import RelayError
from relay.ids import delivery_ref
from relay.logs import log, log_lines
from relay.metrics import Metrics
from relay.storage.base import Queue
from relay.types import AttemptResult, Claimed, Recorded, Reporting

_LEASE_MARGIN = 10.0  # seconds beyond the timeout before a lease counts as expired
_RENEW_EVERY = 2.0  # seconds between renewals of the leases this process holds


def build_request(endpoint: Endpoint, event_id: str, payload: bytes,
                  now: float) -> tuple[bytes, dict[str, str]]:
    """Body and headers of one attempt sent at `now` (scheduled or a test send). A
    rotated-out secret signs only until its grace ends, even if `endpoint` was resolved
    while it was still valid. The endpoint's own headers never name one relay sets (see
    relay.delivery.headers; `resolve` left out any stored before that rule)."""
    body = payload if endpoint.payload == "envelope" else b"[" + payload + b"]"
    secrets = endpoint.secrets
    until = endpoint.row.prev_secret_until
    if len(secrets) > 1 and until is not None and now >= until:
        secrets = secrets[:1]
    headers = {
        **FIXED_HEADERS,
        **endpoint.headers,
        WEBHOOK_ID: event_id,
        **sign(endpoint.signature, secrets, event_id, int(now), body, endpoint.signature_header),
    }
    return body, headers


def _outcome_name(result: AttemptResult) -> str:
    return "retry" if result.state == "pending" else result.state


def _earliest(a: float | None, b: float) -> float:
    return b if a is None else min(a, b)


def _report_crash(task: asyncio.Task[None]) -> None:
    """A loop that dies stops all delivery: never silently (readyz turns 503)."""
    if not task.cancelled() and task.exception() is not None:
        logging.getLogger("relay").error("%s crashed", task.get_name(),
                                         exc_info=task.exception())


@dataclass(frozen=True, slots=True)
class _Finished:
    """An attempt that is over, waiting to be recorded; `committed` is resolved once the
    recorder has written it (or given up on it): its worker holds the slot until then."""

    result: AttemptResult
    event_id: str
    outcome: Outcome
    now: float
    committed: asyncio.Future[None]


@dataclass(slots=True)
class _Lane:
    """Per-endpoint scheduling state."""

    due: float | None = 0.0  # earliest known due time; 0 = unknown, look; None = nothing
    notified: float | None = None  # lowest hint received while a claim was running
    inflight: int = 0
    unrecorded: int = 0  # outcomes sent back but not yet committed
    bucket: ratelimit.Bucket = field(default_factory=ratelimit.Bucket)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    ready: deque[Claimed] = field(default_factory=deque)  # claimed, waiting for a slot


class Scheduler:
    def __init__(
        self,
        store: Queue,
        sender: Sender,
        metrics: Metrics,
        *,
        concurrency: int,
        disable_after: Callable[[], float],
        on_disabled: Callable[[dict[str, str]], None],
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        ops: Callable[[], Reporting] | None = None,
    ) -> None:
        self._store = store
        self._sender = sender
        self._metrics = metrics
        self.concurrency = concurrency
        self._disable_after = disable_after
        self._on_disabled = on_disabled
        self._clock = clock
        self._monotonic = monotonic
        self._steps = clocksteps.StepWatch(clocksteps.offset(clock(), monotonic()))
        self._step = 0.0  # a step of the wall clock noticed and not yet taken in
        self._ops = ops
        self._endpoints: dict[str, Endpoint] = {}
        self._lanes: dict[str, _Lane] = {}
        self._inflight = 0
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle_waiters = 0  # idleness is checked only while someone waits for it
        self._asleep = False  # the loop waits: nothing it can do before `_asleep_until`
        self._asleep_until: float | None = None
        self._stopping = False
        self._claiming = False
        self._rotation = itertools.count()
        self._task: asyncio.Task[None] | None = None
        # Outcomes waiting to be recorded, and those the recorder is writing now.
        self._outcomes: list[_Finished] = []
        self._recording: list[_Finished] = []
        self._outcome_ready = asyncio.Event()
        self._recorder: asyncio.Task[None] | None = None
        self._closing = False
        self._background: set[asyncio.Task[None]] = set()
        # Claimed here and not yet recorded: delivery id -> lease length, renewed meanwhile.
        self._leased: dict[int, float] = {}
        self._renewer: asyncio.Task[None] | None = None

    # --- control ------------------------------------------------------------------

    def set_endpoints(self, endpoints: dict[str, Endpoint]) -> None:
        """Replace the endpoint set (config reload, API change). New lanes look for work."""
        self._endpoints = endpoints
        for endpoint_id in endpoints:
            self._lanes.setdefault(endpoint_id, _Lane())
        stopped = [lane for eid, lane in self._lanes.items()
                   if lane.ready and (eid not in endpoints or not endpoints[eid].accepting)]
        if stopped:  # paused or removed: claimed but unsent deliveries go back
            task = asyncio.create_task(self._unclaim(self._take_ready(stopped)))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        for endpoint_id in set(self._lanes) - set(endpoints):
            lane = self._lanes[endpoint_id]
            if not lane.inflight and not lane.unrecorded:
                del self._lanes[endpoint_id]
        self.wake()

    def notify(self, endpoint_id: str, due: float) -> None:
        """An endpoint has a delivery due at `due` (new, retried or released)."""
        lane = self._lanes.get(endpoint_id)
        if lane is None:
            return
        if lane.due is None or due < lane.due:
            lane.due = due
        if self._claiming:
            lane.notified = due if lane.notified is None else min(lane.notified, due)
        self.wake()

    def rescan(self) -> None:
        """Forget the hints and look at every endpoint again (a safety net)."""
        for lane in self._lanes.values():
            lane.due = 0.0
        self.wake()

    def wake(self) -> None:
        """Look again now: the clock moved (an injected one, in tests) or work changed."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="relay-scheduler")
        self._recorder = asyncio.create_task(self._record_loop(), name="relay-recorder")
        self._renewer = asyncio.create_task(self._renew_loop(), name="relay-lease-renewer")
        for task in (self._task, self._recorder, self._renewer):
            task.add_done_callback(_report_crash)

    async def stop(self, grace: float) -> None:
        """Stop claiming; let in-flight attempts finish for up to `grace` seconds. Any
        still running are cancelled and stay `delivering`: the next start retries them."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
        await self._unclaim(self._take_ready(list(self._lanes.values())))
        tasks = [t for lane in self._lanes.values() for t in lane.tasks]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
                log("shutdown", abandoned=len(late), note="left for the next start")
        if self._recorder is not None:
            self._closing = True  # no attempt is running now: nothing more will arrive
            self._outcome_ready.set()  # the recorder writes what is left, then ends
            await self._recorder
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer

    @property
    def inflight(self) -> int:
        return self._inflight

    @property
    def running(self) -> bool:
        """Both loops alive (a crash is a bug; /readyz reports it)."""
        return all(t is not None and not t.done() for t in (self._task, self._recorder))

    async def wait_idle(self, timeout: float) -> float | None:
        """Until the scheduler has nothing to do before its clock moves on: nothing in
        flight or waiting to be recorded, and nothing it may start now (work may be due
        but waiting for a rate limit's token). Returns when it next has work (None: only
        when told). For tests and drains, while it runs."""
        self._idle_waiters += 1
        try:
            async with asyncio.timeout(timeout):
                while True:
                    self._idle.clear()
                    if self._is_idle():
                        return self._asleep_until
                    await self._idle.wait()
        finally:
            self._idle_waiters -= 1

    def _is_idle(self) -> bool:
        """The loop's last round found nothing to start, and nothing has happened since
        (whatever could give it work wakes it: a freed slot, a recorded outcome, a hint)."""
        return self._asleep and not self._wake.is_set() and self._inflight == 0 \
            and not self._outcomes and not self._recording

    # --- the loop -----------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            idle = True
            try:
                if not await self._follow_clock():
                    idle = False  # try again in a second
                soonest = await self._round()
            except RelayError as exc:
                log("claim_failed", logging.ERROR, error=exc.message)
                soonest, idle = self._clock() + 1.0, False  # due work was not claimed
            if not idle:
                soonest = _earliest(soonest, self._clock() + 1.0)
            if not self._wake.is_set() and not self._stopping:
                await self._sleep(soonest, idle=idle)

    async def _sleep(self, until: float | None, *, idle: bool) -> None:
        """Wait for a wake-up, or until `until` by the wall clock (None: only a wake-up),
        looking at the clocks every `CHECK_EVERY` s: a step of the wall clock ends the
        wait. The wait itself runs on the loop's monotonic clock, its length taken from
        the wall clock once."""
        self._asleep, self._asleep_until = idle, until
        if self._idle_waiters and self._is_idle():
            self._idle.set()
        loop = asyncio.get_running_loop()
        deadline = None if until is None else loop.time() + max(0.0, until - self._clock())
        try:
            while not self._noticed_step():
                left = clocksteps.CHECK_EVERY if deadline is None \
                    else min(clocksteps.CHECK_EVERY, deadline - loop.time())
                if left <= 0:
                    return
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(left):
                        await self._wake.wait()
                if self._wake.is_set():
                    return
        finally:
            self._asleep = False

    def clock_stepped(self) -> bool:
        """Whether a step of the wall clock waits to be taken in (the loop is woken for
        it). Until then this process's own leases may look expired by the step:
        housekeeping and PostgreSQL's heartbeat leave expired leases alone."""
        if self._noticed_step():
            self.wake()
        return self._step != 0.0

    def _noticed_step(self) -> bool:
        """Whether the wall clock stepped since the last look (added to `_step`)."""
        step = self._steps.detect(self._clock(), self._monotonic())
        self._step += step
        return step != 0.0

    async def _follow_clock(self) -> bool:
        """Take in a step of the wall clock (clocksteps.py): move the stored times it
        affects in one store operation, then look at every endpoint again, so a backward
        step holds nothing due and work a forward step made overdue goes now. False: the
        store failed, the step is taken in at a later round."""
        self._noticed_step()
        if not self._step:
            return True
        step, now = self._step, self._clock()
        try:
            moved = await self._store.shift_times(clocksteps.plan(step, now, self._leased))
        except RelayError as exc:
            log("clock_step_failed", logging.ERROR, step=f"{step:+.3f}s", error=exc.message)
            return False
        self._step = 0.0
        log("clock_step", logging.WARNING, step=f"{step:+.3f}s", moved=moved or None)
        for lane in self._lanes.values():
            lane.due = 0.0
        return True

    async def _round(self) -> float | None:
        """Start buffered deliveries, claim what is due within the budget (`budget.py`);
        return the next due time (None: nothing known).

        Claims run ahead of sending: each endpoint may hold up to its concurrency again in
        claimed-but-unsent deliveries (`_Lane.ready`), so a freed slot starts the next
        delivery at once instead of waiting for a database round trip. Their lease covers
        the wait: at most one attempt's timeout, as at most `concurrency` go ahead of them.
        """
        now, ticks = self._clock(), self._monotonic()
        left = budget.total(
            concurrency=self.concurrency, inflight=self._inflight,
            ready=sum(len(lane.ready) for lane in self._lanes.values()),
            unrecorded=len(self._outcomes) + len(self._recording),
        )
        wanted: dict[str, int] = {}
        soonest: float | None = None
        ids = list(self._lanes)
        if ids:
            start = next(self._rotation) % len(ids)
            ids = ids[start:] + ids[:start]  # fairness across endpoints
        for endpoint_id in ids:
            lane = self._lanes[endpoint_id]
            endpoint = self._endpoints.get(endpoint_id)
            if endpoint is None or not endpoint.accepting:
                continue
            self._start_ready(lane, endpoint)
            if lane.due is None:
                continue
            if lane.due > now:
                soonest = _earliest(soonest, lane.due)
                continue
            if budget.held_back(ordered=endpoint.ordered, inflight=lane.inflight,
                                ready=len(lane.ready), unrecorded=lane.unrecorded):
                continue  # the recorder wakes it when the outcome is committed
            taken = None
            if endpoint.rate_limit:
                taken = ratelimit.take(lane.bucket, ticks, endpoint.rate_limit)
                lane.bucket = taken.bucket
            free = budget.endpoint(
                concurrency=endpoint.concurrency, inflight=lane.inflight,
                ready=len(lane.ready), budget=left,
                tokens=None if taken is None else taken.allowed, ordered=endpoint.ordered,
            )
            if taken is not None and endpoint.rate_limit:  # tokens beyond the ask stay
                lane.bucket = ratelimit.give_back(lane.bucket, taken.allowed - max(free, 0),
                                                  endpoint.rate_limit)
            if free <= 0:
                if taken is not None and lane.inflight < endpoint.concurrency:
                    # a free slot, no token: due at the next one (a monotonic time)
                    soonest = _earliest(soonest, now + taken.next_at - ticks)
                continue
            wanted[endpoint_id] = free
            left -= free
            if left <= 0:
                break
        if not wanted:
            return soonest
        for endpoint_id in wanted:
            self._lanes[endpoint_id].notified = None
        self._claiming = True
        lease = self._lease_for(wanted)
        try:
            claimed, next_due = await self._store.claim(
                wanted, now, now + lease, self._limits(wanted),
                ordered=frozenset(e for e in wanted if self._endpoints[e].ordered),
                finished=self._finished(wanted),
            )
        finally:
            self._claiming = False
        self._leased.update((item.id, lease) for item in claimed)
        for endpoint_id in wanted:
            wanting = self._lanes.get(endpoint_id)
            if wanting is None:
                continue
            if endpoint_id in next_due:
                due = next_due[endpoint_id]
                if wanting.notified is not None:
                    due = wanting.notified if due is None else min(due, wanting.notified)
                wanting.due = due
                if due is not None:
                    soonest = _earliest(soonest, due)
            else:
                wanting.due = now  # the claim was full: more may be due
        got = collections.Counter(item.endpoint_id for item in claimed)
        for endpoint_id, asked in wanted.items():  # fewer were due: their tokens stay
            short = self._lanes.get(endpoint_id)
            limited = self._endpoints.get(endpoint_id)
            if short is not None and limited is not None and limited.rate_limit:
                short.bucket = ratelimit.give_back(short.bucket, asked - got[endpoint_id],
                                                   limited.rate_limit)
        lost: list[int] = []
        for item in claimed:
            owner = self._lanes.get(item.endpoint_id)
            if owner is None:  # removed while claiming
                lost.append(item.id)
            else:
                owner.ready.append(item)
        await self._unclaim(lost)
        if claimed:
            self._wake.set()  # look again: start them, and other work may be due
        return soonest

    def _finished(self, wanted: dict[str, int]) -> list[int]:
        """Deliveries of these endpoints that were sent and wait for their outcome's
        commit: still `delivering` in the database, no longer at the receiver, so a store
        that counts live leases across processes leaves them out of the endpoint's cap
        (and the next claim need not wait for the record)."""
        return [f.result.delivery_id for f in itertools.chain(self._outcomes, self._recording)
                if f.result.endpoint_id in wanted]

    def _lease_for(self, wanted: dict[str, int]) -> float:
        """Time for one attempt plus a margin; renewed every `_RENEW_EVERY` while the
        delivery waits in `ready` or is being sent, so a slow receiver never has its
        delivery taken over by another process."""
        timeouts = [self._endpoints[e].timeout for e in wanted if e in self._endpoints]
        return max(timeouts, default=0.0) + _LEASE_MARGIN

    def _limits(self, wanted: dict[str, int]) -> dict[str, tuple[int, float | None]]:
        """Each endpoint's caps, for a store shared by several processes to hold across
        all of them (this scheduler holds them only for itself)."""
        return {e: (self._endpoints[e].concurrency, self._endpoints[e].rate_limit)
                for e in wanted if e in self._endpoints}

    async def _renew_loop(self) -> None:
        """Extend the leases of what this process has claimed and not yet recorded."""
        while True:
            await asyncio.sleep(_RENEW_EVERY)
            by_lease: dict[float, list[int]] = {}
            for delivery_id, lease in self._leased.items():
                by_lease.setdefault(lease, []).append(delivery_id)
            now = self._clock()
            for lease, ids in by_lease.items():
                try:
                    await self._store.renew(ids, now + lease)
                except RelayError as exc:  # tried again in _RENEW_EVERY
                    log("renew_failed", logging.ERROR, deliveries=len(ids), error=exc.message)

    def _start_ready(self, lane: _Lane, endpoint: Endpoint) -> None:
        """Start a worker per claimed delivery while the endpoint's and the global caps
        allow. A worker holds its slot and goes on with the lane's next ready delivery,
        so a busy lane costs no task per delivery."""
        while lane.ready and lane.inflight < endpoint.concurrency \
                and self._inflight < self.concurrency:
            lane.inflight += 1
            self._inflight += 1
            task = asyncio.create_task(self._work(lane, endpoint.id, lane.ready.popleft()))
            lane.tasks.add(task)
            task.add_done_callback(lane.tasks.discard)

    def _take_ready(self, lanes: list[_Lane]) -> list[int]:
        """Take unsent claims out of the buffers, to give back to the queue."""
        ids = [item.id for lane in lanes for item in lane.ready]
        for lane in lanes:
            lane.ready.clear()
        return ids

    async def _unclaim(self, ids: list[int]) -> None:
        for delivery_id in ids:
            self._leased.pop(delivery_id, None)
        if ids:
            try:
                await self._store.unclaim(ids, self._clock())
            except RelayError as exc:  # their leases expire and they are retried
                log("unclaim_failed", logging.ERROR, deliveries=len(ids), error=exc.message)

    # --- one delivery ---------------------------------------------------------------

    async def _work(self, lane: _Lane, endpoint_id: str, item: Claimed) -> None:
        """Deliver `item`, then the lane's next ready ones while the endpoint accepts and
        the caps allow; the slot is freed when nothing is ready."""
        try:
            while True:
                endpoint = self._endpoints.get(endpoint_id)
                if endpoint is None:  # removed: its deliveries were cancelled
                    self._leased.pop(item.id, None)
                    return
                await self._deliver(item, endpoint)
                endpoint = self._endpoints.get(endpoint_id)
                cap = 0 if endpoint is None else endpoint.concurrency
                if 2 * cap - lane.inflight - len(lane.ready) >= cap // 2:
                    self._wake.set()  # a claim would pass _round's batch threshold
                if not (lane.ready and endpoint is not None and endpoint.accepting
                        and lane.inflight <= cap and self._inflight <= self.concurrency):
                    return
                item = lane.ready.popleft()
        finally:
            lane.inflight -= 1
            self._inflight -= 1
            self._wake.set()

    async def _deliver(self, item: Claimed, endpoint: Endpoint) -> None:
        """Send one attempt and wait until its outcome is committed. The slot is held
        until then, so the deliveries a crash sends again (rows left `delivering` that
        reached the receiver) are at most those holding a slot: the endpoint's
        concurrency, and `concurrency` in all. The recorder commits as soon as it has an
        outcome, so the wait is about one commit (group commit shares it)."""
        started = self._clock()
        body, headers = build_request(endpoint, item.event_id, item.payload, started)
        outcome = await self._sender.send(
            endpoint.url, headers, body, timeout=endpoint.timeout,
            allow_private=endpoint.allow_private, allow_http=endpoint.allow_http,
        )
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
        committed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._outcomes.append(_Finished(result, item.event_id, outcome, now, committed))
        lane = self._lanes.get(endpoint.id)
        if lane is not None:
            lane.unrecorded += 1
        self._outcome_ready.set()
        await asyncio.shield(committed)  # cancelled at shutdown: the recorder still writes it

    async def _record_loop(self) -> None:
        """Record finished attempts in batches: one store call (one transaction) for all
        outcomes that arrived while the previous batch was being written, started as soon
        as there is one (no timer: their workers hold their slots until this commit)."""
        while True:
            await self._outcome_ready.wait()
            self._outcome_ready.clear()
            batch, self._outcomes = self._outcomes, []
            if not batch:
                if self._closing:
                    return
                continue
            self._recording = batch
            try:
                recorded: Recorded = await self._store.record(
                    [f.result for f in batch], max(f.now for f in batch), self._disable_after(),
                    None if self._ops is None else self._ops(),
                )
            except RelayError as exc:
                # The rows stay `delivering`; their leases expire and the attempts repeat.
                log("record_failed", logging.ERROR, deliveries=len(batch), error=exc.message)
                continue
            except Exception as exc:  # a bug: say so, and keep recording the others
                logging.getLogger("relay").error("recording %d attempts failed", len(batch),
                                                 exc_info=exc)
                continue
            finally:
                self._recording = []
                for finished in batch:
                    if not finished.committed.done():
                        finished.committed.set_result(None)
                self._settled(batch)
                self._wake.set()
                for finished in batch:  # recorded, or left for its lease to expire
                    self._leased.pop(finished.result.delivery_id, None)
            for finished in batch:
                self._recorded(finished)
            for endpoint_id in recorded.due:
                self.notify(endpoint_id, self._clock())
            if recorded.disabled:
                for endpoint_id, reason in recorded.disabled.items():
                    log("endpoint_disabled", logging.WARNING, endpoint=endpoint_id,
                        reason=reason)
                self._on_disabled(recorded.disabled)
            # Logged on the loop's next turn: the commit of what arrived meanwhile (its
            # workers' slots wait for it) is on its way first.
            asyncio.get_running_loop().call_soon(self._log, batch, recorded)
            self._outcome_ready.set()  # look again: more may have arrived meanwhile

    def _log(self, batch: list[_Finished], recorded: Recorded) -> None:
        """The log lines of a committed batch: an attempt line each, its ops events."""
        log_lines("attempt", [self._line(finished) for finished in batch])
        for notice in recorded.notices:
            log("ops_event", type=notice.type, endpoint=notice.endpoint_id)

    def _settled(self, batch: list[_Finished]) -> None:
        """Outcomes committed (or given up on): an ordered endpoint looks for its next head,
        which only the database knows (a retry, success, failure or cancellation moved it)."""
        for finished in batch:
            endpoint_id = finished.result.endpoint_id
            lane = self._lanes.get(endpoint_id)
            if lane is None:
                continue
            lane.unrecorded -= 1
            endpoint = self._endpoints.get(endpoint_id)
            if endpoint is not None and endpoint.ordered:
                self.notify(endpoint_id, finished.now)

    def _recorded(self, finished: _Finished) -> None:
        """Metrics and the retry hint of a recorded attempt."""
        result = finished.result
        self._metrics.attempt(_outcome_name(result), finished.outcome.duration_ms / 1000)
        if result.state == "pending" and result.next_at is not None:
            self.notify(result.endpoint_id, result.next_at)

    def _line(self, finished: _Finished) -> tuple[int, dict[str, Any]]:
        """The log line of a recorded attempt."""
        result, outcome = finished.result, finished.outcome
        outcome_name = _outcome_name(result)
        return logging.INFO if outcome.ok else logging.WARNING, {
            "delivery": delivery_ref(result.delivery_id), "event": finished.event_id,
            "endpoint": result.endpoint_id, "attempt": result.attempt, "status": outcome.status,
            "duration_ms": round(outcome.duration_ms, 1), "outcome": outcome_name,
            "retry_in": None if result.next_at is None
            else f"{result.next_at - finished.now:.1f}s",
            "error": outcome.error,
        }
