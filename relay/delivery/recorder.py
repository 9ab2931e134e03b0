"""Recording attempts: each outcome is committed (attempt row + next state) before its
worker frees its slot, in batches: one store call (one transaction) for all outcomes that
arrived while the previous batch was being written, started as soon as there is one (no
timer: their workers hold their slots until this commit)."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Container
from dataclasses import dataclass
from typing import Any

from relay.delivery.sender import Outcome
from relay.errors import RelayError
from relay.ids import delivery_ref
from relay.logs import log, log_lines
from relay.storage.base import Queue
from relay.types import AttemptResult, Recorded, Reporting


def outcome_name(result: AttemptResult) -> str:
    return "retry" if result.state == "pending" else result.state


@dataclass(frozen=True, slots=True)
class Finished:
    """An attempt that is over, waiting to be recorded; `committed` is resolved once the
    recorder has written it (or given up on it): its worker holds the slot until then."""

    result: AttemptResult
    event_id: str
    outcome: Outcome
    now: float
    committed: asyncio.Future[None]


class Recorder:
    """Writes outcomes in batches; tells the scheduler when a batch is `settled` (written
    or given up on: slots and leases go) and, once `committed`, what the store decided
    (endpoints due again, endpoints disabled)."""

    def __init__(
        self,
        store: Queue,
        *,
        disable_after: Callable[[], float],
        reporting: Callable[[], Reporting] | None,
        settled: Callable[[list[Finished]], None],
        committed: Callable[[list[Finished], Recorded], None],
    ) -> None:
        self._store = store
        self._disable_after = disable_after
        self._reporting = reporting
        self._settled = settled
        self._committed = committed
        # Outcomes waiting to be recorded, and those being written now.
        self._outcomes: list[Finished] = []
        self._recording: list[Finished] = []
        self._ready = asyncio.Event()
        self._closing = False
        self.task: asyncio.Task[None] | None = None

    def start(self) -> asyncio.Task[None]:
        self.task = asyncio.create_task(self._loop(), name="relay-recorder")
        return self.task

    async def close(self) -> None:
        """Write what is left, then end; no attempt may be running any more."""
        if self.task is not None:
            self._closing = True  # nothing more will arrive
            self._ready.set()
            await self.task

    @property
    def pending(self) -> int:
        """Outcomes not yet committed."""
        return len(self._outcomes) + len(self._recording)

    def waiting(self, endpoint_ids: Container[str]) -> list[int]:
        """Deliveries of these endpoints whose outcome waits for its commit."""
        return [f.result.delivery_id for f in itertools.chain(self._outcomes, self._recording)
                if f.result.endpoint_id in endpoint_ids]

    async def commit(self, result: AttemptResult, event_id: str, outcome: Outcome,
                     now: float) -> None:
        """Hand an outcome over and wait until it is committed (or given up on). A worker
        cancelled at shutdown stops waiting; the recorder still writes it."""
        committed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._outcomes.append(Finished(result, event_id, outcome, now, committed))
        self._ready.set()
        await asyncio.shield(committed)

    async def _loop(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            batch, self._outcomes = self._outcomes, []
            if not batch:
                if self._closing:
                    return
                continue
            self._recording = batch
            try:
                recorded: Recorded = await self._store.record(
                    [f.result for f in batch], max(f.now for f in batch), self._disable_after(),
                    None if self._reporting is None else self._reporting(),
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
            self._committed(batch, recorded)
            # Logged on the loop's next turn: the commit of what arrived meanwhile (its
            # workers' slots wait for it) is on its way first.
            asyncio.get_running_loop().call_soon(self._log, batch, recorded)
            self._ready.set()  # look again: more may have arrived meanwhile

    def _log(self, batch: list[Finished], recorded: Recorded) -> None:
        """The log lines of a committed batch: an attempt line each, its operational events."""
        log_lines("attempt", [self._line(finished) for finished in batch])
        for notice in recorded.notices:
            log("ops_event", type=notice.type, endpoint=notice.endpoint_id)

    def _line(self, finished: Finished) -> tuple[int, dict[str, Any]]:
        """The log line of a recorded attempt."""
        result, outcome = finished.result, finished.outcome
        return logging.INFO if outcome.ok else logging.WARNING, {
            "delivery": delivery_ref(result.delivery_id), "event": finished.event_id,
            "endpoint": result.endpoint_id, "attempt": result.attempt, "status": outcome.status,
            "duration_ms": round(outcome.duration_ms, 1), "outcome": outcome_name(result),
            "retry_in": None if result.next_at is None
            else f"{result.next_at - finished.now:.1f}s",
            "error": outcome.error,
        }
