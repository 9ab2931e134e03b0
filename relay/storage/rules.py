"""The storage rules both backends apply, each decided once as a pure function.

SQLite runs its operations on a writer thread, PostgreSQL as coroutines, so the two cannot
share code that touches the database; they share these decisions instead. A backend reads
what a rule needs, asks the rule, and writes what it decided, with its own named SQL (as
relay.storage.idempotency does for ingest). A RelayError a rule returns refuses that one
call; the store stays healthy, since nothing was wrong with the database.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from relay.delivery import health
from relay.errors import Conflict, NotFound, TooManyRequests
from relay.types import (
    FINISHED,
    ConfigEndpoint,
    EndpointRow,
    State,
    StoredAnswer,
    not_cancellable,
)


def endpoint_id_free(endpoint_id: str, taken: bool) -> Conflict | None:
    """Whether a new API endpoint may take `endpoint_id`: not if any endpoint ever had it
    (`taken`, deleted ones too: the id names its deliveries' history)."""
    return Conflict(f"endpoint id {endpoint_id!r} is already used") if taken else None


def uid_free(uid: str, holder: str | None) -> Conflict | None:
    """Whether an endpoint may take `uid`, given the live endpoint of its tenant that has
    it (`holder`, None: none, or the endpoint itself)."""
    if holder is None:
        return None
    return Conflict(f"uid {uid!r} is already used by webhook {holder!r} in this tenant")


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


def within_max_webhooks(tenant: str, count: int, limit: int | None) -> TooManyRequests | None:
    """Whether `tenant`, with `count` live API endpoints, may create one more under its
    max_webhooks `limit` (None: no limit; the count is then not read)."""
    if limit is None or count < limit:
        return None
    return TooManyRequests(
        f"tenant {tenant!r} already has {count} webhooks, its max_webhooks; delete one first")


# The endpoint columns update_endpoint may set (updated_at is set by every update).
UPDATABLE = frozenset({"name", "spec", "is_active", "is_paused", "disable_reason",
                       "failing_since", "consecutive_failures", "uid", "metadata"})


def endpoint_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    """The column values an update writes, in the order given; ValueError for a column
    not UPDATABLE (a caller's mistake, not a request's)."""
    unknown = set(changes) - UPDATABLE
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    return {k: v.to_json() if k == "spec" else json.dumps(v) if k == "metadata" else v
            for k, v in changes.items()}


def unclaimed_state(endpoint: EndpointRow | None) -> State:
    """Where a claimed delivery that was never sent goes back: `pending`, or `held` while
    its endpoint (None: deleted) does not accept."""
    return health.waiting_state(endpoint is not None and health.accepting(endpoint))


def blocks(head_state: str, head_attempts: int) -> bool:
    """Whether an ordered endpoint's head (its lowest-id pending or delivering delivery)
    holds the others back for a failure: it has failed at least once (attempts counts
    the one in flight while delivering)."""
    return head_attempts > (1 if head_state == "delivering" else 0)


@dataclass(frozen=True, slots=True)
class Rotation:
    """An endpoint's secrets after a rotation (the endpoints columns of these names)."""

    secret: str
    prev_secret: str | None
    prev_secret_until: float | None


def rotation(current: str, new: str, until: float | None) -> Rotation:
    """Rotate `current` to `new`: the old secret keeps signing beside the new one until
    `until` (the grace), or stops at once (None)."""
    return Rotation(new, None if until is None else current, until)


@dataclass(frozen=True, slots=True)
class StoredConfig:
    """What config sync reads of an endpoint stored under a wanted or config id."""

    source: str
    tenant: str
    spec: str  # as stored (EndpointSpec.to_json)
    secret: str
    deleted: bool


@dataclass(frozen=True, slots=True)
class SyncPlan:
    """How to make the stored config endpoints match the file."""

    add: list[ConfigEndpoint]  # not stored yet: inserted (a secret generated if none)
    update: list[ConfigEndpoint]  # stored but changed, or deleted: written again
    remove: list[str]  # stored, live, and no longer in the file: deleted

    @property
    def changed(self) -> bool:
        return bool(self.add or self.update or self.remove)


def config_sync(endpoints: list[ConfigEndpoint],
                stored: Mapping[str, StoredConfig]) -> SyncPlan | Conflict:
    """The plan that makes the config endpoints in the store those of `endpoints`, given
    the endpoints `stored` under their ids and every config one; Conflict (nothing
    written) when an API endpoint has one of the ids. An endpoint whose tenant, spec and
    secret (None: keep the stored one) are unchanged is left alone."""
    add: list[ConfigEndpoint] = []
    update: list[ConfigEndpoint] = []
    for ep in endpoints:
        prior = stored.get(ep.id)
        clash = config_id_free(ep.id, None if prior is None else prior.source)
        if clash is not None:
            return clash
        if prior is None:
            add.append(ep)
        elif (prior.spec, prior.tenant, prior.deleted) != (ep.spec.to_json(), ep.tenant,
                                                           False) or (
                ep.secret is not None and ep.secret != prior.secret):
            update.append(ep)
    wanted = {ep.id for ep in endpoints}
    remove = sorted(eid for eid, prior in stored.items()
                    if eid not in wanted and not prior.deleted)
    return SyncPlan(add, update, remove)


Condition = tuple[str, Any]  # SQL with one `?` for its value; applies when that is not None


def endpoint_page(tenant: str | None, after: str | None) -> list[Condition]:
    """Live endpoints (of `tenant`) after the endpoint `after` in creation order."""
    return [("tenant = ?", tenant),
            ("(created_at, id) > (SELECT created_at, id FROM endpoints WHERE id = ?)", after)]


def delivery_page(endpoint_id: str, state: State | None, before: int | None
                  ) -> list[Condition]:
    """An endpoint's deliveries (in `state`) below the id `before`, newest first."""
    return [("endpoint_id = ?", endpoint_id), ("state = ?", state), ("id < ?", before)]


@dataclass(frozen=True, slots=True)
class EventPage:
    """How to read a page of a tenant's events: its conditions and its order."""

    conditions: list[Condition]
    timed: bool  # bounded in time: ordered by (created_at, seq), not by seq alone

    @property
    def order(self) -> str:
        return "created_at DESC, seq DESC" if self.timed else "seq DESC"


def event_page(tenant: str, type: str | None, before: str | None, since: float | None,
               until: float | None) -> EventPage:
    """A tenant's events (of `type`), newest first, after the event `before` in that
    order; with `since` / `until`, only those accepted in [since, until), and then the
    order is by acceptance time, so `before` compares (created_at, seq)."""
    if since is None and until is None:
        return EventPage([
            ("tenant = ?", tenant), ("type = ?", type),
            ("seq < (SELECT seq FROM events WHERE id = ?)", before),
        ], timed=False)
    return EventPage([
        ("tenant = ?", tenant), ("type = ?", type), ("created_at >= ?", since),
        ("created_at < ?", until),
        ("(created_at, seq) < (SELECT created_at, seq FROM events WHERE id = ?)", before),
    ], timed=True)


def attempt_page(endpoint_id: str | None, event_id: str | None, before: int | None
                 ) -> list[Condition]:
    """Attempts (`a`) of the deliveries (`d`) to an endpoint and/or of an event, after the
    attempt `before` in the order newest delivery first, then its latest attempt first:
    (d.id, a.id) descending, read along deliveries_endpoint or deliveries_event."""
    return [("d.endpoint_id = ?", endpoint_id), ("d.event_id = ?", event_id),
            ("(d.id, a.id) < (SELECT delivery_id, id FROM attempts WHERE id = ?)", before)]


REQUEST_KEPT = 12 * 3600.0  # seconds an answer is given again to its key (Svix's TTL)
# A request still unanswered this long after it began was lost (a crash, a timeout): the
# key is free again. Longer than any request relay answers (they wait on the database,
# at most [storage] timeout, never on a receiver).
REQUEST_ABANDONED = 120.0


def answer_again(stored: StoredAnswer | None, digest: str,
                 now: float) -> StoredAnswer | Conflict | None:
    """What a request of `digest` gets under an idempotency key, given what is `stored`
    under it: None, run it (the key is free, or what it holds expired or was abandoned);
    the stored answer, given again (the same request, answered); or Conflict (another
    request used the key, or the same one is still being answered)."""
    if stored is None or stored.created_at <= now - REQUEST_KEPT or (
            stored.status is None and stored.created_at <= now - REQUEST_ABANDONED):
        return None
    if stored.digest != digest:
        return Conflict("this idempotency-key was used for another request (another "
                        "method, path, query or body): send a new key for a new request")
    if stored.status is None:
        return Conflict("a request with this idempotency-key is still being answered; "
                        "retry in a moment")
    return stored
