"""The PostgreSQL store's write operations and their SQL, by name.

Each operation takes the writer's connection and a list of arguments (one per queued
call) and returns one result per argument, inside the writer's transaction (a RelayError
result refuses that call alone). Rows go in and out as arrays (`unnest`), one statement
per kind, not one per row.

Wake-ups: operations that make work due send `NOTIFY relay_due` ("<sender> <endpoint>
<due>", the sender being the session's application_name, so a process skips its own),
which PostgreSQL delivers to every listening process at commit; endpoint changes bump
`endpoint_changes.version` and send `NOTIFY relay_endpoints`, tenant and key changes
`directory_changes.version` and `NOTIFY relay_directory`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import orjson

from relay.errors import Conflict
from relay.storage import directory, event_types, idempotency, outcomes, rules
from relay.storage.base import (
    DELIVERY_COLS,
    ENDPOINT_COLS,
    INTERRUPTED,
    SESSION_COLS,
    Limits,
    endpoint_row,
    sql_in,
)
from relay.storage.postgres.connection import Connection
from relay.types import (
    CANCELLABLE,
    FINISHED,
    UNFINISHED,
    ApiKeyRow,
    Claimed,
    ClockShift,
    ConfigEndpoint,
    DeliveryRow,
    EndpointRow,
    EventTypeRow,
    NewEndpoint,
    NewEvent,
    Recorded,
    Reporting,
    SessionRow,
    StoredAnswer,
    TenantRemoved,
    TenantRow,
)

DUE_CHANNEL = "relay_due"
ENDPOINTS_CHANNEL = "relay_endpoints"
DIRECTORY_CHANNEL = "relay_directory"



def _notify(endpoint: str, due: str) -> str:
    """The SQL expression that sends one wake-up, of these SQL values."""
    return (f"pg_notify('{DUE_CHANNEL}', current_setting('application_name') || ' ' || "
            f"{endpoint} || ' ' || {due}::text)")


_NOTIFY_DUE = f"SELECT {_notify('e', 't')} FROM unnest($1::text[], $2::float8[]) AS u(e, t)"
_BUMP_ENDPOINTS = (
    "UPDATE endpoint_changes SET version = version + 1; "
    f"NOTIFY {ENDPOINTS_CHANNEL}"
)


async def notify_due(con: Connection, due: dict[str, float]) -> None:
    """Tell every process (this one too) that these endpoints have work due then."""
    if due:
        await con.execute(_NOTIFY_DUE, list(due), list(due.values()))


async def _endpoints_changed(con: Connection) -> None:
    await con.execute(_BUMP_ENDPOINTS)


def _earliest(due: dict[str, float], endpoint_id: str, at: float) -> None:
    if endpoint_id not in due or at < due[endpoint_id]:
        due[endpoint_id] = at


# --- ingest ----------------------------------------------------------------------------

_KNOWN_KEYS = (
    "SELECT e.tenant, e.idem_key, e.id, e.type, e.created_at, e.digest, e.n_deliveries "
    "FROM events e JOIN unnest($1::text[], $2::text[]) AS k(tenant, idem_key) "
    "ON e.tenant = k.tenant AND e.idem_key = k.idem_key"
)
# One statement (one round trip): the events, their deliveries, and a wake-up per
# endpoint with pending work. A delivery's event is inserted by the sibling CTE: the
# statement's own rows are visible to the checks that run at its end.
_INSERT = (
    "WITH ev AS (INSERT INTO events (id, tenant, type, idem_key, digest, created_at, "
    "n_deliveries, payload, channels) SELECT * FROM unnest($1::text[], $2::text[], "
    "$3::text[], $4::text[], $5::text[], $6::float8[], $7::int[], $8::bytea[], $15::text[])), "
    "dl AS (INSERT INTO deliveries (event_id, endpoint_id, state, next_at, created_at, "
    "updated_at) SELECT e, p, s, t, t, t FROM unnest($9::text[], $10::text[], $11::text[], "
    "$12::float8[]) AS u(e, p, s, t)) "
    f"SELECT {_notify('e', 't')} FROM unnest($13::text[], $14::float8[]) AS u(e, t)"
)


async def ingest(con: Connection, batches: list[list[NewEvent]]) -> list[Any]:
    """Events and their deliveries; a repeated idempotency key answers the original
    (relay.storage.idempotency decides). Two processes inserting one key at once: the
    second fails on `events_idem`, is re-run alone, and then finds the first's event."""
    keys = idempotency.keys(batches)
    stored: dict[idempotency.Key, idempotency.Prior] = {}
    if keys:
        for row in await con.fetch(_KNOWN_KEYS, [k[0] for k in keys], [k[1] for k in keys]):
            stored[(row[0], row[1])] = idempotency.Prior(row[2], row[3], row[4], row[5], row[6])
    decision = idempotency.decide(batches, stored)
    events = decision.fresh
    if events:
        rows = [(e.id, p, st, e.created_at) for e in events for p, st in e.deliveries]
        due: dict[str, float] = {}
        for _, endpoint_id, state, at in rows:
            if state == "pending":
                _earliest(due, endpoint_id, at)
        await con.execute(
            _INSERT, [e.id for e in events], [e.tenant for e in events],
            [e.type for e in events], [e.idem_key for e in events],
            [e.digest for e in events], [e.created_at for e in events],
            [len(e.deliveries) for e in events], [e.payload for e in events],
            [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
            [r[3] for r in rows], list(due), list(due.values()),
            [None if e.channels is None else json.dumps(e.channels) for e in events],
        )
    return decision.results


# --- claim -----------------------------------------------------------------------------

# One statement (migrations/postgres/003_claim_function.sql says what it does): the
# endpoint's advisory lock, its live leases, its rate bucket and the SKIP LOCKED claim
# in one round trip, committed on its own.
_CLAIM = (
    "SELECT c_endpoint, c_id, c_event, c_attempt, c_payload, c_due FROM relay_claim("
    "$1::text[], $2::int[], $3::int[], $4::float8[], $5::bool[], $6::bigint[], $7, $8)"
)


@dataclass(frozen=True, slots=True)
class ClaimArgs:
    wanted: dict[str, int]
    now: float
    lease_until: float
    limits: Limits
    ordered: frozenset[str] = frozenset()
    finished: Collection[int] = ()


async def claim(con: Connection, args: list[ClaimArgs]) -> list[Any]:
    """Up to `wanted` due deliveries per endpoint, oldest first, marked `delivering` under
    a lease. With a limit for an endpoint, its live leases in the whole cluster (less this
    process's `finished` ones) stay within its concurrency and its shared bucket within
    its rate (held back by the bucket, an endpoint is due again when its next token is).
    An ordered endpoint gives its head alone, when pending and due, under the same lock,
    so across processes only one ever holds it."""
    out: list[Any] = []
    for a in args:
        ids = sorted(a.wanted)  # the order the function takes the locks in: no deadlock
        caps = [a.limits.get(e) for e in ids]
        rows = await con.fetch(
            _CLAIM, ids, [a.wanted[e] for e in ids],
            [None if cap is None else cap[0] for cap in caps],
            [cap[1] if cap is not None and cap[1] else None for cap in caps],
            [e in a.ordered for e in ids], list(a.finished), a.now, a.lease_until,
        )
        claimed = sorted((Claimed(r[1], r[2], r[0], r[3], r[4]) for r in rows
                          if r[1] is not None), key=lambda c: c.id)
        next_due = {r[0]: None if r[5] is None else float(r[5]) for r in rows if r[1] is None}
        out.append((claimed, next_due))
    return out


_RENEW = (
    "UPDATE deliveries SET lease_until = $2 WHERE id = ANY($1::bigint[]) "
    "AND state = 'delivering' AND lease_until < $2"
)


async def renew(con: Connection, args: list[tuple[list[int], float]]) -> list[Any]:
    out = []
    for ids, lease_until in args:
        status = await con.execute(_RENEW, ids, lease_until)
        out.append(int(status.split()[-1]))
    return out


# --- outcomes --------------------------------------------------------------------------

# One statement: the attempt rows, the deliveries' next states, and the endpoints' health
# rows as they were, locked in id order (no deadlock between processes recording at
# once), NO KEY UPDATE so that ingest's foreign-key checks (KEY SHARE) on these endpoints
# never wait for it. (Data-modifying CTEs run to completion unread.)
_RECORD = (
    "WITH a AS (INSERT INTO attempts (delivery_id, n, started_at, duration_ms, "
    "request_headers, status, response_headers, response_body, error) SELECT * FROM unnest("
    "$1::bigint[], $2::int[], $3::float8[], $4::float8[], $5::text[], $6::int[], $7::text[], "
    "$8::bytea[], $9::text[])), "
    "o AS (UPDATE deliveries d SET state = u.state, next_at = COALESCE(u.next_at, d.next_at), "
    "lease_until = NULL, updated_at = $10, last_status = u.status, last_error = u.error "
    "FROM unnest($1::bigint[], $11::text[], $12::float8[], $6::int[], $9::text[]) "
    "AS u(id, state, next_at, status, error) WHERE d.id = u.id AND d.state = 'delivering') "
    f"SELECT {outcomes.HEALTH_COLS} FROM endpoints "
    "WHERE id = ANY($13::text[]) ORDER BY id FOR NO KEY UPDATE"
)
# The health these attempts leave, and a wake-up per endpoint whose slots they freed.
_SET_HEALTH = (
    "WITH h AS (UPDATE endpoints e SET is_active = u.active, disable_reason = u.reason, "
    "consecutive_failures = u.failures, failing_since = u.since, last_delivery_at = u.last_at, "
    "last_delivery_status = u.status FROM unnest($1::text[], $2::bool[], $3::text[], "
    "$4::int[], $5::float8[], $6::float8[], $7::int[]) "
    "AS u(id, active, reason, failures, since, last_at, status) WHERE e.id = u.id) "
    f"SELECT {_notify('f', '$9::float8')} FROM unnest($8::text[]) AS n(f)"
)
_DISABLED_AT = "UPDATE endpoints SET updated_at = $2 WHERE id = $1"
_HOLD_PENDING = (
    "UPDATE deliveries SET state = 'held', updated_at = $2 "
    "WHERE endpoint_id = $1 AND state = 'pending'"
)


async def record(con: Connection, args: list[outcomes.RecordCall]) -> list[Any]:
    """Attempt rows and next states; endpoint health; disable on 410 or `disable_after`
    (holding the endpoint's pending deliveries); with `reporting`, the operational events
    these outcomes cause, in the same transaction (as on SQLite)."""
    results, now, disable_after, reporting = outcomes.merged(args)
    if not results:
        return [Recorded({}) for _ in args]
    attempted = outcomes.by_endpoint(results)
    rows = await con.fetch(
        _RECORD, [r.delivery_id for r in results], [r.attempt for r in results],
        [r.started_at for r in results], [r.duration_ms for r in results],
        [orjson.dumps(r.request_headers).decode() for r in results],
        [r.status for r in results],
        [orjson.dumps(r.response_headers).decode() for r in results],
        [r.response_body for r in results], [r.error for r in results], now,
        [r.state for r in results], [r.next_at for r in results], list(attempted),
    )
    # Endpoint health: decided by relay.storage.outcomes (as on SQLite), applied here.
    folded = outcomes.fold(rows, attempted, now, disable_after)
    after = folded.health
    # Slots freed (their leases end with this commit): the other processes may claim
    # for these endpoints now; a retry's own due time is found by that claim.
    await con.execute(
        _SET_HEALTH, [i for i, _ in after], [h.is_active for _, h in after],
        [h.disable_reason for _, h in after], [h.consecutive_failures for _, h in after],
        [h.failing_since for _, h in after], [h.last_delivery_at for _, h in after],
        [h.last_delivery_status for _, h in after], list(attempted), now,
    )
    for eid in sorted(folded.disabled):
        await con.execute(_DISABLED_AT, eid, now)
        await con.execute(_HOLD_PENDING, eid, now)
    if folded.disabled:
        await _endpoints_changed(con)
    recorded = Recorded(folded.disabled)
    if reporting is not None:
        recorded = await _emit(con, reporting, attempted, folded, now)
    return [recorded for _ in args]


async def _emit(con: Connection, reporting: Reporting, attempted: outcomes.Attempted,
                folded: outcomes.Fold, now: float) -> Recorded:
    """The operational events these outcomes cause, stored in the record transaction:
    a crash loses the outcome and its events together (the attempt is then repeated)."""
    wanted = outcomes.lookups(reporting, attempted, folded)
    rows = await con.fetch(
        "SELECT d.id, e.id, e.type FROM deliveries d JOIN events e ON e.id = d.event_id "
        "WHERE d.id = ANY($1::bigint[])", wanted) if wanted else []
    new, recorded = outcomes.reported(
        reporting, attempted, folded, {row[0]: (row[1], row[2]) for row in rows}, now)
    if new:
        await ingest(con, [new])
        await notify_due(con, dict.fromkeys(recorded.due, now))
    return recorded


_RECLAIM = (
    "WITH x AS (SELECT id FROM deliveries WHERE state = 'delivering' AND lease_until < $1 "
    "ORDER BY id FOR UPDATE SKIP LOCKED), "
    "a AS (INSERT INTO attempts (delivery_id, n, started_at, error) "
    "SELECT d.id, d.attempts, d.updated_at, $2 FROM deliveries d JOIN x ON d.id = x.id) "
    "UPDATE deliveries d SET state = 'pending', next_at = $1, lease_until = NULL, "
    "updated_at = $1, last_error = $2 FROM x WHERE d.id = x.id RETURNING d.endpoint_id"
)


async def reclaim(con: Connection, args: list[float]) -> list[Any]:
    """Deliveries whose lease ran out (their process died or lost the database) go back
    to pending, with an `interrupted` attempt; every process is woken for them."""
    out = []
    for now in args:
        rows = await con.fetch(_RECLAIM, now, INTERRUPTED)
        await notify_due(con, {r[0]: now for r in rows})
        out.append(len(rows))
    return out


_SHIFT_DUE = (
    "UPDATE deliveries SET next_at = greatest(next_at + $1, $2) "
    "WHERE state = 'pending' AND next_at > $3 RETURNING endpoint_id"
)
_SHIFT_LEASES = (
    "UPDATE deliveries SET lease_until = lease_until + $1 "
    "WHERE state = 'delivering' AND id = ANY($2::bigint[])"
)
_SHIFT_FAILING = (
    "UPDATE endpoints SET failing_since = least(failing_since + $1, $2) "
    "WHERE failing_since IS NOT NULL"
)


async def shift_times(con: Connection, args: list[ClockShift]) -> list[Any]:
    """Move stored times across a wall-clock step, as `ClockShift` says
    (relay.delivery.clocksteps decides; docs/scaling.md says what that means for the
    other processes); every process is woken for the deliveries moved."""
    out = []
    for shift in args:
        endpoint_ids: set[str] = set()
        if shift.due_after is not None:
            rows = await con.fetch(_SHIFT_DUE, shift.step, shift.now, shift.due_after)
            endpoint_ids = {r[0] for r in rows}
            out.append(len(rows))
        else:
            out.append(0)
        if shift.leases:
            await con.execute(_SHIFT_LEASES, shift.step, list(shift.leases))
        await con.execute(_SHIFT_FAILING, shift.step, shift.now)
        await notify_due(con, dict.fromkeys(sorted(endpoint_ids), shift.now))
    return out


_UNCLAIMED_ENDPOINTS = (
    "SELECT DISTINCT endpoint_id FROM deliveries WHERE state = 'delivering' "
    "AND id = ANY($1::bigint[])"
)
_LIVE_ENDPOINTS = (
    f"SELECT {ENDPOINT_COLS} FROM endpoints WHERE id = ANY($1::text[]) AND deleted_at IS NULL"
)
_UNCLAIM = (
    "UPDATE deliveries d SET state = u.state, attempts = d.attempts - 1, lease_until = NULL, "
    "updated_at = $2 FROM unnest($3::text[], $4::text[]) AS u(endpoint_id, state) "
    "WHERE d.endpoint_id = u.endpoint_id AND d.state = 'delivering' "
    "AND d.id = ANY($1::bigint[]) RETURNING d.endpoint_id, d.state"
)


async def unclaim(con: Connection, args: list[tuple[list[int], float]]) -> list[Any]:
    """Claimed deliveries never sent go back uncounted: `pending`, or `held` if their
    endpoint stopped accepting (health.accepting decides, as on SQLite); every process is
    woken for the pending ones."""
    out = []
    for ids, now in args:
        endpoint_ids = [r[0] for r in await con.fetch(_UNCLAIMED_ENDPOINTS, ids)]
        live = {row[0]: endpoint_row(row) for row in await con.fetch(_LIVE_ENDPOINTS, endpoint_ids)}
        states = [rules.unclaimed_state(live.get(e)) for e in endpoint_ids]
        rows = await con.fetch(_UNCLAIM, ids, now, endpoint_ids, states) if endpoint_ids else []
        await notify_due(con, {r[0]: now for r in rows if r[1] == "pending"})
        out.append(len(rows))
    return out


_RELEASE = (
    "UPDATE deliveries SET state = 'pending', next_at = $2, updated_at = $2 "
    "WHERE endpoint_id = $1 AND state = 'held'"
)


async def set_accepting(con: Connection, args: list[tuple[str, bool, float]]) -> list[Any]:
    out = []
    for endpoint_id, accepting, now in args:
        if accepting:
            status = await con.execute(_RELEASE, endpoint_id, now)
        else:
            status = await con.execute(_HOLD_PENDING, endpoint_id, now)
        count = int(status.split()[-1])
        if accepting and count:
            await notify_due(con, {endpoint_id: now})
        out.append(count)
    return out


# --- endpoints -------------------------------------------------------------------------

_SELECT_ENDPOINT = f"SELECT {ENDPOINT_COLS} FROM endpoints WHERE id = $1 AND deleted_at IS NULL"


async def _select_endpoint(con: Connection, endpoint_id: str) -> EndpointRow | None:
    row = await con.fetchrow(_SELECT_ENDPOINT, endpoint_id)
    return None if row is None else endpoint_row(row)


async def _remove_endpoint(con: Connection, endpoint_id: str, now: float) -> int:
    """Mark an endpoint deleted and cancel its unfinished deliveries (how many)."""
    await con.execute(
        "UPDATE endpoints SET deleted_at = $2, updated_at = $2 WHERE id = $1 "
        "AND deleted_at IS NULL", endpoint_id, now,
    )
    status = await con.execute(
        "UPDATE deliveries SET state = 'cancelled', lease_until = NULL, updated_at = $2 "
        f"WHERE endpoint_id = $1 AND state IN {sql_in(UNFINISHED)}",
        endpoint_id, now,
    )
    return int(status.split()[-1])


# Processes starting together sync their config endpoints one after another.
_SYNC_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('relay.sync_config', 0))"


