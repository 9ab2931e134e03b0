"""`relay migrate-storage`: copy a SQLite database into an empty PostgreSQL database.

Everything is copied as it is, ids included (deliveries keep their dlv_ references):
endpoints with their secrets and health, events, deliveries in every state, attempts,
the keys relay made for itself (the console's session key), the console's sessions,
the tenants, API keys and event types created through the API, and the answers kept for
/api/v1's idempotency keys.
The copy runs in one PostgreSQL transaction, so a failure leaves the target empty. The
SQLite file is locked like `relay serve` locks it (stop relay first). Deliveries caught
`delivering` keep their lease: once it has passed, a relay on PostgreSQL sends them again
with an `interrupted` attempt, as a restart on SQLite would.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from relay.errors import StorageError
from relay.storage.postgres.connection import DRIVER_ERRORS, driver_error, open_pool, redact
from relay.storage.sqlite import SQLiteStore

_CHUNK = 5_000  # rows per COPY
# table -> its columns, in both schemas; `flags` are SQLite 0/1 integers, booleans here.
_TABLES: dict[str, tuple[str, ...]] = {
    "endpoints": (
        "id", "tenant", "source", "name", "spec", "secret", "prev_secret",
        "prev_secret_until", "is_active", "is_paused", "disable_reason", "created_at",
        "updated_at", "deleted_at", "last_delivery_at", "last_delivery_status",
        "consecutive_failures", "failing_since", "uid", "metadata",
    ),
    "events": ("seq", "id", "tenant", "type", "idem_key", "digest", "created_at",
               "n_deliveries", "payload", "channels"),
    "deliveries": ("id", "event_id", "endpoint_id", "state", "attempts", "next_at",
                   "lease_until", "created_at", "updated_at", "last_status", "last_error",
                   "manual"),
    "attempts": ("id", "delivery_id", "n", "started_at", "duration_ms", "request_headers",
                 "status", "response_headers", "response_body", "error"),
    "secret_keys": ("name", "key", "created_at"),  # the console's session signing key
    "sessions": ("id", "kind", "subject", "created_at", "last_seen_at", "expires_at"),
    "tenants": ("id", "name", "metadata", "max_webhooks", "webhooks_enabled", "uid",
                "throttle_rate", "created_at", "updated_at"),
    "api_keys": ("id", "name", "sha256", "scopes", "tenant", "expires_at", "created_at"),
    "event_types": ("name", "description", "sample", "schema", "deprecated", "archived",
                    "enforced", "created_at", "updated_at"),
    "idempotency": ("owner", "key", "digest", "status", "body", "created_at"),
}
_FLAGS = {"is_active", "is_paused", "manual", "webhooks_enabled", "deprecated", "archived",
          "enforced"}
_SEQUENCES = {"events": "seq", "deliveries": "id", "attempts": "id"}

Progress = Callable[[str, int], None]  # (table, rows just copied)


def count_rows(source: Path) -> dict[str, int]:
    """Rows per table to copy (for the progress bar)."""
    db = _read_only(source)
    try:
        return {t: int(db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]) for t in _TABLES}
    finally:
        db.close()


def _read_only(source: Path) -> sqlite3.Connection:
    if not source.exists():
        raise StorageError(f"no database at {source}")
    try:
        return sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open {source}: {exc}") from exc


async def copy_to_postgres(source: Path, url: str, progress: Progress) -> dict[str, int]:
    """Copy the SQLite database at `source` into the empty PostgreSQL database at `url`;
    returns the rows copied per table. Refuses a target that already holds endpoints or
    events, and a source that a running relay holds."""
    if not source.exists():
        raise StorageError(f"no database at {source}")
    holder = SQLiteStore(source)  # takes the lock and brings the schema up to date
    await holder.open()
    try:
        # A batch copied and one long COMMIT: no client waits, so serve's deadline is not it.
        pool = await open_pool(url, "relay migrate-storage", timeout=60.0)
        try:
            async with pool.acquire() as con:
                found = await con.fetchval(
                    "SELECT (SELECT count(*) FROM endpoints) + (SELECT count(*) FROM events)")
                if found:
                    raise StorageError(
                        f"{redact(url)} already holds relay data ({found} endpoints and "
                        "events); migrate-storage copies only into an empty database")
                db = _read_only(source)
                try:
                    async with con.transaction():
                        copied = {table: await _copy(db, con, table, progress)
                                  for table in _TABLES}
                        for table, column in _SEQUENCES.items():
                            await con.execute(
                                f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                                f"(SELECT COALESCE(max({column}), 0) + 1 FROM {table}), false)")
                        await con.execute(
                            "UPDATE endpoint_changes SET version = version + 1; "
                            "UPDATE directory_changes SET version = version + 1")
                finally:
                    db.close()
        except DRIVER_ERRORS as exc:
            raise driver_error(f"copying into {redact(url)}", exc) from exc
        finally:
            await pool.close()
    finally:
        await holder.close()
    return copied


async def _copy(db: sqlite3.Connection, con: Any, table: str, progress: Progress) -> int:
    columns = _TABLES[table]
    flags = [i for i, c in enumerate(columns) if c in _FLAGS]
    cursor = db.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY rowid")
    total = 0
    while rows := cursor.fetchmany(_CHUNK):
        if flags:
            rows = [tuple(bool(v) if i in flags else v for i, v in enumerate(row))
                    for row in rows]
        await con.copy_records_to_table(table, records=rows, columns=list(columns))
        total += len(rows)
        progress(table, len(rows))
    return total
