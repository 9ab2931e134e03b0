"""Malformed input, generated: whatever the body and headers, ingest answers with the
error shape or accepts, never a 5xx, and keeps serving. relay runs as `relay serve`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.serving import ServeProcess, free_port

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
event_types = st.one_of(
    st.text(max_size=140), st.from_regex(r"[a-z]{1,8}(\.[a-z]{1,8}){0,2}", fullmatch=True),
    json_values,
)
events = st.fixed_dictionaries(
    {},
    optional={
        "type": event_types,
        "data": json_values,
        "id": st.one_of(st.text(max_size=300), json_values),
        "tenant": st.one_of(st.just("default"), st.text(max_size=10), json_values),
        "extra": json_values,
    },
)
bodies = st.one_of(
    events.map(lambda e: json.dumps(e).encode()),
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.lists(events, max_size=5).map(lambda e: json.dumps({"events": e}).encode()),
)
header_values = st.from_regex(r"[!-~]([ -~]{0,38}[!-~])?", fullmatch=True)
headers = st.fixed_dictionaries(
    {},
    optional={
        "content-type": st.one_of(st.just("application/json"), header_values),
        "idempotency-key": header_values,
        "authorization": header_values,
    },
)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    port = free_port()
    config = tmp / "relay.toml"
    config.write_text(f'[server]\nlisten = "127.0.0.1:{port}"\n'
                      '[[endpoints]]\nid = "e"\nurl = "https://e.example/"\nenabled = false\n')
    proc = ServeProcess(config, port, tmp)
    asyncio.run(proc.start())
    try:
        with httpx.Client(base_url=proc.url, timeout=10) as http:
            yield http
    finally:
        assert proc.terminate() == 0


@pytest.mark.slow
@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, hdrs=headers, batch=st.booleans())
def test_ingest_never_fails_on_generated_input(client: httpx.Client, body: bytes,
                                               hdrs: dict[str, str], batch: bool) -> None:
    path = "/v1/events/batch" if batch else "/v1/events"
    response = client.post(path, content=body, headers=hdrs)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert set(response.json()["error"]) == {"code", "message", "details"}
    else:
        assert response.status_code in (200, 202)
    assert client.get("/healthz").status_code == 200