async def sync_config(
    con: Connection, args: list[tuple[list[ConfigEndpoint], float, Callable[[], str]]]
) -> list[Any]:
    """Make the config endpoints match the file. Several processes share the table, so a
    process whose file lacks an endpoint removes it: the files must agree (docs/scaling.md)."""
    out = []
    await con.execute(_SYNC_LOCK)
    for endpoints, now, new_secret in args:
        rows = await con.fetch(
            "SELECT id, source, tenant, spec, secret, deleted_at IS NOT NULL FROM endpoints "
            "WHERE source = 'config' OR id = ANY($1::text[]) ORDER BY id FOR UPDATE",
            [e.id for e in endpoints],
        )
        plan = rules.config_sync(endpoints, {
            r[0]: rules.StoredConfig(r[1], r[2], r[3], r[4], r[5]) for r in rows})
        if isinstance(plan, Conflict):
            raise plan
        for ep in plan.add:
            await con.execute(
                "INSERT INTO endpoints (id, tenant, source, name, spec, secret, created_at, "
                "updated_at) VALUES ($1, $2, 'config', $1, $3, $4, $5, $5)",
                ep.id, ep.tenant, ep.spec.to_json(), ep.secret or new_secret(), now,
            )
        for ep in plan.update:
            await con.execute(
                "UPDATE endpoints SET tenant = $2, name = $1, spec = $3, "
                "secret = COALESCE($4, secret), deleted_at = NULL, updated_at = $5 "
                "WHERE id = $1", ep.id, ep.tenant, ep.spec.to_json(), ep.secret, now,
            )
        for eid in plan.remove:
            await _remove_endpoint(con, eid, now)
        if plan.changed:
            await _endpoints_changed(con)
        rows = await con.fetch(
            f"SELECT {ENDPOINT_COLS} FROM endpoints WHERE deleted_at IS NULL "
            "ORDER BY created_at, id"
        )
        out.append([endpoint_row(r) for r in rows])
    return out


