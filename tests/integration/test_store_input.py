"""Defence in depth behind the API's input checks: when PostgreSQL refuses one request's
data (a NUL in text), that request gets a 422 and its neighbours in the same group commit
are stored; the store stays healthy (/readyz) and the database is asked again at once."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from relay.errors import Unprocessable
from relay.storage.postgres import PostgresStore
from relay.types import EndpointSpec, NewEndpoint
from tests.helpers import ENDPOINTS, NOW, event


async def test_data_the_database_refuses_is_the_requests_error(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    await store.open()
    try:
        await store.sync_config_endpoints(ENDPOINTS, NOW, lambda: "whsec_generated")
        good = [event(n) for n in range(5)]
        bad = dataclasses.replace(event(9), idem_key="key\x00")
        results = await asyncio.gather(*(store.ingest([e]) for e in [*good[:3], bad,
                                                                     *good[3:]]),
                                       return_exceptions=True)
        assert isinstance(results[3], Unprocessable), results[3]
        assert "cannot store a value of this request" in results[3].message
        assert [r[0].id for r in results if isinstance(r, list)] == [e.id for e in good]
        assert store.healthy
        with pytest.raises(Unprocessable):
            await store.create_endpoint(
                NewEndpoint("ep_x", "default", "a\x00b", EndpointSpec(url="https://x.example/"),
                            "whsec_x", NOW), None)
        assert store.healthy
        with pytest.raises(Unprocessable):  # a read: the same answer
            await store.get_endpoint("ep\x00")
        with pytest.raises(Unprocessable):
            await store.list_events("default", before="evt_\x00", limit=5)
        assert store.healthy
        assert await store.counts() == {"pending": 10}
    finally:
        await store.close()
