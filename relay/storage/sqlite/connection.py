"""SQLite files: the writing connection's pragmas, the lock file, the files' mode, backup."""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from pathlib import Path

from relay.errors import StorageError
from relay.storage.sqlite.schema import migrate


def create_private(path: Path) -> None:
    """Create `path` empty with mode 0600, whatever the umask, unless it exists: the
    database holds signing secrets, and SQLite gives the -wal and -shm files it creates
    the database file's mode. An existing file keeps the mode its owner gave it."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def connect(path: Path) -> sqlite3.Connection:
    """The writing connection: WAL, no auto-checkpoint (the checkpointer's job), migrated.
    Its journal_size_limit is the checkpointer's (Checkpointer.opened)."""
    create_private(path)
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=5000")
        db.execute("PRAGMA wal_autocheckpoint=0")  # the checkpointer thread's job
        migrate(db, path)
    except BaseException:
        db.close()
        raise
    return db


def take_lock(path: Path) -> int:
    """Lock `<path>.lock` for this process (its pid written in it); the descriptor holds
    the lock until closed. StorageError naming the holder if another process has it."""
    lock_path = f"{path}.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise StorageError(
            f"database {path} is in use by another relay process (pid {holder}); "
            "stop it first, or give this one another [storage] path"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def backup(source: Path, dest: Path) -> int:
    """Copy a database, live or not, with SQLite's online backup API: a consistent
    snapshot while `relay serve` keeps writing. Written beside `dest` and renamed, so a
    failed backup never leaves a partial file under that name. Returns the events copied."""
    if not source.exists():
        raise StorageError(f"no database at {source}")
    partial = dest.with_name(dest.name + ".partial")
    partial.unlink(missing_ok=True)  # left by a backup that was killed
    create_private(partial)
    try:
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        try:
            dst = sqlite3.connect(partial)
            try:
                src.backup(dst)
                [(events,)] = dst.execute("SELECT COUNT(*) FROM events").fetchall()
                dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            finally:
                dst.close()
        finally:
            src.close()
        os.replace(partial, dest)
    except sqlite3.Error as exc:
        partial.unlink(missing_ok=True)
        raise StorageError(f"backup of {source} failed: {exc}") from exc
    return int(events)
