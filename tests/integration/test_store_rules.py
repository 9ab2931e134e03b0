"""The storage rules (relay.storage.rules) as both backends apply them: a real SQLite
file and a real PostgreSQL database answer each case alike."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from relay.errors import Conflict, NotFound
from relay.storage.base import Store
from relay.types import EndpointSpec, NewEndpoint
from tests.helpers import NOW


async def _opened(s: Store) -> Store:
    await s.open()
    return s


@pytest.fixture
def prepare_store() -> Callable[[Store], Awaitable[Store]]:
    """The shared `store`, opened with no endpoints."""
    return _opened


def _endpoint(endpoint_id: str, url: str = "https://x.example/") -> NewEndpoint:
    return NewEndpoint(endpoint_id, "default", endpoint_id, EndpointSpec(url=url), "whsec_x", NOW)


async def test_an_endpoint_id_in_use_is_a_conflict_and_the_store_stays_healthy(
        store: Store) -> None:
    await store.create_endpoint(_endpoint("ep"), None)
    with pytest.raises(Conflict, match="endpoint id 'ep' is already used"):
        await store.create_endpoint(_endpoint("ep", "https://y.example/"), None)
    assert store.healthy
    row = await store.get_endpoint("ep")
    assert row is not None and row.spec == EndpointSpec(url="https://x.example/")
    # a deleted endpoint's id stays taken: it names its deliveries' history
    await store.delete_endpoint("ep", NOW)
    with pytest.raises(Conflict, match="endpoint id 'ep' is already used"):
        await store.create_endpoint(_endpoint("ep"), None)
    assert store.healthy
    assert (await store.create_endpoint(_endpoint("other"), None)).id == "other"


async def test_rotations_at_once_each_keep_the_secret_before_them(store: Store) -> None:
    await store.create_endpoint(_endpoint("ep"), None)
    first, second = await asyncio.gather(
        store.rotate_secret("ep", "whsec_1", NOW + 60, NOW),
        store.rotate_secret("ep", "whsec_2", NOW + 60, NOW),
    )
    # whichever ran first (PostgreSQL may commit them on two connections), the second
    # keeps the first's secret, not the one both started from
    earlier, later = sorted((first, second), key=lambda r: r.prev_secret != "whsec_x")
    assert (earlier.prev_secret, later.prev_secret) == ("whsec_x", earlier.secret)
    final = await store.get_endpoint("ep")
    assert final is not None
    assert (final.secret, final.prev_secret, final.prev_secret_until) == (
        later.secret, earlier.secret, NOW + 60)
    stopped = await store.rotate_secret("ep", "whsec_3", None, NOW)
    assert (stopped.secret, stopped.prev_secret, stopped.prev_secret_until) == (
        "whsec_3", None, None)
    with pytest.raises(NotFound, match="no webhook 'gone'"):
        await store.rotate_secret("gone", "whsec_4", None, NOW)
