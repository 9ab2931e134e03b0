"""SQLite's schema: the numbered migrations (relay/storage/migrations/*.sql) and running
them, each in a transaction, up to `PRAGMA user_version`."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from relay.storage.base import check_schema
from relay.storage.base import migrations as base_migrations


def migrations() -> list[tuple[int, str]]:
    return base_migrations("")


SCHEMA_VERSION = migrations()[-1][0]


def statements(sql: str) -> list[str]:
    """A migration's statements. Split at the semicolons that end one, as
    sqlite3.complete_statement says: a trigger's body holds semicolons of its own."""
    found, part = [], ""
    for piece in sql.split(";"):
        part += piece + ";"
        if sqlite3.complete_statement(part):
            if part.strip(" \n;"):
                found.append(part)
            part = ""
    if part.strip(" \n;"):  # a last statement without its semicolon: run, not dropped
        found.append(part)
    return found


def migrate(db: sqlite3.Connection, path: Path) -> None:
    """Run the numbered files newer than `PRAGMA user_version`, each in a transaction; a
    database newer than this relay is refused."""
    current = int(db.execute("PRAGMA user_version").fetchone()[0])
    check_schema(str(path), current, SCHEMA_VERSION)
    for version, sql in migrations():
        if version <= current:
            continue
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in statements(sql):
                db.execute(statement)
            db.execute(f"PRAGMA user_version={version}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
