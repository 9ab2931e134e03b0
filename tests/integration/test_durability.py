"""What waits for the disk, on a real SQLite file: the sync mode of durable commits, WAL
checkpoints on their own thread, purges in their own transaction, the commit histogram."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from relay import config as cfgmod
from relay.storage.sqlite import SQLiteStore, Sync, checkpoint
from relay.types import NewEvent
from tests.serving import eventually, running

NOW = 1_700_000_000.0


class Seen:
    """An Observer that keeps what the store reported."""

    def __init__(self) -> None:
        self.commits: list[str] = []
        self.checkpoints: list[str] = []

    def commit(self, kind: str, seconds: float) -> None:
        self.commits.append(kind)

    def checkpoint(self, mode: str, seconds: float) -> None:
        self.checkpoints.append(mode)


def event(n: int, at: float = NOW) -> NewEvent:
    return NewEvent(id=f"evt_{n:06d}", tenant="default", type="t.x", idem_key=None,
                    digest="", created_at=at, payload=b"x" * 2000, deliveries=())


class Ingester:
    """Ingests numbered events into a store, one commit each."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self.wal = Path(f"{store.path}-wal")
        self.n = 0

    async def one(self) -> None:
        self.n += 1
        await self.store.ingest([event(self.n)])

    async def until_wal_exceeds(self, size: int) -> None:
        while not self.wal.exists() or self.wal.stat().st_size <= size:
            await self.one()

    async def wal_trimmed_to(self, size: int) -> bool:
        """One more commit, then whether the WAL file is back to `size`: the commit after
        a checkpoint that copied every frame writes the WAL from its start, and its
        journal_size_limit trims the file."""
        await self.one()
        return self.wal.stat().st_size <= size


@pytest.mark.parametrize(("sync", "level"), [("full", 2), ("normal", 1)])
async def test_ingest_commits_with_the_chosen_sync_level(
    tmp_path: Path, sync: Sync, level: int,
) -> None:
    store = SQLiteStore(tmp_path / "relay.db", sync=sync)
    await store.open()
    try:
        await store.ingest([event(1)])
        assert await store.pragma("synchronous") == [(level,)]  # FULL = 2, NORMAL = 1
        assert await store.pragma("wal_autocheckpoint") == [(0,)]  # the checkpointer's job
    finally:
        await store.close()


@pytest.mark.slow
async def test_an_idle_writer_gets_its_wal_copied(tmp_path: Path) -> None:
    seen = Seen()
    store = SQLiteStore(tmp_path / "relay.db", sync="normal", observer=seen)
    await store.open()
    events = Ingester(store)
    try:
        for _ in range(20):
            await events.one()
        before = store.path.stat().st_size  # the new pages are in the WAL only
        await eventually(lambda: "passive" in seen.checkpoints, 10, "a checkpoint when idle")
        await eventually(lambda: store.path.stat().st_size > before, 5, "pages copied")
        assert "restart" not in seen.checkpoints
    finally:
        await store.close()


async def test_a_large_wal_is_copied_under_steady_writes_and_starts_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    limit = 256 << 10
    monkeypatch.setattr(checkpoint, "_WAL_CHECKPOINT_BYTES", limit)
    seen = Seen()
    store = SQLiteStore(tmp_path / "relay.db", sync="normal", observer=seen)
    await store.open()
    events = Ingester(store)
    try:
        await events.until_wal_exceeds(limit)
        await eventually(lambda: "passive" in seen.checkpoints, 10, "a passive checkpoint")
        await eventually(lambda: events.wal_trimmed_to(limit), 10, "the WAL to start over")
        assert "restart" not in seen.checkpoints
    finally:
        await store.close()
    with sqlite3.connect(store.path) as db:
        assert db.execute("SELECT COUNT(*) FROM events").fetchone() == (events.n,)