# max_webhooks across processes: creations for one tenant are serialised by this lock.
_TENANT_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('relay.tenant:' || $1, 0))"


async def create_endpoint(con: Connection,
                          args: list[tuple[NewEndpoint, int | None]]) -> list[Any]:
    out: list[Any] = []
    for ep, limit in args:
        if limit is not None:
            await con.execute(_TENANT_LOCK, ep.tenant)
            count = await con.fetchval(
                "SELECT count(*) FROM endpoints WHERE tenant = $1 AND source = 'api' "
                "AND deleted_at IS NULL", ep.tenant,
            )
            refused = rules.within_max_webhooks(ep.tenant, count, limit)
            if refused is not None:
                out.append(refused)
                continue
        taken = await con.fetchval("SELECT 1 FROM endpoints WHERE id = $1", ep.id)
        clash = rules.endpoint_id_free(ep.id, taken is not None) or (
            None if ep.uid is None else await _uid_clash(con, ep.tenant, ep.uid, ep.id))
        if clash is not None:
            out.append(clash)
            continue
        await con.execute(
            "INSERT INTO endpoints (id, tenant, source, name, spec, secret, created_at, "
            "updated_at, uid, metadata) VALUES ($1, $2, 'api', $3, $4, $5, $6, $6, $7, $8)",
            ep.id, ep.tenant, ep.name, ep.spec.to_json(), ep.secret,
            ep.created_at, ep.uid, json.dumps(ep.metadata),
        )
        out.append(await _select_endpoint(con, ep.id))
    if any(isinstance(r, EndpointRow) for r in out):
        await _endpoints_changed(con)
    return out


