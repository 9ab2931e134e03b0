"""What only a shared PostgreSQL store does: several stores (as several processes would)
on one real database, leases, wake-ups, health while the database is away."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import asyncpg
import pytest

from relay.errors import StorageError, TooManyRequests
from relay.storage.base import Watcher
from relay.storage.postgres import PostgresStore
from relay.storage.postgres import sql as queries
from relay.storage.postgres.connection import SCHEMA_VERSION
from relay.types import ConfigEndpoint, EndpointSpec, NewEndpoint
from tests.helpers import ENDPOINTS, NOW, event, result
from tests.postgres import terminate
from tests.serving import eventually


@pytest.fixture
async def pair(pg_url: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    """Two stores on one database, as two relay processes have."""
    one, two = PostgresStore(pg_url), PostgresStore(pg_url)
    await asyncio.gather(one.open(), two.open())  # both migrate at once: one does
    await one.sync_config_endpoints(ENDPOINTS, NOW, lambda: "whsec_generated")
    yield one, two
    await asyncio.gather(one.close(), two.close())


class Woken:
    """A watcher that remembers what it was told."""

    def __init__(self) -> None:
        self.due: list[tuple[str, float]] = []
        self.rescans = 0
        self.endpoint_changes = 0
        self.watcher = Watcher(lambda e, t: self.due.append((e, t)), self._rescan,
                               self._endpoints, config_digest="abc")

    def _rescan(self) -> None:
        self.rescans += 1

    def _endpoints(self) -> None:
        self.endpoint_changes += 1


async def test_idempotent_ingest_racing_on_two_stores_creates_one_event(
        pair: tuple[PostgresStore, PostgresStore]) -> None:
    one, two = pair
    results = await asyncio.gather(*(
        store.ingest([event(i, key="same")]) for i in range(10) for store in (one, two)))
    assert len({r[0].id for r in results}) == 1
    assert sum(not r[0].duplicate for r in results) == 1
    assert await one.counts() == {"pending": 2}


async def test_max_webhooks_holds_across_stores(
        pair: tuple[PostgresStore, PostgresStore]) -> None:
    one, two = pair

    async def create(store: PostgresStore, n: int) -> object:
        try:
            return await store.create_endpoint(NewEndpoint(
                f"ep_{n}", "default", "x", EndpointSpec(url="https://x.example/"), "whsec_x",
                NOW), 3)
        except TooManyRequests as exc:
            return exc

    outcomes = await asyncio.gather(*(create((one, two)[n % 2], n) for n in range(8)))
    assert sum(not isinstance(o, TooManyRequests) for o in outcomes) == 3
    assert len([r for r in await two.list_endpoints() if r.source == "api"]) == 3


async def test_concurrency_cap_holds_across_stores(
        pair: tuple[PostgresStore, PostgresStore]) -> None:
    one, two = pair
    await one.ingest([event(i, endpoints=("a",)) for i in range(10)])
    limits = {"a": (3, None)}
    claims = await asyncio.gather(*(
        store.claim({"a": 5}, NOW, NOW + 30, limits) for store in (one, two, one, two)))
    taken = [c.id for claimed, _ in claims for c in claimed]
    assert len(taken) == len(set(taken)) == 3  # SKIP LOCKED: never the same row twice
    # Held back by the cap: a full claim (more is due), not "nothing pending".
    assert all("a" not in next_due for _, next_due in claims)
    # A finished attempt frees its slot for the other store.
    await one.record([result(taken[0], "a", 1, "succeeded", ok=True, status=200)], NOW, 3600)
    [freed], _ = await two.claim({"a": 5}, NOW, NOW + 30, limits)
    assert freed.id not in taken


async def test_a_claims_own_finished_deliveries_free_their_slots_for_it_alone(
        pair: tuple[PostgresStore, PostgresStore]) -> None:
    one, two = pair
    await one.ingest([event(i, endpoints=("a",)) for i in range(10)])
    limits = {"a": (3, None)}
    held, _ = await one.claim({"a": 5}, NOW, NOW + 30, limits)
    assert len(held) == 3
    # Two of them sent, their outcomes not committed yet: still leased in the database.
    done = [held[0].id, held[1].id]
    assert (await two.claim({"a": 5}, NOW, NOW + 30, limits))[0] == []  # its cap is full
    more, _ = await one.claim({"a": 5}, NOW, NOW + 30, limits, finished=done)
    assert len(more) == 2 and not {c.id for c in more} & {c.id for c in held}
    assert (await one.claim({"a": 5}, NOW, NOW + 30, limits, finished=done))[0] == []


async def test_rate_limit_is_one_bucket_for_all_stores(
        pair: tuple[PostgresStore, PostgresStore]) -> None:
    one, two = pair
    await one.ingest([event(i, endpoints=("a",)) for i in range(20)])
    limits = {"a": (100, 4.0)}  # 4/s: a burst of 4, then one more each 0.25 s
    first, _ = await one.claim({"a": 10}, NOW, NOW + 30, limits)
    second, due = await two.claim({"a": 10}, NOW, NOW + 30, limits)
    assert len(first) + len(second) == 4
    assert due["a"] == pytest.approx(NOW + 0.25)
    later, _ = await two.claim({"a": 10}, NOW + 0.5, NOW + 30, limits)
    assert len(later) == 2


async def test_expired_leases_are_taken_over_and_renewed_ones_are_not(
        pair: tuple[PostgresStore, PostgresStore]) -> None:
    one, two = pair
    await one.ingest([event(1, endpoints=("a",)), event(2, endpoints=("a",))])
    claimed, _ = await one.claim({"a": 2}, NOW, NOW + 30)
    assert await two.recover_inflight(NOW + 1) == 0  # a start takes nothing from the living
    assert await one.renew([claimed[1].id], NOW + 100) == 1
    # The store's heartbeat reclaims with the real clock; here, as of a later time.
    assert await two.reclaim_expired(NOW + 31) == 1
    [again], _ = await two.claim({"a": 2}, NOW + 31, NOW + 61)
    assert again.id == claimed[0].id and again.attempt == 2
    [interrupted] = await two.attempts_of(again.id)
    assert interrupted.error is not None and "interrupted" in interrupted.error
    assert (await two.counts())["delivering"] == 2  # the renewed one was left alone


async def test_wake_ups_reach_the_other_store(
        pair: tuple[PostgresStore, PostgresStore]) -> None:
    one, two = pair
    woken = Woken()
    await two.watch(woken.watcher)
    assert woken.rescans == 1  # on (re)listening: what was missed
    await one.ingest([event(1, endpoints=("a", "b"))])
    await eventually(lambda: {e for e, _ in woken.due} == {"a", "b"}, 5, "NOTIFY relay_due")
    before = woken.endpoint_changes
    await one.update_endpoint("a", {"is_paused": True}, NOW)
    await eventually(lambda: woken.endpoint_changes > before, 5, "NOTIFY relay_endpoints")

    async def both_seen() -> bool:
        # relay status's list: both processes, which disagree on their config files.
        return {n.config_digest for n in await one.nodes(time.time()) if n.alive} == {"", "abc"}

    await eventually(both_seen, 5, "both heartbeats")


async def test_unreachable_database_turns_unhealthy_and_back(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    await store.open()
    database = urlsplit(pg_url).path.strip("/")
    admin = await asyncpg.connect(pg_url.rsplit("/", 1)[0] + "/postgres")
    try:
        await admin.execute(f"ALTER DATABASE {database} WITH ALLOW_CONNECTIONS false")
        await terminate(database)
        await eventually(lambda: not store.healthy, 10, "the store to notice")
        with pytest.raises(StorageError):
            await store.ingest([event(1, endpoints=())])
        await admin.execute(f"ALTER DATABASE {database} WITH ALLOW_CONNECTIONS true")
        await eventually(lambda: store.healthy, 10, "the store to reconnect")
        assert len(await store.ingest([event(2, endpoints=())])) == 1
    finally:
        await admin.execute(f"ALTER DATABASE {database} WITH ALLOW_CONNECTIONS true")
        await admin.close()
        await store.close()


async def test_newer_schema_refused(pg_url: str) -> None:
    con = await asyncpg.connect(pg_url)
    await con.execute("CREATE TABLE relay_schema (version INTEGER NOT NULL); "
                      f"INSERT INTO relay_schema VALUES ({SCHEMA_VERSION + 1})")
    await con.close()
    with pytest.raises(StorageError, match=f"schema version {SCHEMA_VERSION + 1}, newer"):
        await PostgresStore(pg_url).open()


async def test_closing_finishes_queued_writes_then_refuses(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    await store.open()
    await store.sync_config_endpoints(
        [ConfigEndpoint("a", "default", EndpointSpec(url="https://a.example/"), None)], NOW,
        lambda: "s")
    queued = [asyncio.create_task(store.ingest([event(i, ("a",))])) for i in range(20)]
    await asyncio.sleep(0)  # the ingests are queued before close() is
    await asyncio.gather(store.close(), store.close())
    assert all(len(t.result()) == 1 for t in queued)
    with pytest.raises(StorageError, match="the store is closed"):
        await store.ingest([event(99, ("a",))])
    reopened = PostgresStore(pg_url)
    await reopened.open()
    assert await reopened.counts() == {"pending": 20}
    await reopened.close()


async def test_no_unreachable_server_hangs_the_open() -> None:
    with pytest.raises(StorageError, match="cannot connect to PostgreSQL at postgresql://"):
        await PostgresStore("postgresql://relay@127.0.0.1:1/none").open()


async def test_lone_racing_operations_on_two_stores_both_succeed(pg_url: str) -> None:
    # One operation per transaction on each side: the loser of the race is run again.
    stores = [PostgresStore(pg_url) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        synced = await asyncio.gather(*(
            s.sync_config_endpoints(ENDPOINTS, NOW, lambda: "whsec_generated")
            for s in stores))
        assert all({r.id for r in rows} == {"a", "b"} for rows in synced)
        results = await asyncio.gather(*(s.ingest([event(n, key="k")])
                                         for n, s in enumerate(stores)))
        assert len({r[0].id for r in results}) == 1
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_fifo_claim_reads_the_head_not_the_history(
        pair: tuple[PostgresStore, PostgresStore], pg_url: str) -> None:
    # An ordered endpoint with a long history: the claim's head lookup must come from an
    # index of unfinished deliveries, not walk the finished ones (before migration 4 it
    # filtered through all of them: 423 ms a claim with 1M). The plans of the statements
    # inside relay_claim are read from auto_explain, sent to this connection as LOG lines.
    one, _ = pair
    con = await asyncpg.connect(pg_url)
    try:
        await con.execute(
            "INSERT INTO deliveries (event_id, endpoint_id, state, next_at, created_at, "
            "updated_at) SELECT 'evt_old' || g, 'a', 'succeeded', 0, 0, 0 "
            "FROM generate_series(1, 20000) g")
        await one.ingest([event(1, ("a",))])  # the head, after the history
        head = await con.fetchval("SELECT max(id) FROM deliveries")
        await con.execute("ANALYZE deliveries")
        for setting in ("LOAD 'auto_explain'", "SET auto_explain.log_min_duration = 0",
                        "SET auto_explain.log_nested_statements = on",
                        "SET auto_explain.log_analyze = on", "SET client_min_messages = log"):
            await con.execute(setting)
        plans: list[str] = []
        con.add_log_listener(lambda _con, message: plans.append(str(message)))
        [(claimed, _)] = await queries.claim(con, [queries.ClaimArgs(
            {"a": 1}, NOW, NOW + 30, {}, ordered=frozenset({"a"}))])
    finally:
        await con.close()
    assert [c.id for c in claimed] == [head]
    assert plans, "auto_explain sent no plan"
    removed = max((int(n) for plan in plans
                   for n in re.findall(r"Rows Removed by Filter: (\d+)", plan)), default=0)
    assert removed < 100, f"a statement of the claim filtered out {removed} rows"