async def test_a_wal_that_cannot_start_over_gets_a_restart_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A reader holding an old snapshot keeps PASSIVE checkpoints from copying the whole
    WAL; past the restart size (four times the checkpoint size) the writer runs RESTART
    between two transactions, which succeeds once the reader is gone, and the WAL starts
    over."""
    monkeypatch.setattr(checkpoint, "_WAL_CHECKPOINT_BYTES", 64 << 10)
    seen = Seen()
    store = SQLiteStore(tmp_path / "relay.db", sync="normal", observer=seen)
    await store.open()
    reader = sqlite3.connect(store.path, isolation_level=None)
    events = Ingester(store)

    async def restarted() -> bool:
        await events.one()  # the writer runs a RESTART it was asked for before a batch
        return "restart" in seen.checkpoints

    try:
        await events.one()
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM events").fetchone()  # holds this snapshot
        await events.until_wal_exceeds(512 << 10)
        await eventually(restarted, 10, "a restart checkpoint")
        assert not await events.wal_trimmed_to(64 << 10)  # the reader still holds it
        reader.execute("COMMIT")
        await eventually(lambda: events.wal_trimmed_to(64 << 10), 10, "the WAL to start over")
    finally:
        reader.close()
        await store.close()


async def test_a_purge_runs_in_a_transaction_of_its_own(tmp_path: Path) -> None:
    """Queued behind a blocked commit, a purge and an ingest still commit separately: the
    ingest never waits for the purge's work inside one transaction."""
    seen = Seen()
    store = SQLiteStore(tmp_path / "relay.db", observer=seen)
    await store.open()
    blocker = sqlite3.connect(store.path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # the writer's next transaction waits for it
        first = asyncio.create_task(store.ingest([event(1)]))
        await asyncio.sleep(0)  # the task queues its operation
        await eventually(lambda: store._writer.queued() == 0, 5,
                         "the writer to take the first ingest")
        purge = asyncio.create_task(store.purge(NOW + 1, 100))
        second = asyncio.create_task(store.ingest([event(2)]))
        await eventually(lambda: store._writer.queued() == 2, 5, "purge and ingest queued")
        blocker.execute("COMMIT")
        await asyncio.gather(first, purge, second)
        assert seen.commits == ["durable", "other", "durable"]
    finally:
        blocker.close()
        await store.close()


@pytest.mark.parametrize(("sync", "commits"), [
    ("full", ["durable", "other", "durable"]),  # the quick one first, on its own
    ("normal", ["durable", "durable"]),  # nothing fsyncs: one transaction for both
])
async def test_with_full_sync_a_claim_never_waits_for_a_queued_fsync(
    tmp_path: Path, sync: Sync, commits: list[str],
) -> None:
    """Queued behind a blocked commit, an ingest and then an operation that needs no
    fsync (here reclaim_expired, like claims and outcomes): with sync = "full" the latter
    commits first in a transaction of its own, so it is answered before the ingest's
    fsync."""
    seen = Seen()
    store = SQLiteStore(tmp_path / "relay.db", sync=sync, observer=seen)
    await store.open()
    blocker = sqlite3.connect(store.path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        first = asyncio.create_task(store.ingest([event(1)]))
        await asyncio.sleep(0)  # the task queues its operation
        await eventually(lambda: store._writer.queued() == 0, 5,
                         "the writer to take the first ingest")
        second = asyncio.create_task(store.ingest([event(2)]))
        await eventually(lambda: store._writer.queued() == 1, 5, "the second ingest queued")
        quick = asyncio.create_task(store.reclaim_expired(NOW))
        await eventually(lambda: store._writer.queued() == 2, 5, "the quick one queued")
        blocker.execute("COMMIT")
        await asyncio.gather(first, second, quick)
        assert seen.commits == commits
    finally:
        blocker.close()
        await store.close()


async def test_metrics_show_the_commit_histogram_after_ingest(
    make_config: Callable[..., cfgmod.Loaded],
) -> None:
    async with running(make_config()) as r:
        for _ in range(3):
            assert (await r.send()).status_code == 202
        text = (await r.client.get("/metrics")).text
    count = re.search(r'^relay_store_commit_seconds_count\{kind="durable"\} (\S+)$', text, re.M)
    assert count is not None and float(count.group(1)) >= 3
    # Buckets fine enough to tell a 0.3 ms fsync from a 100 ms one.
    assert 'relay_store_commit_seconds_bucket{kind="durable",le="0.0005"}' in text
    assert 'relay_store_commit_seconds_bucket{kind="durable",le="0.1"}' in text
    assert "# TYPE relay_store_checkpoint_seconds histogram" in text


async def test_a_transaction_left_open_on_the_writer_does_not_stop_writes(
    tmp_path: Path,
) -> None:
    """A COMMIT that failed (SQLITE_FULL) and a ROLLBACK that failed after it leave the
    writer's connection in a transaction: it is rolled back before the next batch, which
    then commits, instead of every later BEGIN failing until a restart."""
    store = SQLiteStore(tmp_path / "relay.db")
    await store.open()
    try:
        def leave_open(db: sqlite3.Connection, args: list[object]) -> list[object]:
            db.execute("BEGIN IMMEDIATE")
            return [None]

        await store._writer.submit(leave_open, None, bare=True)
        await store.ingest([event(1)])
        await store.ingest([event(2), event(3)])
        await store.record([], NOW, 3600.0)  # a BEGIN ... COMMIT batch
    finally:
        await store.close()
    with sqlite3.connect(store.path) as db:
        ids = [r[0] for r in db.execute("SELECT id FROM events ORDER BY id")]
    assert ids == ["evt_000001", "evt_000002", "evt_000003"]
