"""The scheduler: claims due deliveries within caps and sends them.

Claim/lease protocol: the scheduler keeps, per endpoint, a hint of when its next
delivery is due (`Lane.due`, lanes.py). It claims only for endpoints that are due and
below their concurrency cap, inside the global cap, in one store transaction that marks
the rows `delivering` with a lease and counts the attempt. Each claimed delivery is sent
by a worker (attempt.py: the request and its result), whose outcome is committed
(recorder.py) before its slot is freed. A crash leaves rows `delivering`; the next start
returns them to `pending` (SQLite), or another process does once their lease, renewed
while held (leases.py), runs out (PostgreSQL).

Hints, not polling: ingest, retries and releases lower an endpoint's hint (`notify`);
a claim that exhausts an endpoint's due work sets the hint to its next due time from the
database. The loop sleeps until the earliest hint or a wake-up (new work, a freed slot).
Memory is bounded by the caps (`budget.py`): at most 2 x `concurrency` deliveries are
ever loaded.

The policies are pure functions applied here: the claim budget (`budget.py`), the rate
limit's token bucket (`ratelimit.py`), the retry decision (`retry.py`), what a step of
the wall clock moves (`clocksteps.py`). Time comes only from `clock` (the wall clock:
stored times) and `monotonic` (waits, rate limits, noticing a step of the wall clock:
at every wake-up and at least once a second, clockwatch.py), so tests drive the
scheduler with clocks they advance by hand (`wake` after moving them, `wait_idle` to
learn when it next has work) or step one of them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import time
from collections.abc import Callable

from relay.delivery import budget
from relay.delivery.attempt import build_request, result_of
from relay.delivery.clockwatch import ClockWatch
from relay.delivery.endpoints import Endpoint
from relay.delivery.lanes import Lane
from relay.delivery.leases import LEASE_MARGIN, Leases
from relay.delivery.recorder import Finished, Recorder, outcome_name
from relay.delivery.sender import Sender
from relay.errors import RelayError
from relay.logs import log
from relay.metrics import Metrics
from relay.storage.base import Queue
from relay.types import Claimed, Recorded, Reporting


def _earliest(a: float | None, b: float) -> float:
    return b if a is None else min(a, b)


def _report_crash(task: asyncio.Task[None]) -> None:
    """A loop that dies stops all delivery: never silently (readyz turns 503)."""
    if not task.cancelled() and task.exception() is not None:
        logging.getLogger("relay").error("%s crashed", task.get_name(),
                                         exc_info=task.exception())


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
        reporting: Callable[[], Reporting] | None = None,
    ) -> None:
        self._store = store
        self._sender = sender
        self._metrics = metrics
        self.concurrency = concurrency
        self._on_disabled = on_disabled
        self._clock = clock
        self._monotonic = monotonic
        self._clocks = ClockWatch(store, clock, monotonic)
        self._endpoints: dict[str, Endpoint] = {}
        self._lanes: dict[str, Lane] = {}
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
        self._background: set[asyncio.Task[None]] = set()
        self._leases = Leases(store, clock)
        self._renewer: asyncio.Task[None] | None = None
        self._recorder = Recorder(store, disable_after=disable_after, reporting=reporting,
                                  settled=self._settled, committed=self._committed)

    # --- control ------------------------------------------------------------------

    def set_endpoints(self, endpoints: dict[str, Endpoint]) -> None:
        """Replace the endpoint set (config reload, API change). New lanes look for work."""
        self._endpoints = endpoints
        for endpoint_id in endpoints:
            self._lanes.setdefault(endpoint_id, Lane())
        stopped = [lane for eid, lane in self._lanes.items()
                   if lane.ready and (eid not in endpoints or not endpoints[eid].accepting)]
        if stopped:  # paused or removed: claimed but unsent deliveries go back
            task = asyncio.create_task(self._leases.unclaim(self._take_ready(stopped)))
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
        lane.hint(due, claiming=self._claiming)
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
        recorder = self._recorder.start()
        self._renewer = asyncio.create_task(self._leases.renew_loop(),
                                            name="relay-lease-renewer")
        for task in (self._task, recorder, self._renewer):
            task.add_done_callback(_report_crash)

    async def stop(self, grace: float) -> None:
        """Stop claiming; let in-flight attempts finish for up to `grace` seconds. Any
        still running are cancelled and stay `delivering`: the next start retries them."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
        await self._leases.unclaim(self._take_ready(list(self._lanes.values())))
        tasks = [t for lane in self._lanes.values() for t in lane.tasks]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
                log("shutdown", abandoned=len(late), note="left for the next start")
        await self._recorder.close()  # no attempt is running now: it writes what is left
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
        return all(t is not None and not t.done() for t in (self._task, self._recorder.task))

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
            and not self._recorder.pending

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
        or until the wall clock steps (ClockWatch.sleep); `idle`: nothing to do before."""
        self._asleep, self._asleep_until = idle, until
        if self._idle_waiters and self._is_idle():
            self._idle.set()
        try:
            await self._clocks.sleep(until, self._wake)
        finally:
            self._asleep = False

    def clock_stepped(self) -> bool:
        """Whether a step of the wall clock waits to be taken in (the loop is woken for
        it). Until then this process's own leases may look expired by the step:
        housekeeping and PostgreSQL's heartbeat leave expired leases alone."""
        if self._clocks.noticed_step():
            self.wake()
        return self._clocks.pending != 0.0

    async def _follow_clock(self) -> bool:
        """Take in a step of the wall clock (clocksteps.py): move the stored times it
        affects in one store operation, then look at every endpoint again, so a backward
        step holds nothing due and work a forward step made overdue goes now. False: the
        store failed, the step is taken in at a later round."""
        self._clocks.noticed_step()
        if not self._clocks.pending:
            return True
        if not await self._clocks.take_in(self._leases.held):
            return False
        for lane in self._lanes.values():
            lane.due = 0.0
        return True

    async def _round(self) -> float | None:
        """Start buffered deliveries, claim what is due within the budget (`budget.py`);
        return the next due time (None: nothing known).

        Claims run ahead of sending: each endpoint may hold up to its concurrency again in
        claimed-but-unsent deliveries (`Lane.ready`), so a freed slot starts the next
        delivery at once instead of waiting for a database round trip. Their lease covers
        the wait: at most one attempt's timeout, as at most `concurrency` go ahead of them.
        """
        now, ticks = self._clock(), self._monotonic()
        left = budget.total(
            concurrency=self.concurrency, inflight=self._inflight,
            ready=sum(len(lane.ready) for lane in self._lanes.values()),
            unrecorded=self._recorder.pending,
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
            free, when = lane.wants(endpoint, now, ticks, left)
            if when is not None:
                soonest = _earliest(soonest, when)
            if free <= 0:
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
                finished=self._recorder.waiting(wanted),
            )
        finally:
            self._claiming = False
        self._leases.take((item.id for item in claimed), lease)
        got = collections.Counter(item.endpoint_id for item in claimed)
        for endpoint_id, asked in wanted.items():
            wanting = self._lanes.get(endpoint_id)
            if wanting is None:
                continue
            when = wanting.claimed(endpoint_id in next_due, next_due.get(endpoint_id), now)
            if when is not None:
                soonest = _earliest(soonest, when)
            limited = self._endpoints.get(endpoint_id)
            if limited is not None:  # fewer were due: their tokens stay
                wanting.give_back(asked - got[endpoint_id], limited.rate_limit)
        lost: list[int] = []
        for item in claimed:
            owner = self._lanes.get(item.endpoint_id)
            if owner is None:  # removed while claiming
                lost.append(item.id)
            else:
                owner.ready.append(item)
        await self._leases.unclaim(lost)
        if claimed:
            self._wake.set()  # look again: start them, and other work may be due
        return soonest

    def _lease_for(self, wanted: dict[str, int]) -> float:
        """Time for one attempt plus a margin; renewed (leases.py) while the delivery
        waits in `ready` or is being sent, so a slow receiver never has its delivery
        taken over by another process."""
        timeouts = [self._endpoints[e].timeout for e in wanted if e in self._endpoints]
        return max(timeouts, default=0.0) + LEASE_MARGIN

    def _limits(self, wanted: dict[str, int]) -> dict[str, tuple[int, float | None]]:
        """Each endpoint's caps, for a store shared by several processes to hold across
        all of them (this scheduler holds them only for itself)."""
        return {e: (self._endpoints[e].concurrency, self._endpoints[e].rate_limit)
                for e in wanted if e in self._endpoints}

    def _start_ready(self, lane: Lane, endpoint: Endpoint) -> None:
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

    def _take_ready(self, lanes: list[Lane]) -> list[int]:
        """Take unsent claims out of the buffers, to give back to the queue."""
        ids = [item.id for lane in lanes for item in lane.ready]
        for lane in lanes:
            lane.ready.clear()
        return ids

    # --- one delivery ---------------------------------------------------------------

    async def _work(self, lane: Lane, endpoint_id: str, item: Claimed) -> None:
        """Deliver `item`, then the lane's next ready ones while the endpoint accepts and
        the caps allow; the slot is freed when nothing is ready."""
        try:
            while True:
                endpoint = self._endpoints.get(endpoint_id)
                if endpoint is None:  # removed: its deliveries were cancelled
                    self._leases.drop(item.id)
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
        result = result_of(item, endpoint, headers, started, outcome, now,
                           accepting=self._endpoints.get(endpoint.id, endpoint).accepting)
        lane = self._lanes.get(endpoint.id)
        if lane is not None:
            lane.unrecorded += 1
        await self._recorder.commit(result, item.event_id, outcome, now)

    # --- recorded outcomes (recorder.py) ------------------------------------------

    def _settled(self, batch: list[Finished]) -> None:
        """Outcomes committed (or given up on): their slots and leases go, and an ordered
        endpoint looks for its next head, which only the database knows (a retry,
        success, failure or cancellation moved it)."""
        for finished in batch:
            endpoint_id = finished.result.endpoint_id
            lane = self._lanes.get(endpoint_id)
            if lane is None:
                continue
            lane.unrecorded -= 1
            endpoint = self._endpoints.get(endpoint_id)
            if endpoint is not None and endpoint.ordered:
                self.notify(endpoint_id, finished.now)
        self._wake.set()
        for finished in batch:  # recorded, or left for its lease to expire
            self._leases.drop(finished.result.delivery_id)

    def _committed(self, batch: list[Finished], recorded: Recorded) -> None:
        """Metrics and hints of a committed batch: retries and endpoints due again, and
        endpoints the outcomes disabled."""
        for finished in batch:
            result = finished.result
            self._metrics.attempt(outcome_name(result), finished.outcome.duration_ms / 1000)
            if result.state == "pending" and result.next_at is not None:
                self.notify(result.endpoint_id, result.next_at)
        for endpoint_id in recorded.due:
            self.notify(endpoint_id, self._clock())
        if recorded.disabled:
            for endpoint_id, reason in recorded.disabled.items():
                log("endpoint_disabled", logging.WARNING, endpoint=endpoint_id,
                    reason=reason)
            self._on_disabled(recorded.disabled)
