"""The operator's overview: queue depth, the last hour's attempts (and the cache of their
per-minute counts), endpoints in trouble, recent errors."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from relay.models import webhook_of
from relay.operations import reads_of, webhook_state
from relay.storage.base import Reads
from relay.types import MinuteOutcomes
from relay.ui import chart
from relay.ui.answers import page, render, see_other
from relay.ui.security import SignIn, Visit

RECENT = 10  # recent errors on the overview


class _LastHour:
    """The chart's counts per minute. A minute that ended more than SETTLED seconds ago no
    longer changes (an attempt is recorded within its timeout of starting, 10 s by
    default), so each is read from the store once per process and kept; every overview
    then counts only the last few minutes' attempts instead of the whole hour's (an
    attempt recorded later than SETTLED after it started is left out of its minute)."""

    SETTLED = 120.0

    def __init__(self) -> None:
        self._closed: dict[int, MinuteOutcomes] = {}
        self._upto = 0  # minutes before this are in _closed

    async def read(self, store: Reads, now: float) -> list[MinuteOutcomes]:
        first = (int(now) // 60 - chart.MINUTES + 1) * 60
        settled = int(now - self.SETTLED) // 60 * 60
        if self._upto < first:
            self._closed.clear()
            self._upto = first
        fresh = await store.outcomes_per_minute(float(self._upto))
        if self._upto < settled:
            self._closed.update({int(b.minute): b for b in fresh if b.minute < settled})
            self._upto = settled
        for minute in [m for m in self._closed if m < first]:
            del self._closed[minute]
        recent = [b for b in fresh if b.minute >= self._upto]
        return [*sorted(self._closed.values(), key=lambda b: b.minute), *recent]


def _last_hour(request: Request) -> _LastHour:
    cached: _LastHour | None = getattr(request.app.state, "console_last_hour", None)
    if cached is None:
        cached = request.app.state.console_last_hour = _LastHour()
    return cached


@page
async def overview(request: Request, visit: Visit) -> Response:
    if visit.session.kind == "p":
        return see_other(f"/ui/t/{visit.session.subject}/endpoints")
    if not visit.operator:
        raise SignIn()
    relay = visit.relay
    store = reads_of(relay)
    now = relay.clock()
    counts = await store.counts()
    buckets = await _last_hour(request).read(store, now)
    failures = await store.recent_failures(now - 3600, RECENT)
    rows = await store.list_endpoints()
    pending = await store.pending_counts([row.id for row in rows])
    webhooks = [webhook_of(row, pending[row.id]) for row in rows]
    trouble = [w for w in webhooks if webhook_state(w) in ("failing", "disabled")]
    return render(
        request, visit, "overview.html",
        counts={state: counts.get(state, 0) for state in (
            "pending", "delivering", "held", "succeeded", "failed", "cancelled")},
        chart=chart.svg(buckets, now), summary=chart.summarise(buckets),
        failures=failures, trouble=trouble, endpoints=len(webhooks), webhooks=webhooks,
    )
