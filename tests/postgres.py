"""PostgreSQL for tests: a scratch database per test on the server RELAY_TEST_POSTGRES names.

Default: postgresql://postgres@127.0.0.1:5432/test. When nothing answers there, tests that
need PostgreSQL skip with the reason, unless RELAY_TEST_POSTGRES is set (CI sets it):
then they fail, so a broken setup is never mistaken for a green run.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

ADMIN_URL = os.environ.get("RELAY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRED = "RELAY_TEST_POSTGRES" in os.environ


async def _admin() -> asyncpg.Connection[asyncpg.Record]:
    try:
        return await asyncpg.connect(ADMIN_URL, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        if REQUIRED:
            raise AssertionError(f"RELAY_TEST_POSTGRES={ADMIN_URL} does not answer: {exc}") \
                from exc
        pytest.skip(f"no PostgreSQL at {ADMIN_URL} ({exc}); set RELAY_TEST_POSTGRES")


def url_of(database: str) -> str:
    return urlunsplit(urlsplit(ADMIN_URL)._replace(path="/" + database))


async def terminate(database: str) -> int:
    """Cut every connection to `database` (as a restart of the server would, for this
    database only: other tests share the server)."""
    admin = await _admin()
    try:
        return len(await admin.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()", database))
    finally:
        await admin.close()


async def scratch_database() -> AsyncIterator[str]:
    """A new empty database's URL; dropped afterwards (its connections cut)."""
    name = f"relay_t_{secrets.token_hex(6)}"
    admin = await _admin()
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        try:
            yield url_of(name)
        finally:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()
