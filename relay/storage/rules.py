"""The storage rules both backends apply, each decided once as a pure function.

SQLite runs its operations on a writer thread, PostgreSQL as coroutines, so the two cannot
share code that touches the database; they share these decisions instead. A backend reads
what a rule needs, asks the rule, and writes what it decided, with its own named SQL (as
relay.storage.idempotency does for ingest). A RelayError a rule returns refuses that one
call; the store stays healthy, since nothing was wrong with the database.
"""

from __future__ import annotations

from relay.errors import Conflict, NotFound
from relay.storage.base import FINISHED, not_cancellable


def endpoint_id_free(endpoint_id: str, taken: bool) -> Conflict | None:
    """Whether a new API endpoint may take `endpoint_id`: not if any endpoint ever had it
    (`taken`, deleted ones too: the id names its deliveries' history)."""
    return Conflict(f"endpoint id {endpoint_id!r} is already used") if taken else None


def config_id_free(endpoint_id: str, source: str | None) -> Conflict | None:
    """Whether a config-file endpoint may have `endpoint_id`, given the `source` of the
    endpoint stored under it (None: none is): not when an API endpoint has it."""
    if source is None or source == "config":
        return None
    return Conflict(f"endpoint id {endpoint_id!r} is already used by an API endpoint")


def no_endpoint(endpoint_id: str) -> NotFound:
    """The answer for an endpoint id that no live endpoint has."""
    return NotFound(f"no webhook {endpoint_id!r}")


def retry_refused(delivery_id: int, state: str | None) -> NotFound | Conflict:
    """Why a delivery was not retried, given its `state` (None: no delivery has the id):
    only a FINISHED one goes out again."""
    if state is None:
        return NotFound(f"no delivery dlv_{delivery_id}")
    return Conflict(f"delivery dlv_{delivery_id} is {state}; only finished deliveries "
                    f"({', '.join(FINISHED)}) can be retried")


def cancel_refused(delivery_id: int, state: str | None) -> NotFound | Conflict:
    """Why a delivery was not cancelled, given its `state` (None: no delivery has the id):
    only an unfinished one can be stopped."""
    if state is None:
        return NotFound(f"no delivery dlv_{delivery_id}")
    return not_cancellable(delivery_id, state)
