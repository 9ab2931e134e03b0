"""The Store contract on every backend: a real SQLite file and a real PostgreSQL database.

Tests taking `store` run on both; those taking `sqlite_store` or a path test what only
SQLite has (the lock file, the writer thread, recovery at start); PostgreSQL's own
(several processes at once) are in test_store_postgres.py.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from relay.errors import Conflict, StorageError
from relay.storage.base import Store
from relay.storage.sqlite import SQLiteStore
from relay.storage.sqlite import sql as queries
from relay.storage.sqlite.connection import connect
from relay.storage.sqlite.schema import statements
from relay.types import ConfigEndpoint, EndpointSpec, NewEndpoint, NewEvent, Notice, Reporting
from tests.helpers import NOW, event, result, with_endpoints


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "relay.db")
    await with_endpoints(s)
    yield s
    await s.close()


async def test_config_endpoints_keep_generated_secrets(store: Store) -> None:
    rows = {r.id: r for r in await store.list_endpoints()}
    assert rows["a"].secret == "whsec_generated"
    assert rows["b"].secret == "given-secret"
    # A second sync keeps the generated secret and removes what left the file.
    await store.sync_config_endpoints(
        [ConfigEndpoint("a", "default", EndpointSpec(url="https://a2.example/"), None)],
        NOW + 1, lambda: "whsec_other",
    )
    rows = {r.id: r for r in await store.list_endpoints()}
    assert set(rows) == {"a"}
    assert rows["a"].secret == "whsec_generated"
    assert rows["a"].spec.url == "https://a2.example/"


async def test_group_commit_answers_each_caller(store: Store) -> None:
    results = await asyncio.gather(*(store.ingest([event(i)]) for i in range(200)))
    assert [r[0].id for r in results] == [f"evt_{i:04d}" for i in range(200)]
    assert await store.counts() == {"pending": 400}


async def test_idempotency_repeat_and_conflict(store: Store) -> None:
    [first] = await store.ingest([event(1, key="k1")])
    [again] = await store.ingest([event(2, key="k1")])
    assert again.duplicate and again.id == first.id and again.deliveries == 2
    with pytest.raises(Conflict, match="k1"):
        await store.ingest([event(3, key="k1", digest="other")])
    # Within one batch too; and a failing batch writes nothing.
    with pytest.raises(Conflict):
        await store.ingest([event(4, key="k2"), event(5, key="k2", digest="x")])
    assert await store.counts() == {"pending": 2}
    # Concurrent repeats in one group commit: one stored, the rest answered with it.
    results = await asyncio.gather(*(store.ingest([event(10 + i, key="k3")]) for i in range(5)))
    assert len({r[0].id for r in results}) == 1
    assert sum(not r[0].duplicate for r in results) == 1


async def test_one_bad_operation_does_not_fail_its_batch(store: Store) -> None:
    ok, bad = await asyncio.gather(
        store.ingest([event(1)]), store.ingest([event(1)]), return_exceptions=True
    )
    assert not isinstance(ok, BaseException)
    assert isinstance(bad, StorageError)  # same event id: UNIQUE constraint
    assert await store.counts() == {"pending": 2}


async def test_claim_respects_limits_order_and_due_time(store: Store) -> None:
    await store.ingest([event(i) for i in range(5)])
    await store.ingest([event(9, at=NOW + 100)])
    claimed, next_due = await store.claim({"a": 3, "b": 10}, NOW, NOW + 30)
    by_endpoint = [(c.endpoint_id, c.event_id) for c in claimed]
    assert [e for ep, e in by_endpoint if ep == "a"] == ["evt_0000", "evt_0001", "evt_0002"]
    assert len([1 for ep, _ in by_endpoint if ep == "b"]) == 5
    assert all(c.attempt == 1 for c in claimed)
    assert claimed[0].payload == b'{"n":0}'
    assert "a" not in next_due  # full claim: more may be due now
    assert next_due["b"] == NOW + 100  # the future event
    assert (await store.counts())["delivering"] == 8


async def test_unclaim_gives_back_pending_or_held_as_the_endpoint_accepts(
    store: Store,
) -> None:
    """Claimed but never sent (a stop, a pause): back with the attempt uncounted, held
    where the endpoint stopped accepting meanwhile (health.accepting decides, on every
    backend); one already recorded stays as it is."""
    await store.ingest([event(i) for i in range(3)])
    claimed, _ = await store.claim({"a": 5, "b": 5}, NOW, NOW + 30)
    await store.update_endpoint("b", {"is_paused": True}, NOW)
    done = next(c for c in claimed if c.endpoint_id == "a")
    await store.record([result(done.id, "a", 1, "succeeded", ok=True, status=200)], NOW, 3600)
    assert await store.unclaim([c.id for c in claimed], NOW + 1) == 5
    assert await store.counts() == {"succeeded": 1, "pending": 2, "held": 3}
    again, _ = await store.claim({"a": 5, "b": 5}, NOW + 1, NOW + 31)
    assert [(c.endpoint_id, c.attempt) for c in again] == [("a", 1), ("a", 1)]


async def test_claim_gives_back_the_payload_bytes_exactly(store: Store) -> None:
    # Signatures cover these bytes: escapes, non-ASCII and spacing must survive the claim.
    payload = '{"s":"é \\u0000 \\" 🦜","n": 1.50,"big":123456789012345678901234567890}'.encode()
    await store.ingest([NewEvent(id="evt_u", tenant="default", type="t.x", idem_key=None,
                                 digest="d", created_at=NOW, payload=payload,
                                 deliveries=(("a", "pending"),))])
    [claimed], _ = await store.claim({"a": 5}, NOW, NOW + 30)
    assert claimed.payload == payload


async def test_record_retry_success_and_health(store: Store) -> None:
    await store.ingest([event(1, endpoints=("a",))])
    [c] = (await store.claim({"a": 5}, NOW, NOW + 30))[0]
    await store.record([result(c.id, "a", 1, "pending", next_at=NOW + 10)], NOW, 3600)
    assert (await store.claim({"a": 5}, NOW + 5, NOW + 35))[0] == []
    [c2] = (await store.claim({"a": 5}, NOW + 10, NOW + 40))[0]
    assert c2.attempt == 2
    row = {r.id: r for r in await store.list_endpoints()}["a"]
    assert row.consecutive_failures == 1 and row.failing_since == NOW
    await store.record([result(c2.id, "a", 2, "succeeded", ok=True, status=204)], NOW, 3600)
    row = {r.id: r for r in await store.list_endpoints()}["a"]
    assert row.consecutive_failures == 0 and row.failing_since is None
    assert row.last_delivery_status == 204
    attempts = await store.attempts_of(c.id)
    assert [(a.n, a.status, a.error) for a in attempts] == [(1, 500, "boom"), (2, 204, None)]
    assert attempts[0].request_headers == {"webhook-id": "x"}
    assert attempts[0].response_body == b"body"
    [d] = await store.deliveries_of("evt_0001")
    assert d.state == "succeeded" and d.attempts == 2


async def test_410_and_disable_after_hold_the_endpoint(store: Store) -> None:
    await store.ingest([event(i, endpoints=("a",)) for i in range(3)])
    claimed, _ = await store.claim({"a": 1}, NOW, NOW + 30)
    recorded = await store.record(
        [result(claimed[0].id, "a", 1, "held", status=410, gone=True)], NOW, 3600
    )
    assert "410" in recorded.disabled["a"]
    assert await store.counts() == {"held": 3}
    row = {r.id: r for r in await store.list_endpoints()}["a"]
    assert not row.is_active and "410" in (row.disable_reason or "")
    # Released in order when accepting again.
    assert await store.set_accepting("a", True, NOW + 1) == 3
    claimed, _ = await store.claim({"a": 10}, NOW + 1, NOW + 31)
    assert [c.event_id for c in claimed] == ["evt_0000", "evt_0001", "evt_0002"]

    # Failing for disable_after, with at least health.DISABLE_MIN_FAILURES attempts.
    await store.ingest([event(n, endpoints=("b",)) for n in (7, 8, 9)])
    claimed, _ = await store.claim({"b": 3}, NOW, NOW + 30)
    recorded = await store.record(
        [result(c.id, "b", 1, "pending", next_at=NOW + 5) for c in claimed[:2]], NOW + 7200,
        3600)
    assert recorded.disabled == {}
    recorded = await store.record(
        [result(claimed[2].id, "b", 1, "pending", next_at=NOW + 5)], NOW + 7200, 3600)
    assert "failing without a success" in recorded.disabled["b"]


async def test_recover_inflight_returns_claims_with_an_attempt_row(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    s = SQLiteStore(path)
    await s.open()
    await s.sync_config_endpoints(
        [ConfigEndpoint("a", "default", EndpointSpec(url="https://a/"), None)], NOW, lambda: "s"
    )
    await s.ingest([event(1, endpoints=("a",))])
    [c] = (await s.claim({"a": 1}, NOW, NOW + 30))[0]
    await s.close()  # as if killed: the row stays `delivering`
    s = SQLiteStore(path)
    await s.open()
    assert await s.recover_inflight(NOW + 60) == 1
    [c2] = (await s.claim({"a": 1}, NOW + 60, NOW + 90))[0]
    assert c2.id == c.id and c2.attempt == 2
    [a] = await s.attempts_of(c.id)
    assert a.error is not None and "interrupted" in a.error
    await s.close()


async def test_second_process_refused(sqlite_store: SQLiteStore) -> None:
    store = sqlite_store
    other = SQLiteStore(store.path)
    with pytest.raises(StorageError, match="in use by another relay process"):
        await other.open()


async def test_purge_keeps_unfinished_work(store: Store) -> None:
    await store.ingest([event(1, endpoints=("a",)), event(2, endpoints=("a",))])
    claimed, _ = await store.claim({"a": 1}, NOW, NOW + 30)
    await store.record([result(claimed[0].id, "a", 1, "succeeded", ok=True, status=200)],
                       NOW, 3600)
    assert await store.purge(NOW + 10, 100) == 1  # evt_0002 is still pending
    assert await store.deliveries_of("evt_0001") == []
    assert len(await store.deliveries_of("evt_0002")) == 1
    assert await store.attempts_of(claimed[0].id) == []


def test_an_ingest_past_one_statement_is_stored_all_or_none(tmp_path: Path) -> None:
    """The writer runs a keyless ingest outside any transaction, as one statement; when
    its rows need several (past SQLite's variable limit, here lowered to 2 events per
    statement), they get a transaction of their own and are stored whole or not at all."""
    db = connect(tmp_path / "relay.db")
    db.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 18)  # 9 per event
    stored = "SELECT (SELECT COUNT(*) FROM events), (SELECT COUNT(*) FROM deliveries)"
    with pytest.raises(sqlite3.IntegrityError):  # the last repeats the first's id
        queries.ingest(db, [[event(i) for i in range(5)] + [event(0)]])
    assert db.execute(stored).fetchone() == (0, 0)
    assert not db.in_transaction
    queries.ingest(db, [[event(i) for i in range(5)]])
    assert db.execute(stored).fetchone() == (5, 10)
    # Deliveries follow their events: ids in event order, then endpoint order.
    rows = db.execute("SELECT event_id, endpoint_id FROM deliveries ORDER BY id").fetchall()
    assert rows == [(f"evt_{i:04d}", e) for i in range(5) for e in ("a", "b")]
    db.close()


def test_migrations_split_where_statements_end() -> None:
    """Semicolons inside a trigger's body, a comment or a string do not end a statement;
    a last statement without its semicolon still runs."""
    sql = ("CREATE TABLE t (a); -- a comment; with 'quotes\n"
           "CREATE TRIGGER g AFTER INSERT ON t BEGIN SELECT ';'; SELECT 2; END;\n"
           "INSERT INTO t VALUES ('x;y')\n")
    assert [s.strip() for s in statements(sql)] == [
        "CREATE TABLE t (a);",
        "-- a comment; with 'quotes\nCREATE TRIGGER g AFTER INSERT ON t BEGIN SELECT ';'; "
        "SELECT 2; END;",
        "INSERT INTO t VALUES ('x;y')\n;",
    ]


async def test_newer_schema_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version=999")
    conn.close()
    with pytest.raises(StorageError, match="schema version 999, newer"):
        await SQLiteStore(path).open()


async def test_closing_finishes_queued_writes_then_refuses(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "relay.db")
    await s.open()
    await s.sync_config_endpoints(
        [ConfigEndpoint("a", "default", EndpointSpec(url="https://a.example/"), None)],
        NOW, lambda: "whsec_generated",
    )
    queued = [asyncio.create_task(s.ingest([event(i, ("a",))])) for i in range(20)]
    await asyncio.sleep(0)  # the ingests are queued before close() is
    await s.close()
    assert all(len(t.result()) == 1 for t in queued)  # each answered after its commit
    with pytest.raises(StorageError, match="the store is closed"):
        await s.ingest([event(99, ("a",))])
    reopened = SQLiteStore(tmp_path / "relay.db")
    await reopened.open()
    assert await reopened.counts() == {"pending": 20}
    await reopened.close()


async def test_an_operation_that_raises_fails_alone(sqlite_store: SQLiteStore) -> None:
    store = sqlite_store
    def broken(db: object, args: list[object]) -> list[object]:
        raise ZeroDivisionError("a bug in an operation")

    failing = asyncio.create_task(store._submit(broken, None))
    fine = asyncio.create_task(store.ingest([event(1)]))
    with pytest.raises(ZeroDivisionError):
        await failing
    assert len(await fine) == 1  # its neighbour in the batch still committed
    assert len(await store.ingest([event(2)])) == 1  # and the writer goes on


async def test_a_cancelled_close_can_be_repeated(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "relay.db")
    await s.open()
    gate = threading.Event()

    def held(db: object, args: list[object]) -> list[object]:
        gate.wait(10)  # keeps the writer thread busy until the test lets go
        return [None for _ in args]

    busy = asyncio.create_task(s._submit(held, None))
    closing = asyncio.create_task(s.close())
    await asyncio.sleep(0)  # close() is now waiting for the writer thread
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    gate.set()
    await s.close()  # finishes the queued work, then closes
    assert await busy is None
    with pytest.raises(StorageError, match="the store is closed"):
        await s.ingest([event(1)])


async def test_a_refused_operation_leaves_the_store_healthy(store: Store) -> None:
    # The database is fine when an operation refuses its input (here an id clash); only
    # SQLite errors (a full disk, a read-only file) turn /readyz to 503.
    await store.create_endpoint(
        NewEndpoint("x", "default", "x", EndpointSpec(url="https://x.example/"), "whsec_x", NOW),
        None)
    with pytest.raises(Conflict, match="already used by an API endpoint"):
        await store.sync_config_endpoints(
            [ConfigEndpoint("x", "default", EndpointSpec(url="https://y.example/"), None)],
            NOW, lambda: "whsec_generated",
        )
    assert store.healthy


async def test_two_closes_at_once_both_finish(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "relay.db")
    await s.open()
    await asyncio.wait_for(asyncio.gather(s.close(), s.close()), timeout=10)
    reopened = SQLiteStore(tmp_path / "relay.db")  # the lock was released
    await reopened.open()
    await reopened.close()


async def test_console_reads_and_stored_keys(store: Store) -> None:
    await store.ingest([event(1, endpoints=("a",)), event(2, endpoints=("a",))])
    claimed, _ = await store.claim({"a": 2}, NOW, NOW + 30)
    await store.record([result(claimed[0].id, "a", 1, "succeeded", ok=True, status=200),
                        result(claimed[1].id, "a", 1, "failed", status=500)], NOW, 3600)
    [minute] = await store.outcomes_per_minute(NOW - 60)
    assert (minute.minute, minute.succeeded, minute.failed) == (NOW // 60 * 60, 1, 1)
    [failure] = await store.recent_failures(NOW - 60, 10)
    assert (failure.delivery_id, failure.endpoint_id, failure.tenant, failure.status) == (
        claimed[1].id, "a", "default", 500)
    assert await store.outcomes_per_minute(NOW + 60) == []
    assert await store.secret_key("session", lambda: b"k1") == b"k1"
    assert await store.secret_key("session", lambda: b"k2") == b"k1"  # kept, not replaced


async def test_a_minute_of_only_unanswered_attempts_counts_them_failed(store: Store) -> None:
    """Attempts without a status (connection refused, a timeout): a minute holding only
    those is all failures, not a NULL sum (the console's overview answered 500)."""
    await store.ingest([event(1, endpoints=("a",)), event(2, endpoints=("a",))])
    claimed, _ = await store.claim({"a": 2}, NOW, NOW + 30)
    await store.record([result(claimed[0].id, "a", 1, "failed", status=None),
                        result(claimed[1].id, "a", 1, "failed", status=None)], NOW, 3600)
    [minute] = await store.outcomes_per_minute(NOW - 60)
    assert (minute.minute, minute.succeeded, minute.failed) == (NOW // 60 * 60, 0, 2)


async def test_an_ordered_claim_takes_only_the_head_while_it_blocks(store: Store) -> None:
    await store.ingest([event(i, ("a",)) for i in range(4)])
    fifo = frozenset({"a"})
    # Asked for ten, an ordered endpoint gets its head alone.
    [head], next_due = await store.claim({"a": 10}, NOW, NOW + 30, ordered=fifo)
    assert head.event_id == "evt_0000" and next_due == {}
    # In flight: nothing behind it, and no due time (the outcome's recording wakes it).
    assert await store.claim({"a": 10}, NOW, NOW + 30, ordered=fifo) == ([], {"a": None})
    await store.record([result(head.id, "a", 1, "pending", next_at=NOW + 60)], NOW, 1e9)
    # Waiting for its retry: still nothing behind it, and the head's due time, though
    # the later ones are due now.
    assert await store.claim({"a": 10}, NOW + 1, NOW + 31, ordered=fifo) == (
        [], {"a": NOW + 60})
    assert await store.blocked_counts(["a"]) == {"a": 3}
    # Cancelled, the head gives way to the next event.
    cancelled = await store.cancel_delivery(head.id, NOW + 2)
    assert cancelled.state == "cancelled"
    with pytest.raises(Conflict, match="cancelled already"):
        await store.cancel_delivery(head.id, NOW + 2)
    [second], _ = await store.claim({"a": 10}, NOW + 2, NOW + 32, ordered=fifo)
    assert second.event_id == "evt_0001"
    assert await store.blocked_counts(["a"]) == {"a": 0}  # on its first attempt
    # A retried earlier delivery goes back to its place, before the later ones.
    await store.record([result(second.id, "a", 1, "succeeded", ok=True, status=200)],
                       NOW + 3, 1e9)
    await store.retry_delivery(head.id, "pending", NOW + 4)
    [again], _ = await store.claim({"a": 10}, NOW + 4, NOW + 34, ordered=fifo)
    assert again.id == head.id
    # Retried while a later one is in flight, it waits: one request at a time, always.
    await store.record([result(again.id, "a", 2, "succeeded", ok=True, status=200)],
                       NOW + 5, 1e9)
    [third], _ = await store.claim({"a": 10}, NOW + 5, NOW + 35, ordered=fifo)
    assert third.event_id == "evt_0002"
    await store.retry_delivery(second.id, "pending", NOW + 6)
    assert await store.claim({"a": 10}, NOW + 6, NOW + 36, ordered=fifo) == ([], {"a": None})
    await store.record([result(third.id, "a", 1, "succeeded", ok=True, status=200)],
                       NOW + 7, 1e9)
    [retried], _ = await store.claim({"a": 10}, NOW + 7, NOW + 37, ordered=fifo)
    assert retried.id == second.id


async def test_record_stores_the_operational_events_it_causes(store: Store) -> None:
    """Both backends: an exhausted delivery's notice becomes an event, with its
    deliveries, in the record transaction, and `due` names who should be woken."""
    await store.ingest([event(1, endpoints=("a",))])
    [claimed], _ = await store.claim({"a": 1}, NOW, NOW + 30)

    def build(notices: list[Notice], now: float) -> list[NewEvent]:
        return [NewEvent(id=f"evt_ops{i}", tenant=n.tenant, type=n.type, idem_key=None,
                         digest="", created_at=now, payload=b"{}", deliveries=(("b", "pending"),))
                for i, n in enumerate(notices)]

    recorded = await store.record([result(claimed.id, "a", 1, "failed")], NOW, 3600,
                                  Reporting(failing_after=5, build=build))
    assert [n.type for n in recorded.notices] == ["relay.delivery.exhausted"]
    assert recorded.due == frozenset({"b"})
    [stored] = [e for e in await store.list_events("default") if e.id == "evt_ops0"]
    assert stored.type == "relay.delivery.exhausted"
    assert [d.endpoint_id for d in await store.deliveries_of("evt_ops0")] == ["b"]