async def _uid_clash(con: Connection, tenant: str, uid: str, endpoint_id: str
                     ) -> Conflict | None:
    """rules.uid_free for `endpoint_id` taking `uid` in `tenant`. Two processes taking
    one uid at once: the second fails on `endpoints_uid`, is re-run alone (the writer),
    and then finds the first's endpoint here."""
    holder = await con.fetchval(
        "SELECT id FROM endpoints WHERE tenant = $1 AND uid = $2 AND deleted_at IS NULL "
        "AND id <> $3", tenant, uid, endpoint_id)
    return rules.uid_free(uid, holder)


async def update_endpoint(con: Connection,
                          args: list[tuple[str, dict[str, Any], float]]) -> list[Any]:
    out: list[Any] = []
    for endpoint_id, changes, now in args:
        row = await _select_endpoint(con, endpoint_id)
        if row is None:
            out.append(rules.no_endpoint(endpoint_id))
            continue
        if changes.get("uid") is not None and (
                clash := await _uid_clash(con, row.tenant, changes["uid"], endpoint_id)):
            out.append(clash)
            continue
        values = rules.endpoint_changes(changes)
        sets = "".join(f"{col} = ${n}, " for n, col in enumerate(values, 3))
        await con.execute(
            f"UPDATE endpoints SET {sets}updated_at = $2 WHERE id = $1 AND deleted_at IS NULL",
            endpoint_id, now, *values.values(),
        )
        out.append(await _select_endpoint(con, endpoint_id))
    await _endpoints_changed(con)
    return out


