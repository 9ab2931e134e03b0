"""The idempotency decision of ingest, one pure function both backends apply.

A backend looks up the events already stored under the batches' keys (`keys`), hands
them to `decide` with the batches, inserts the fresh events it returns and answers each
batch with its result, all in one transaction. A repeated key answers the original event
(a duplicate), within one batch and across the batches of one transaction too; a key
repeated with different content (another digest) refuses its whole batch with Conflict,
and the batches beside it go on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from relay.errors import Conflict
from relay.types import Ingested, NewEvent

Key = tuple[str, str]  # (tenant, idempotency key)


@dataclass(frozen=True, slots=True)
class Prior:
    """An event stored under an idempotency key: what a repeat is answered with."""

    id: str
    type: str
    created_at: float
    digest: str
    n: int  # its deliveries


@dataclass(frozen=True, slots=True)
class Decision:
    results: list[list[Ingested] | Conflict]  # per batch, in order
    fresh: list[NewEvent]  # the events to insert, in order: the accepted batches' new ones


def keys(batches: Sequence[Sequence[NewEvent]]) -> list[Key]:
    """The keys to look up, each once, sorted (a stable lock order on PostgreSQL)."""
    return sorted({(e.tenant, e.idem_key) for b in batches for e in b if e.idem_key})


def keyless(events: Sequence[NewEvent]) -> bool:
    """Whether an ingest has no key to look up first: then both stores write it with one
    statement, merged with others like it, outside a transaction of their own."""
    return not keys([events])


def decide(batches: Sequence[Sequence[NewEvent]], stored: dict[Key, Prior]) -> Decision:
    """Per batch its answers or its Conflict, and the events to insert, given the events
    already `stored` under the batches' keys (not changed)."""
    known = dict(stored)
    results: list[list[Ingested] | Conflict] = []
    fresh: list[NewEvent] = []
    for batch in batches:
        out: list[Ingested] = []
        local: dict[Key, Prior] = {}
        new: list[NewEvent] = []
        error: Conflict | None = None
        for ev in batch:
            if ev.idem_key:
                key = (ev.tenant, ev.idem_key)
                prior = local.get(key) or known.get(key)
                if prior is not None:
                    if prior.digest != ev.digest:
                        error = Conflict(
                            f"idempotency key {ev.idem_key!r} was already used for event "
                            f"{prior.id} with different content"
                        )
                        break
                    out.append(Ingested(prior.id, prior.type, prior.created_at, prior.n, True))
                    continue
                local[key] = Prior(ev.id, ev.type, ev.created_at, ev.digest, len(ev.deliveries))
            new.append(ev)
            out.append(Ingested(ev.id, ev.type, ev.created_at, len(ev.deliveries), False))
        if error is not None:
            results.append(error)
            continue
        known.update(local)
        fresh.extend(new)
        results.append(out)
    return Decision(results, fresh)
