"""The durable queue: the Store contract (base.py) and its backends.

`create_store` is the one place a backend is chosen; nothing outside relay.storage
imports a backend.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from relay.config import StorageConfig
from relay.errors import StorageError
from relay.storage.base import Observer, Store


def create_store(config: StorageConfig, env: Mapping[str, str] | None = None, *,
                 exclusive: bool = True, observer: Observer | None = None,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> Store:
    """The store `config` names, not yet opened: PostgreSQL when it gives `url` or
    `url_env`, else SQLite at `path`. `exclusive=False` opens a SQLite database another
    process holds (read-mostly CLI commands); PostgreSQL is always shared. `observer`
    receives the commit (and SQLite checkpoint) times /metrics shows; `clock` (the wall
    clock) and `monotonic` are those of PostgreSQL's heartbeat, the caller's own."""
    url = config.database_url(os.environ if env is None else env)
    if url is not None:
        from relay.storage.postgres import PostgresStore

        return PostgresStore(url, sync=config.sync, observer=observer, timeout=config.timeout,
                             clock=clock, monotonic=monotonic)
    from relay.storage.sqlite import SQLiteStore

    return SQLiteStore(config.path, lock=exclusive, sync=config.sync, observer=observer,
                       min_free_space=config.min_free_space)


def backup(config: StorageConfig, dest: Path) -> int:
    """Copy a SQLite database, live or not, to `dest` (events copied). PostgreSQL has its
    own tool for that, which sees the whole cluster's writes consistently: pg_dump."""
    if config.url is not None or config.url_env is not None:
        raise StorageError(
            "the database is PostgreSQL: back it up with pg_dump (README, Backup)")
    from relay.storage.sqlite import backup as sqlite_backup

    return sqlite_backup(Path(config.path), dest)


__all__ = ["Store", "backup", "create_store"]
