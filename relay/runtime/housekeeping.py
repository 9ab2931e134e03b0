"""Housekeeping, once a minute: purge old history in small batches, dead console
sessions and expired idempotency keys, return expired leases, re-check the scheduler's
hints."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from relay import config as cfgmod
from relay.delivery.scheduler import Scheduler
from relay.errors import RelayError
from relay.logs import log
from relay.storage import rules
from relay.storage.base import Store

_HOUSEKEEPING_EVERY = 60.0  # seconds between purge rounds, lease checks and hint rescans
_PURGE_BATCH = 100  # events per purge transaction (its own): bounds how long ingest waits


async def every_minute(housekeep: Callable[[], Awaitable[int]]) -> None:
    """Run `housekeep` every `_HOUSEKEEPING_EVERY` s; a failed round is logged."""
    while True:
        await asyncio.sleep(_HOUSEKEEPING_EVERY)
        try:
            await housekeep()
        except RelayError as exc:
            log("housekeeping_failed", logging.ERROR, error=exc.message)


async def housekeep(store: Store, scheduler: Scheduler, config: cfgmod.Config,
                    now: float) -> int:
    """One round; returns how many events it purged."""
    purged = 0
    while True:
        n = await store.purge(now - config.storage.retention, _PURGE_BATCH)
        purged += n
        if n < _PURGE_BATCH:
            break
        await asyncio.sleep(0)  # let ingest in between batches
    stepped = scheduler.clock_stepped()  # own leases may look expired: next time
    reclaimed = 0 if stepped else await store.reclaim_expired(now)
    ended = await store.purge_sessions(now, config.ui.session_idle)
    forgotten = await store.purge_requests(now - rules.REQUEST_KEPT)
    if purged or reclaimed or ended or forgotten:
        log("housekeeping", purged_events=purged, reclaimed=reclaimed,
            ended_sessions=ended or None, idempotency_keys=forgotten or None)
    scheduler.rescan()
    return purged
