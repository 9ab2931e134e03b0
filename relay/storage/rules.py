"""The storage rules both backends apply, each decided once as a pure function.

SQLite runs its operations on a writer thread, PostgreSQL as coroutines, so the two cannot
share code that touches the database; they share these decisions instead. A backend reads
what a rule needs, asks the rule, and writes what it decided, with its own named SQL (as
relay.storage.idempotency does for ingest). A RelayError a rule returns refuses that one
call; the store stays healthy, since nothing was wrong with the database.
"""

from __future__ import annotations

from relay.errors import Conflict


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