_LOCK_SECRET = "SELECT secret FROM endpoints WHERE id = $1 AND deleted_at IS NULL FOR UPDATE"
_ROTATE = (
    "UPDATE endpoints SET secret = $2, prev_secret = $3, prev_secret_until = $4, "
    f"updated_at = $5 WHERE id = $1 RETURNING {ENDPOINT_COLS}"
)


async def rotate_secret(con: Connection,
                        args: list[tuple[str, str, float | None, float]]) -> list[Any]:
    out: list[Any] = []
    for endpoint_id, secret, until, now in args:
        # Locked until commit: a concurrent rotation reads the secret this one sets.
        current = await con.fetchval(_LOCK_SECRET, endpoint_id)
        if current is None:
            out.append(rules.no_endpoint(endpoint_id))
            continue
        new = rules.rotation(current, secret, until)
        [row] = await con.fetch(
            _ROTATE, endpoint_id, new.secret, new.prev_secret, new.prev_secret_until, now)
        out.append(endpoint_row(row))
    await _endpoints_changed(con)
    return out


async def delete_endpoint(con: Connection, args: list[tuple[str, float]]) -> list[Any]:
    out: list[Any] = []
    for endpoint_id, now in args:
        if await _select_endpoint(con, endpoint_id) is None:
            out.append(rules.no_endpoint(endpoint_id))
        else:
            out.append(await _remove_endpoint(con, endpoint_id, now))
    await _endpoints_changed(con)
    return out


