"""`python -m bench.pgdriver [--url URL] [--rounds N]`: asyncpg against psycopg 3 on the
queue operations relay runs on PostgreSQL, to choose the driver by measurement.

Three operations, each on one pooled connection inside a transaction, the way the store
runs them: a group-commit ingest (16 events and 32 deliveries in one transaction), a
`FOR UPDATE SKIP LOCKED` claim of 32 due deliveries with their payloads, and an outcome
update of 32 deliveries plus their attempt rows. Each driver runs the same rows in
alternating rounds (the machine is noisy: compare the two in one run only); the figure
is the median operations per second over the rounds. A scratch database is created and
dropped. psycopg is not a relay dependency: `pip install 'psycopg[binary]'` first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

try:
    import psycopg
except ImportError:  # only this comparison needs it
    raise SystemExit(
        "bench.pgdriver compares with psycopg 3: pip install 'psycopg[binary]'") from None

_SCHEMA = """
CREATE TABLE events (seq BIGSERIAL PRIMARY KEY, id TEXT NOT NULL UNIQUE, tenant TEXT NOT NULL,
  type TEXT NOT NULL, idem_key TEXT, digest TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
  n_deliveries INTEGER NOT NULL, payload BYTEA NOT NULL);
CREATE TABLE deliveries (id BIGSERIAL PRIMARY KEY, event_id TEXT NOT NULL,
  endpoint_id TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
  next_at DOUBLE PRECISION NOT NULL, lease_until DOUBLE PRECISION,
  created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL,
  last_status INTEGER, last_error TEXT);
CREATE INDEX deliveries_due ON deliveries (endpoint_id, next_at, id) WHERE state = 'pending';
CREATE TABLE attempts (id BIGSERIAL PRIMARY KEY, delivery_id BIGINT NOT NULL, n INTEGER NOT NULL,
  started_at DOUBLE PRECISION NOT NULL, duration_ms DOUBLE PRECISION, request_headers TEXT,
  status INTEGER, response_headers TEXT, response_body BYTEA, error TEXT);
"""
_EVENTS = ("INSERT INTO events (id, tenant, type, idem_key, digest, created_at, n_deliveries, "
           "payload) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], "
           "$5::text[], $6::float8[], $7::int[], $8::bytea[])")
_DELIVERIES = ("INSERT INTO deliveries (event_id, endpoint_id, state, next_at, created_at, "
               "updated_at) SELECT e, p, 'pending', t, t, t FROM unnest($1::text[], "
               "$2::text[], $3::float8[]) AS u(e, p, t)")
_CLAIM = ("UPDATE deliveries d SET state = 'delivering', attempts = attempts + 1, "
          "lease_until = $1, updated_at = $2 FROM (SELECT id FROM deliveries WHERE "
          "state = 'pending' AND endpoint_id = $3 AND next_at <= $2 ORDER BY next_at, id "
          "LIMIT $4 FOR UPDATE SKIP LOCKED) c, events e WHERE d.id = c.id AND e.id = d.event_id "
          "RETURNING d.id, d.event_id, d.attempts, e.payload")
_ATTEMPTS = ("INSERT INTO attempts (delivery_id, n, started_at, duration_ms, request_headers, "
             "status, response_headers, response_body, error) SELECT * FROM unnest($1::bigint[], "
             "$2::int[], $3::float8[], $4::float8[], $5::text[], $6::int[], $7::text[], "
             "$8::bytea[], $9::text[])")
_OUTCOMES = ("UPDATE deliveries d SET state = u.s, lease_until = NULL, updated_at = $2, "
             "last_status = u.st FROM unnest($1::bigint[], $3::text[], $4::int[]) AS u(i, s, st) "
             "WHERE d.id = u.i AND d.state = 'delivering'")

_EVENTS_PER_INGEST = 16
_CLAIM_SIZE = 32
_HEADERS = json.dumps({"content-type": "application/json", "webhook-id": "evt_x",
                       "webhook-signature": "v1," + "a" * 44})


def _psycopg_sql(sql: str) -> str:
    """$n placeholders as psycopg's %s (each is used in order, or repeated: spelled out)."""
    out = sql
    for n in range(9, 0, -1):
        out = out.replace(f"${n}", f"%(p{n})s")
    return out


def _named(args: tuple[Any, ...]) -> dict[str, Any]:
    return {f"p{n}": v for n, v in enumerate(args, 1)}


