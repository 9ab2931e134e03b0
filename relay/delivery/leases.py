"""The leases this process holds on what it claimed: renewed while held, so a slow
receiver never has its delivery taken over by another process, and given back when a
claim will not be sent."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from relay.errors import RelayError
from relay.logs import log
from relay.storage.base import Queue

LEASE_MARGIN = 10.0  # seconds beyond the timeout before a lease counts as expired
RENEW_EVERY = 2.0  # seconds between renewals of the leases this process holds


class Leases:
    """Claimed here and not yet recorded (`held`: delivery id -> lease length): waiting
    in a lane's `ready`, being sent, or waiting for its outcome's commit."""

    def __init__(self, store: Queue, clock: Callable[[], float]) -> None:
        self._store = store
        self._clock = clock
        self.held: dict[int, float] = {}

    def take(self, delivery_ids: Iterable[int], lease: float) -> None:
        self.held.update((delivery_id, lease) for delivery_id in delivery_ids)

    def drop(self, delivery_id: int) -> None:
        """Recorded, gone with its endpoint, or left for its lease to expire."""
        self.held.pop(delivery_id, None)

    async def unclaim(self, ids: list[int]) -> None:
        """Give unsent claims back to the queue."""
        for delivery_id in ids:
            self.held.pop(delivery_id, None)
        if ids:
            try:
                await self._store.unclaim(ids, self._clock())
            except RelayError as exc:  # their leases expire and they are retried
                log("unclaim_failed", logging.ERROR, deliveries=len(ids), error=exc.message)

    async def renew_loop(self) -> None:
        """Extend the leases held, every `RENEW_EVERY` s."""
        while True:
            await asyncio.sleep(RENEW_EVERY)
            by_lease: dict[float, list[int]] = {}
            for delivery_id, lease in self.held.items():
                by_lease.setdefault(lease, []).append(delivery_id)
            now = self._clock()
            for lease, ids in by_lease.items():
                try:
                    await self._store.renew(ids, now + lease)
                except RelayError as exc:  # tried again in RENEW_EVERY
                    log("renew_failed", logging.ERROR, deliveries=len(ids), error=exc.message)
