"""Fixtures shared by every test. The helpers they use live in tests/serving.py,
tests/helpers.py, tests/receiver.py and tests/postgres.py; test modules import from those,
never from a conftest."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from relay import config as cfgmod
from relay.storage.base import Store
from tests.helpers import each_backend, with_endpoints
from tests.postgres import scratch_database
from tests.serving import config_data


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., cfgmod.Loaded]:
    def make(env: dict[str, str] | None = None, **sections: Any) -> cfgmod.Loaded:
        return cfgmod.validate(config_data(tmp_path, **sections), env or {})

    return make


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A scratch PostgreSQL database's URL (tests/postgres.py), dropped afterwards."""
    async for url in scratch_database():
        yield url


@pytest.fixture
def prepare_store() -> Callable[[Store], Awaitable[Store]]:
    """How `store` readies a new store; a module that needs another start overrides it."""
    return with_endpoints


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path,
                prepare_store: Callable[[Store], Awaitable[Store]]) -> AsyncIterator[Store]:
    """The contract suites' store, once per backend (`each_backend`)."""
    async for s in each_backend(request.param, tmp_path, prepare_store):
        yield s