def _ingest_args(round_: int, n: int) -> list[tuple[str, tuple[Any, ...]]]:
    now = time.time()
    ids = [f"evt_{round_}_{n}_{i}_{secrets.token_hex(4)}" for i in range(_EVENTS_PER_INGEST)]
    payload = json.dumps({"id": "evt", "type": "lead.qualified", "data": {"n": 1}}).encode()
    k = len(ids)
    return [
        (_EVENTS, (ids, ["default"] * k, ["lead.qualified"] * k, [None] * k, [""] * k,
                   [now] * k, [2] * k, [payload] * k)),
        (_DELIVERIES, ([i for i in ids for _ in "ab"], [p for _ in ids for p in ("a", "b")],
                       [now] * (2 * k))),
    ]


def _claim_args() -> list[tuple[str, tuple[Any, ...]]]:
    now = time.time()
    return [(_CLAIM, (now + 60, now, "a", _CLAIM_SIZE))]


def _outcome_args(ids: list[int]) -> list[tuple[str, tuple[Any, ...]]]:
    now = time.time()
    k = len(ids)
    return [
        (_ATTEMPTS, (ids, [1] * k, [now] * k, [1.5] * k, [_HEADERS] * k, [200] * k,
                     ["{}"] * k, [b"ok"] * k, [None] * k)),
        (_OUTCOMES, (ids, now, ["succeeded"] * k, [200] * k)),
    ]


async def _measure(url: str, rounds: int, per_round: int) -> dict[str, dict[str, float]]:
    apg = await asyncpg.create_pool(url, min_size=1, max_size=1)
    pcon = await psycopg.AsyncConnection.connect(url, prepare_threshold=0)

    async def run_asyncpg(statements: list[tuple[str, tuple[Any, ...]]]) -> Any:
        async with apg.acquire() as con, con.transaction():
            out: list[Any] = []
            for sql, args in statements:
                if "RETURNING" in sql:
                    out = await con.fetch(sql, *args)
                else:
                    await con.execute(sql, *args)
            return [r[0] for r in out]

    async def run_psycopg(statements: list[tuple[str, tuple[Any, ...]]]) -> Any:
        async with pcon.transaction(), pcon.cursor() as cur:
            out: list[Any] = []
            for sql, args in statements:
                await cur.execute(_psycopg_sql(sql), _named(args))
                if "RETURNING" in sql:
                    out = await cur.fetchall()
            return [r[0] for r in out]

    drivers = {"asyncpg": run_asyncpg, "psycopg": run_psycopg}
    figures: dict[str, dict[str, list[float]]] = {
        d: {"ingest": [], "claim": [], "outcome": []} for d in drivers}
    try:
        for round_ in range(rounds):
            order = list(drivers) if round_ % 2 == 0 else list(reversed(drivers))
            for name in order:
                run = drivers[name]
                start = time.perf_counter()
                for n in range(per_round):
                    await run(_ingest_args(round_, n))
                figures[name]["ingest"].append(per_round / (time.perf_counter() - start))
                claimed: list[list[int]] = []
                start = time.perf_counter()
                for _ in range(per_round):
                    claimed.append(await run(_claim_args()))
                figures[name]["claim"].append(per_round / (time.perf_counter() - start))
                start = time.perf_counter()
                for ids in claimed:
                    await run(_outcome_args(ids))
                figures[name]["outcome"].append(per_round / (time.perf_counter() - start))
    finally:
        await apg.close()
        await pcon.close()
    return {d: {op: statistics.median(v) for op, v in ops.items()}
            for d, ops in figures.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test",
                        help="a database the scratch database is created from")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--per-round", type=int, default=300)
    opts = parser.parse_args()
    scratch = f"relay_bench_{secrets.token_hex(4)}"
    parts = urlsplit(opts.url)
    url = urlunsplit(parts._replace(path="/" + scratch))

    async def run() -> dict[str, dict[str, float]]:
        admin = await asyncpg.connect(opts.url)
        await admin.execute(f"CREATE DATABASE {scratch}")
        try:
            con = await asyncpg.connect(url)
            await con.execute(_SCHEMA)
            await con.close()
            return await _measure(url, opts.rounds, opts.per_round)
        finally:
            await admin.execute(f"DROP DATABASE {scratch} WITH (FORCE)")
            await admin.close()

    result = asyncio.run(run())
    print(f"{'operation':<10} {'asyncpg ops/s':>14} {'psycopg ops/s':>14} {'ratio':>7}")
    for op in ("ingest", "claim", "outcome"):
        a, p = result["asyncpg"][op], result["psycopg"][op]
        print(f"{op:<10} {a:>14,.0f} {p:>14,.0f} {a / p:>6.2f}x")


if __name__ == "__main__":
    main()