# --- operators' changes to deliveries --------------------------------------------------


async def retry_delivery(con: Connection, args: list[tuple[int, str, float]]) -> list[Any]:
    out: list[Any] = []
    for delivery_id, state, now in args:
        row = await con.fetchrow(
            "UPDATE deliveries SET state = $2, next_at = $3, updated_at = $3 WHERE id = $1 "
            f"AND state = ANY($4::text[]) RETURNING {DELIVERY_COLS}",
            delivery_id, state, now, list(FINISHED),
        )
        if row is not None:
            out.append(DeliveryRow(*row))
            if state == "pending":
                await notify_due(con, {row[2]: now})
            continue
        found = await con.fetchval("SELECT state FROM deliveries WHERE id = $1", delivery_id)
        out.append(rules.retry_refused(delivery_id, found))
    return out


async def cancel_delivery(con: Connection, args: list[tuple[int, float]]) -> list[Any]:
    out: list[Any] = []
    for delivery_id, now in args:
        row = await con.fetchrow(
            "UPDATE deliveries SET state = 'cancelled', lease_until = NULL, updated_at = $2 "
            f"WHERE id = $1 AND state = ANY($3::text[]) RETURNING {DELIVERY_COLS}",
            delivery_id, now, list(CANCELLABLE),
        )
        if row is not None:
            out.append(DeliveryRow(*row))
            continue
        found = await con.fetchval("SELECT state FROM deliveries WHERE id = $1", delivery_id)
        out.append(rules.cancel_refused(delivery_id, found))
    return out


async def recover_failed(con: Connection,
                         args: list[tuple[str, float, float, str, float]]) -> list[Any]:
    out = []
    for endpoint_id, since, until, state, now in args:
        status = await con.execute(
            "UPDATE deliveries SET state = $3, next_at = $4, updated_at = $4 "
            "WHERE endpoint_id = $1 AND state = 'failed' AND updated_at >= $2 "
            "AND updated_at < $5", endpoint_id, since, state, now, until,
        )
        count = int(status.split()[-1])
        if count and state == "pending":
            await notify_due(con, {endpoint_id: now})
        out.append(count)
    return out


async def add_deliveries(con: Connection,
                         args: list[tuple[str, list[tuple[str, str]], float]]) -> list[Any]:
    out = []
    for event_id, deliveries, now in args:
        rows = await con.fetch(
            "INSERT INTO deliveries (event_id, endpoint_id, state, next_at, created_at, "
            "updated_at, manual) SELECT $1, p, s, $2, $2, $2, TRUE "
            "FROM unnest($3::text[], $4::text[]) "
            f"WITH ORDINALITY AS u(p, s, o) ORDER BY o RETURNING {DELIVERY_COLS}",
            event_id, now, [d[0] for d in deliveries], [d[1] for d in deliveries],
        )
        out.append(sorted((DeliveryRow(*r) for r in rows), key=lambda d: d.id))
        await notify_due(con, {d[0]: now for d in deliveries if d[1] == "pending"})
    return out


_PURGE = (
    "WITH old AS (SELECT id FROM events WHERE created_at < $1 AND NOT EXISTS (SELECT 1 FROM "
    f"deliveries d WHERE d.event_id = events.id AND d.state IN {sql_in(UNFINISHED)}) "
    "ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED), "
    "dels AS (DELETE FROM deliveries WHERE event_id IN (SELECT id FROM old) RETURNING id), "
    "atts AS (DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM dels)) "
    "DELETE FROM events WHERE id IN (SELECT id FROM old)"
)


async def purge(con: Connection, args: list[tuple[float, int]]) -> list[Any]:
    out = []
    for before, limit in args:
        status = await con.execute(_PURGE, before, limit)
        out.append(int(status.split()[-1]))
    return out


async def secret_key(con: Connection, args: list[tuple[str, bytes, float]]) -> list[Any]:
    out = []
    for name, key, now in args:
        await con.execute(
            "INSERT INTO secret_keys (name, key, created_at) VALUES ($1, $2, $3) "
            "ON CONFLICT (name) DO NOTHING", name, key, now)
        out.append(bytes(await con.fetchval(
            "SELECT key FROM secret_keys WHERE name = $1", name)))
    return out


async def add_session(con: Connection, args: list[tuple[SessionRow]]) -> list[Any]:
    await con.executemany(
        f"INSERT INTO sessions ({SESSION_COLS}) VALUES ($1, $2, $3, $4, $5, $6)",
        [(r.id, r.kind, r.subject, r.created_at, r.last_seen_at, r.expires_at)
         for (r,) in args])
    return [None] * len(args)


async def touch_session(con: Connection, args: list[tuple[str, float]]) -> list[Any]:
    await con.executemany(
        "UPDATE sessions SET last_seen_at = GREATEST(last_seen_at, $2) WHERE id = $1", args)
    return [None] * len(args)


async def end_session(con: Connection, args: list[tuple[str]]) -> list[Any]:
    return [(await con.execute("DELETE FROM sessions WHERE id = $1", session_id))
            != "DELETE 0" for (session_id,) in args]


