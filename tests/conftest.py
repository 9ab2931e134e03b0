"""Fixtures shared by every test, and the test tiers. The helpers they use live in
tests/serving.py, tests/helpers.py, tests/receiver.py and tests/postgres.py; test modules
import from those, never from a conftest.

Tiers (markers, registered in pyproject.toml): `postgres` for every test that needs a
PostgreSQL server (set here from its fixtures and parameters, or marked in its module where
it makes its own database), `browser` for every test in tests/browser (set here), `slow`
for every test in tests/acceptance (each starts `relay` processes; set here) and the others
that take a second or more (marked in their modules), and `fast` for all the rest:
`pytest -m fast` is the quick loop, a bare `pytest` runs every tier.
"""

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


BROWSER = Path(__file__).parent / "browser"
ACCEPTANCE = Path(__file__).parent / "acceptance"
SLOW_TIERS = ("slow", "postgres", "browser")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `postgres` every test that uses a scratch database (`pg_url`) or runs with a
    "postgres" parameter (`store`, `each_backend`, `config_on`), `browser` every test in
    tests/browser, `slow` every one in tests/acceptance, and `fast` every test none of
    the other tiers claims."""
    for item in items:
        params = getattr(item, "callspec", None)
        if "pg_url" in getattr(item, "fixturenames", ()) or (
                params is not None and "postgres" in params.params.values()):
            item.add_marker(pytest.mark.postgres)
        if item.path.is_relative_to(BROWSER):
            item.add_marker(pytest.mark.browser)
        if item.path.is_relative_to(ACCEPTANCE):
            item.add_marker(pytest.mark.slow)
        if not any(item.get_closest_marker(tier) for tier in SLOW_TIERS):
            item.add_marker(pytest.mark.fast)
