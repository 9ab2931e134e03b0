"""SQLite checkpoints: the WAL copied into the database file off the writer's commit path.

The writer does not checkpoint after its commits (`wal_autocheckpoint=0`), so no commit
waits for the copy of the WAL into the database file and its two fsyncs. A checkpointer
thread with its own connection runs PASSIVE checkpoints (they never block the writer)
when the writer is idle or the WAL file passes its bound (`_WAL_CHECKPOINT_BYTES`, less
when free space is short); only if steady writes kept the WAL from starting over past
four times that does the writer run a RESTART between two transactions (`tend`). A
checkpoint that fails (a full disk) is tried again on its own schedule, with backoff, not
after the next commit (no commit can succeed while the WAL cannot grow). The
checkpointer also watches the free space on the database's filesystem.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from relay.storage.base import Observer

# The WAL starts over (from its first byte) only after a checkpoint copied all of it, and
# the first commit after that fsyncs the WAL header, even with synchronous=NORMAL: with
# sync = "normal" the one fsync left on the commit path, holding every request that
# arrives meanwhile. So checkpoints run when the writer is idle (the fsync then falls on
# the first request after the pause), and under steady writes only once the WAL passes
# _WAL_CHECKPOINT_BYTES: every few seconds at a steady 500 single-event requests/s (each
# commit writes whole pages, tens of KB). The writer's journal_size_limit trims the file
# back to that size when it starts over, so the file's size says how much the WAL holds.
# The WAL takes disk space the database file needs for the checkpoint's copy: the bound
# is also at most a quarter of the free space, and with less free than
# [storage] min_free_space, any write is checkpointed at the next look.
_WAL_CHECKPOINT_BYTES = 64 << 20
_IDLE_SECONDS = 1.0  # no commit for this long: the writer is idle, checkpoint now
_CHECKPOINT_POLL = 0.1  # seconds between looks
_RETRY_MAX = 2.0  # seconds at most between tries of a failing checkpoint (doubling)
_SPACE_EVERY = 1.0  # seconds between looks at the filesystem's free space
_CATCH_UP_ROUNDS = 20  # PASSIVE checkpoints in a row, chasing the writer
_RESTART_WAIT_MS = 100  # how long a RESTART waits for readers to leave the WAL


class Checkpointer:
    """The checkpointer thread of one database file, and what the writer's connection
    does for it between transactions (`tend`). Free space under `min_free` is reported,
    on the loop, by `on_space(True, free)` once, and by `on_space(False, free)` when it is
    back above."""

    def __init__(self, path: Path, *, observer: Observer | None, min_free: int = 0,
                 on_space: Callable[[bool, int], None] | None = None) -> None:
        self.path = path
        self.free: int | None = None  # bytes free on the database's filesystem, last look
        self._min_free = min_free
        self._on_space = on_space
        self._space_low = False  # the checkpointer's view; the store keeps the loop's
        self._observer = observer
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._restart_due = False  # set by the checkpointer, cleared by the writer
        self._wal_bound = _WAL_CHECKPOINT_BYTES  # set by the checkpointer; the writer's
        self._size_limit = _WAL_CHECKPOINT_BYTES  # journal_size_limit follows it
        self._commits = 0  # commits so far, and the monotonic time of the last one: the
        self._last_commit = 0.0  # checkpointer's view of the writer (plain reads, GIL)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the thread (the writer has opened and migrated the database)."""
        self._stop.clear()
        self._look_at_space(loop)
        self._thread = threading.Thread(
            target=self._loop, name="relay-sqlite-checkpointer", daemon=True,
            args=(sqlite3.connect(self.path, isolation_level=None, check_same_thread=False),
                  loop),
        )
        self._thread.start()

    async def stop(self) -> None:
        """Stop the thread; safe to call twice, even at once."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            await asyncio.shield(asyncio.to_thread(thread.join))

    # --- on the writer's thread --------------------------------------------------------

    def committed(self) -> None:
        """The writer committed: counted, and timed for the idle check."""
        self._commits += 1
        self._last_commit = time.monotonic()

    def opened(self, db: sqlite3.Connection) -> None:
        """The writer's connection opened (before the thread starts): its
        journal_size_limit is the WAL bound (the WAL is trimmed to it when it starts
        over), and no RESTART is asked for yet."""
        self._restart_due = False
        self._size_limit = self._wal_bound
        db.execute(f"PRAGMA journal_size_limit={self._size_limit}")

    def tend(self, db: sqlite3.Connection) -> None:
        """On the writer's connection, between transactions: run the RESTART asked for,
        and keep its journal_size_limit at the WAL bound."""
        if self._restart_due:
            self._restart_due = False
            self._restart_wal(db)
        if self._size_limit != self._wal_bound:
            self._size_limit = self._wal_bound
            db.execute(f"PRAGMA journal_size_limit={self._size_limit}")

    def _restart_wal(self, db: sqlite3.Connection) -> None:
        """A RESTART checkpoint (it copies what the last PASSIVE left, little, and makes
        the next commit write the WAL from its start). Commits wait for it: the price of
        a bounded WAL, paid once per four WAL bounds of writes that never paused. It waits
        for readers `_RESTART_WAIT_MS` at most; if they stay, the checkpointer asks
        again."""
        db.execute(f"PRAGMA busy_timeout={_RESTART_WAIT_MS}")
        try:
            self._checkpoint(db, "RESTART")
        except sqlite3.Error:
            pass  # the checkpointer asks again while the WAL stays large
        finally:
            db.execute("PRAGMA busy_timeout=5000")

    # --- on the checkpointer's thread ----------------------------------------------------

    def _loop(self, db: sqlite3.Connection, loop: asyncio.AbstractEventLoop) -> None:
        """Copy the WAL into the database file when the writer is idle or the WAL is large
        (see `_WAL_CHECKPOINT_BYTES`). A failed checkpoint (a full disk, an I/O error) is
        tried again after a backoff of its own, up to `_RETRY_MAX`; the WAL keeps every
        commit meanwhile."""
        wal = Path(f"{self.path}-wal")
        copied_at = self._commits  # the commit count at the start of the last catch-up
        retry_at: float | None = None  # after a failed checkpoint: when to try again
        backoff = _CHECKPOINT_POLL
        space_at = time.monotonic()
        try:
            db.execute("PRAGMA synchronous=NORMAL")  # fsync the WAL, then the database file
            page = int(db.execute("PRAGMA page_size").fetchone()[0])
            while not self._stop.wait(_CHECKPOINT_POLL):
                now = time.monotonic()
                if now - space_at >= _SPACE_EVERY:
                    space_at = now
                    self._look_at_space(loop)
                commits = self._commits
                self._wal_bound = bound = self._bound()
                try:
                    size = wal.stat().st_size
                except OSError:
                    size = 0
                quiet = self._space_low or now - self._last_commit >= _IDLE_SECONDS
                if retry_at is not None:
                    due = now >= retry_at
                else:
                    due = (commits != copied_at and quiet) or size > bound
                try:
                    if due:
                        self._catch_up(db, page, 4 * bound)
                        copied_at, retry_at, backoff = commits, None, _CHECKPOINT_POLL
                except (OSError, sqlite3.Error):
                    retry_at = now + backoff
                    backoff = min(2 * backoff, _RETRY_MAX)
        finally:
            db.close()

    def _bound(self) -> int:
        """The WAL size that calls for a checkpoint even while the writer is busy, and
        the writer's journal_size_limit: at most a quarter of the free space, in MB."""
        if self.free is None:
            return _WAL_CHECKPOINT_BYTES
        return min(_WAL_CHECKPOINT_BYTES, max(1 << 20, self.free // 4 >> 20 << 20))

    def _look_at_space(self, loop: asyncio.AbstractEventLoop) -> None:
        """Note the free space on the database's filesystem; tell the loop when it falls
        under [storage] min_free_space, and when it is back above it."""
        try:
            vfs = os.statvfs(self.path.parent)
        except OSError:
            return
        self.free = free = vfs.f_bavail * vfs.f_frsize
        low = free < self._min_free
        if low != self._space_low:
            self._space_low = low
            if self._on_space is not None:
                loop.call_soon_threadsafe(self._on_space, low, free)

    def _catch_up(self, db: sqlite3.Connection, page: int, restart_bytes: int) -> None:
        """PASSIVE checkpoints back to back, each copying what was committed during the
        last one, until one copies everything with no commit meanwhile (the next commit
        then writes the WAL from its start) or the WAL started over. Writes that never
        pause that long keep the WAL growing: past `restart_bytes` the writer is asked
        for a RESTART between two transactions."""
        last = -1
        for _ in range(_CATCH_UP_ROUNDS):
            _busy, frames, copied = self._checkpoint(db, "PASSIVE")
            if frames < last or frames == last == copied:
                return
            last = frames
        if last * page > restart_bytes:
            self._restart_due = True

    def _checkpoint(self, db: sqlite3.Connection, mode: str) -> tuple[int, int, int]:
        """One checkpoint: (busy, frames in the WAL, frames copied), its time observed."""
        began = time.perf_counter()
        busy, frames, copied = db.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        if self._observer is not None:
            self._observer.checkpoint(mode.lower(), time.perf_counter() - began)
        return int(busy), int(frames), int(copied)