async def end_sessions(con: Connection, args: list[tuple[str, list[str]]]) -> list[Any]:
    out = []
    for kind, keep in args:
        status = await con.execute(
            "DELETE FROM sessions WHERE kind = $1 AND subject <> ALL($2::text[])", kind, keep)
        out.append(int(status.split()[-1]))
    return out


async def purge_sessions(con: Connection, args: list[tuple[float, float]]) -> list[Any]:
    """The sessions relay.sessions.decide calls dead at `now`: expired, or idle too long."""
    out = []
    for now, idle in args:
        status = await con.execute(
            "DELETE FROM sessions WHERE expires_at <= $1 OR last_seen_at <= $2", now, now - idle)
        out.append(int(status.split()[-1]))
    return out


# --- the directory: tenants and API keys (relay.storage.directory decides) ---------------

# Directory writes run one at a time across processes: a tenant's id and uid are checked
# against every other tenant's, which no unique index can say alone.
_DIRECTORY_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('relay.directory', 0))"
_BUMP_DIRECTORY = (
    "UPDATE directory_changes SET version = version + 1; "
    f"NOTIFY {DIRECTORY_CHANNEL}"
)
_NAMES_TAKEN = ("SELECT id, uid FROM tenants WHERE (id = ANY($1::text[]) OR "
                "uid = ANY($1::text[])) AND id IS DISTINCT FROM $2")


async def _names_taken(con: Connection, tenant_id: str, uid: str | None,
                       other_than: str | None) -> list[tuple[str, str | None]]:
    """The tenants (but `other_than`) whose id or uid is `tenant_id` or `uid`."""
    names = [tenant_id] if uid is None else [tenant_id, uid]
    return [(r[0], r[1]) for r in await con.fetch(_NAMES_TAKEN, names, other_than)]


async def create_tenant(con: Connection, args: list[TenantRow]) -> list[Any]:
    out: list[Any] = []
    await con.execute(_DIRECTORY_LOCK)
    for tenant in args:
        clash = directory.names_free(tenant.id, tenant.uid,
                                     await _names_taken(con, tenant.id, tenant.uid, None))
        if clash is not None:
            out.append(clash)
            continue
        await con.execute(f"INSERT INTO tenants ({directory.TENANT_COLS}) VALUES "
                          "($1, $2, $3, $4, $5, $6, $7, $8, $9)", *directory.tenant_values(tenant))
        await con.execute(_BUMP_DIRECTORY)
        out.append(tenant)
    return out


async def update_tenant(con: Connection,
                        args: list[tuple[str, dict[str, Any], float]]) -> list[Any]:
    out: list[Any] = []
    await con.execute(_DIRECTORY_LOCK)
    for tenant_id, changes, now in args:
        values = directory.tenant_changes(changes)
        if await con.fetchval("SELECT 1 FROM tenants WHERE id = $1", tenant_id) is None:
            out.append(directory.no_tenant(tenant_id))
            continue
        uid = changes.get("uid")
        clash = None if uid is None else directory.names_free(
            tenant_id, uid, await _names_taken(con, tenant_id, uid, tenant_id))
        if clash is not None:
            out.append(clash)
            continue
        sets = "".join(f"{col} = ${n}, " for n, col in enumerate(values, 3))
        [row] = await con.fetch(f"UPDATE tenants SET {sets}updated_at = $2 WHERE id = $1 "
                                f"RETURNING {directory.TENANT_COLS}",
                                tenant_id, now, *values.values())
        await con.execute(_BUMP_DIRECTORY)
        out.append(directory.tenant_row(row))
    return out


async def delete_tenant(con: Connection, args: list[tuple[str, float]]) -> list[Any]:
    out: list[Any] = []
    await con.execute(_DIRECTORY_LOCK)
    for tenant_id, now in args:
        if await con.fetchval("SELECT 1 FROM tenants WHERE id = $1", tenant_id) is None:
            out.append(directory.no_tenant(tenant_id))
            continue
        endpoints = tuple(r[0] for r in await con.fetch(
            "SELECT id FROM endpoints WHERE tenant = $1 AND deleted_at IS NULL "
            "ORDER BY created_at, id", tenant_id))
        cancelled = 0
        for eid in endpoints:
            cancelled += await _remove_endpoint(con, eid, now)
        status = await con.execute("DELETE FROM api_keys WHERE tenant = $1", tenant_id)
        await con.execute("DELETE FROM tenants WHERE id = $1", tenant_id)
        await con.execute(_BUMP_DIRECTORY)
        if endpoints:
            await _endpoints_changed(con)
        out.append(TenantRemoved(endpoints, cancelled, int(status.split()[-1])))
    return out


async def create_api_key(con: Connection, args: list[tuple[ApiKeyRow, bool]]) -> list[Any]:
    out: list[Any] = []
    await con.execute(_DIRECTORY_LOCK)
    for key, in_file in args:
        stored = not in_file and await con.fetchval(
            "SELECT 1 FROM tenants WHERE id = $1", key.tenant) is not None
        refused = directory.key_tenant_known(key.tenant, in_file, stored)
        if refused is not None:
            out.append(refused)
            continue
        await con.execute(f"INSERT INTO api_keys ({directory.API_KEY_COLS}) VALUES "
                          "($1, $2, $3, $4, $5, $6, $7)", *directory.api_key_values(key))
        await con.execute(_BUMP_DIRECTORY)
        out.append(key)
    return out


async def delete_api_key(con: Connection, args: list[str]) -> list[Any]:
    out: list[Any] = []
    await con.execute(_DIRECTORY_LOCK)
    for key_id in args:
        row = await con.fetchrow(f"DELETE FROM api_keys WHERE id = $1 RETURNING "
                                 f"{directory.API_KEY_COLS}", key_id)
        if row is None:
            out.append(directory.no_key(key_id))
            continue
        await con.execute(_BUMP_DIRECTORY)
        out.append(directory.api_key_row(row))
    return out


# --- the directory: event types (relay.storage.event_types decides) -----------------------

async def _event_type(con: Connection, name: str) -> EventTypeRow | None:
    row = await con.fetchrow(f"SELECT {event_types.EVENT_TYPE_COLS} FROM event_types "
                             "WHERE name = $1", name)
    return None if row is None else event_types.event_type_row(row)


async def create_event_type(con: Connection,
                            args: list[tuple[EventTypeRow, bool]]) -> list[Any]:
    out: list[Any] = []
    await con.execute(_DIRECTORY_LOCK)
    for event_type, unarchive in args:
        stored = await _event_type(con, event_type.name)
        decided = event_types.on_create(event_type.name, stored, unarchive)
        if isinstance(decided, Conflict):
            out.append(decided)
            continue
        if stored is not None:
            event_type = event_types.revived(event_type, stored)
            await con.execute("DELETE FROM event_types WHERE name = $1", event_type.name)
        await con.execute(f"INSERT INTO event_types ({event_types.EVENT_TYPE_COLS}) VALUES "
                          "($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                          *event_types.event_type_values(event_type))
        await con.execute(_BUMP_DIRECTORY)
        out.append(event_type)
    return out


async def update_event_type(con: Connection,
                            args: list[tuple[str, dict[str, Any], float]]) -> list[Any]:
    out: list[Any] = []
    await con.execute(_DIRECTORY_LOCK)
    for name, changes, now in args:
        values = event_types.event_type_changes(changes)
        sets = "".join(f"{col} = ${n}, " for n, col in enumerate(values, 3))
        row = await con.fetchrow(f"UPDATE event_types SET {sets}updated_at = $2 WHERE name = $1 "
                                 f"RETURNING {event_types.EVENT_TYPE_COLS}",
                                 name, now, *values.values())
        if row is None:
            out.append(event_types.no_event_type(name))
            continue
        await con.execute(_BUMP_DIRECTORY)
        out.append(event_types.event_type_row(row))
    return out


async def delete_event_type(con: Connection, args: list[str]) -> list[Any]:
    out: list[Any] = []
    await con.execute(_DIRECTORY_LOCK)
    for name in args:
        row = await con.fetchrow(f"DELETE FROM event_types WHERE name = $1 RETURNING "
                                 f"{event_types.EVENT_TYPE_COLS}", name)
        if row is None:
            out.append(event_types.no_event_type(name))
            continue
        await con.execute(_BUMP_DIRECTORY)
        out.append(event_types.event_type_row(row))
    return out


async def begin_request(con: Connection,
                        args: list[tuple[str, str, str, float]]) -> list[Any]:
    """rules.answer_again on what the key holds (locked until commit); a request to run is
    recorded in flight. Two processes beginning one new key at once: the second inserts
    nothing, and is told the request is being answered."""
    out: list[Any] = []
    for owner, key, digest, now in args:
        row = await con.fetchrow("SELECT digest, status, body, created_at FROM idempotency "
                                 "WHERE owner = $1 AND key = $2 FOR UPDATE", owner, key)
        found = None if row is None else StoredAnswer(row[0], row[1], bytes(row[2]), row[3])
        decision = rules.answer_again(found, digest, now)
        if decision is None:
            status = await con.execute(
                "INSERT INTO idempotency (owner, key, digest, status, body, created_at) "
                "VALUES ($1, $2, $3, NULL, '', $4) ON CONFLICT (owner, key) DO UPDATE SET "
                "digest = $3, status = NULL, body = '', created_at = $4 "
                "WHERE $5", owner, key, digest, now, found is not None)
            if status == "INSERT 0 0":  # another process took the new key first
                decision = rules.answer_again(StoredAnswer(digest, None, b"", now), digest, now)
        out.append(decision)
    return out


async def end_request(con: Connection,
                      args: list[tuple[str, str, int | None, bytes]]) -> list[Any]:
    for owner, key, status, body in args:
        if status is None:
            await con.execute("DELETE FROM idempotency WHERE owner = $1 AND key = $2",
                              owner, key)
        else:
            await con.execute("UPDATE idempotency SET status = $3, body = $4 "
                              "WHERE owner = $1 AND key = $2", owner, key, status, body)
    return [None] * len(args)


async def purge_requests(con: Connection, args: list[float]) -> list[Any]:
    out = []
    for before in args:
        status = await con.execute("DELETE FROM idempotency WHERE created_at < $1", before)
        out.append(int(status.split()[-1]))
    return out
