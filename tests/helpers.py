"""Helpers shared by test modules (fixtures live in conftest.py; relay served for a test
in tests/serving.py). Test modules import from here, never from each other or from a
conftest."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from relay import config as cfgmod
from relay.storage.base import Store
from relay.storage.postgres import PostgresStore
from relay.storage.sqlite import SQLiteStore
from relay.types import AttemptResult, ConfigEndpoint, EndpointSpec, NewEvent, State
from tests.postgres import scratch_database
from tests.receiver import Receiver, serve_asgi
from tests.serving import Running, config_data, running

if TYPE_CHECKING:
    from playwright.async_api import Page

# --- the store --------------------------------------------------------------------

NOW = 4_102_444_800.0  # the store tests' clock (2100): PostgreSQL's heartbeat reclaims leases
# that expired by time.time(), so leases from NOW on must lie ahead of the real clock
# The config endpoints every store test starts with: one generated secret, one given.
ENDPOINTS = [ConfigEndpoint("a", "default", EndpointSpec(url="https://a.example/"), None),
             ConfigEndpoint("b", "default", EndpointSpec(url="https://b.example/"), "given-secret")]


async def each_backend(backend: str, tmp_path: Path,
                       prepare: Callable[[Store], Awaitable[Store]]) -> AsyncIterator[Store]:
    """The contract suites' store: `backend` "sqlite" (a file in tmp_path) or "postgres"
    (a scratch database), opened and prepared by `prepare`, closed afterwards."""
    if backend == "sqlite":
        store = await prepare(SQLiteStore(tmp_path / "relay.db"))
        yield store
        await store.close()
        return
    async for url in scratch_database():
        store = await prepare(PostgresStore(url))
        yield store
        await store.close()


async def with_endpoints(store: Store) -> Store:
    """The `store` fixture's preparation unless a module overrides `prepare_store`:
    opened, with the config endpoints ENDPOINTS."""
    await store.open()
    await store.sync_config_endpoints(ENDPOINTS, NOW, lambda: "whsec_generated")
    return store


@asynccontextmanager
async def config_on(backend: str, tmp_path: Path, **sections: Any
                    ) -> AsyncIterator[cfgmod.Loaded]:
    """A test config (as `make_config` makes) whose store is `backend`: "sqlite" (a file in
    tmp_path) or "postgres" (a scratch database, dropped afterwards)."""
    data = config_data(tmp_path, **sections)
    if backend == "sqlite":
        yield cfgmod.validate(data, {})
        return
    async for url in scratch_database():
        yield cfgmod.validate({**data, "storage": {"url": url}}, {})


def event(n: int, endpoints: tuple[str, ...] = ("a", "b"), key: str | None = None,
          digest: str = "d", state: State = "pending", at: float = NOW) -> NewEvent:
    """Event number `n` for the store, with a delivery per endpoint in `state`."""
    return NewEvent(
        id=f"evt_{n:04d}", tenant="default", type="t.x", idem_key=key, digest=digest,
        created_at=at, payload=b'{"n":%d}' % n,
        deliveries=tuple((e, state) for e in endpoints),
    )


def result(delivery_id: int, endpoint: str, attempt: int, state: State, *, ok: bool = False,
           status: int | None = 500, next_at: float | None = None, gone: bool = False,
           started_at: float = NOW) -> AttemptResult:
    """A finished attempt as the scheduler hands it to the store."""
    return AttemptResult(
        delivery_id=delivery_id, endpoint_id=endpoint, attempt=attempt,
        started_at=started_at, duration_ms=1.5, request_headers={"webhook-id": "x"},
        status=status, response_headers={"a": "b"}, response_body=b"body",
        error=None if ok else "boom", state=state, next_at=next_at, success=ok, gone=gone,
    )


# --- the scheduler ----------------------------------------------------------------

def endpoint(id_: str, url: str, **extra: Any) -> dict[str, Any]:
    """An `[[endpoints]]` entry as `make_config` takes it."""
    return {"id": id_, "url": url, **extra}


@dataclass
class FakeClock:
    """A clock that moves only when the test sets `now` (`Scheduler(clock=...)`)."""

    now: float

    def __call__(self) -> float:
        return self.now


class FlakyReceiver:
    """A loopback receiver of events numbered by `data.n`: every request for every
    `fail_every`-th event (n = fail_every - 1, 2 * fail_every - 1, ...) fails with 500
    until it has failed `failures` times, then succeeds. Records the n of every request
    (`seen`), of every success (`succeeded`), and the most requests it held at once."""

    def __init__(self, fail_every: int, failures: int) -> None:
        self.fail_every, self.failures = fail_every, failures
        self.seen: list[int] = []
        self.succeeded: list[int] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._failed: dict[int, int] = {}
        self._serving: contextlib.AbstractAsyncContextManager[str] | None = None
        self.url = ""

    async def __aenter__(self) -> FlakyReceiver:
        self._serving = serve_asgi(self._app)
        self.url = await self._serving.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._serving is not None
        await self._serving.__aexit__(None, None, None)

    async def _app(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        self._in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            n = int(json.loads(body)["data"]["n"])
            self.seen.append(n)
            status = 200
            if (n + 1) % self.fail_every == 0 and self._failed.get(n, 0) < self.failures:
                self._failed[n] = self._failed.get(n, 0) + 1
                status = 500
            elif n not in self.succeeded:
                self.succeeded.append(n)
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
        finally:
            self._in_flight -= 1


def assert_in_order(rx: FlakyReceiver, count: int) -> None:
    """Events 0..count-1 succeeded in exactly that order, and no request ever went to an
    event before an earlier one had succeeded (retries and repeats of the head only)."""
    assert rx.succeeded == list(range(count))
    assert rx.seen == sorted(rx.seen), "a later event was sent before an earlier one"


# --- endpoint headers -------------------------------------------------------------

# Headers relay sets, framing and hop-by-hop ones, in any case: never an endpoint's own.
FORBIDDEN_HEADERS = ["Host", "content-length", "Transfer-Encoding", "CONNECTION", "Upgrade",
                     "TE", "Trailer", "Keep-Alive", "Proxy-Authorization", "proxy-connection",
                     "Content-Type", "User-Agent", "webhook-id", "Webhook-Timestamp",
                     "webhook-signature", "Webhook-Future", "Relay-Signature",
                     "x-relay-signature"]
BAD_HEADER_NAMES = ["X Team", "X-Team:", "", "X\x00A", "X-\u00c4", "X-A\r\nHost", "(x)"]
BAD_HEADER_VALUES = ["a\r\nHost: evil", "a\nb", "a\x00b", "a\x7f", "a\x85b", "\x01", " a",
                     "a\t", "a\ud800"]


# --- the HTTP API ---------------------------------------------------------------

def sha(value: str) -> str:
    """The hex digest a config's `key_sha256` holds."""
    return hashlib.sha256(value.encode()).hexdigest()


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The answer is the error shape with this status and code; returns its error."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    error: dict[str, Any] = body["error"]
    return error


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


ADMIN = "k-admin-0123456789"  # tenant default, admin: the client's default key
READER = "k-reader-0123456789"  # default, webhooks:read
EVENTS = "k-events-0123456789"  # default, events:write
ACME = "k-acme-0123456789"  # acme, webhooks:read + webhooks:write + events:write
FROZEN = "k-frozen-0123456789"  # frozen (webhooks disabled), admin
LIMITED = "k-limited-0123456789"  # limited (max_webhooks = 2), admin
CONFIG_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SAMPLE = {"lead_id": "lead_4c88e100", "score": 0.87}


def api_config(make_config: Callable[..., cfgmod.Loaded], url: str,
               **sections: Any) -> cfgmod.Loaded:
    """Four tenants, a key per role, two event types, two config endpoints at `url`."""
    keys = [("admin", ADMIN, ["admin"], "default"),
            ("reader", READER, ["webhooks:read"], "default"),
            ("events", EVENTS, ["events:write"], "default"),
            ("acme", ACME, ["webhooks:read", "webhooks:write", "events:write"], "acme"),
            ("frozen", FROZEN, ["admin"], "frozen"),
            ("limited", LIMITED, ["admin"], "limited")]
    return make_config(**{
        "tenants": [{"id": "acme"}, {"id": "frozen", "webhooks_enabled": False},
                    {"id": "limited", "max_webhooks": 2}],
        "api_keys": [{"name": n, "key_sha256": sha(k), "scopes": s, "tenant": t}
                     for n, k, s, t in keys],
        "event_types": [{"name": "lead.qualified", "description": "A lead qualified.",
                         "sample": SAMPLE},
                        {"name": "lead.lost"}, {"name": "billing.paid"}],
        "endpoints": [{"id": "crm", "url": f"{url}/crm", "events": ["lead.*"]},
                      {"id": "fixed", "url": f"{url}/fixed", "secret": CONFIG_SECRET,
                       "events": ["billing.*"]}],
        **sections,
    })


def as_admin(r: Running) -> Running:
    r.client.headers.update(auth(ADMIN))
    return r


@asynccontextmanager
async def admin_api(make_config: Callable[..., cfgmod.Loaded],
                    **sections: Any) -> AsyncIterator[tuple[Running, Receiver]]:
    """relay on `api_config` with a receiver for the deliveries; the client is ADMIN."""
    async with Receiver() as rx, running(api_config(make_config, rx.url, **sections)) as r:
        yield as_admin(r), rx


async def create(r: Running, url: str, key: str = ADMIN, **fields: Any) -> dict[str, Any]:
    body = {"name": "hook", "url": url, "events": ["lead.*"], **fields}
    response = await r.client.post("/v1/webhooks", json=body, headers=auth(key))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def send(r: Running, type_: str = "lead.qualified", key: str = ADMIN,
               **data: Any) -> str:
    response = await r.client.post("/v1/events", json={"type": type_, "data": data},
                                   headers=auth(key))
    assert response.status_code == 202, response.text
    event_id: str = response.json()["id"]
    return event_id


# --- the command line ------------------------------------------------------------

def relay(*args: str, cwd: Path, env: dict[str, str] | None = None,
          ) -> subprocess.CompletedProcess[str]:
    """`relay ARGS` as a user runs it, in `cwd`."""
    return subprocess.run([sys.executable, "-m", "relay", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=60, env={**os.environ, **(env or {})})


# --- the browser -----------------------------------------------------------------

SHOTS = Path(__file__).resolve().parents[1] / "docs" / "ui"
# Screenshots are taken on every run (the 375 px one resizes the page) but written into
# docs/ui only when asked, so a test run leaves the tree clean.
WRITE_SHOTS = os.environ.get("RELAY_SCREENSHOTS") == "1"


async def shoot(page: Page, name: str) -> None:
    """The page as docs/ui/<name>.png (its width) and docs/ui/<name>-375.png (a 375 px
    phone), the pictures docs/ui.md shows, written when RELAY_SCREENSHOTS=1."""
    def path(suffix: str) -> str | None:
        return str(SHOTS / f"{name}{suffix}.png") if WRITE_SHOTS else None

    if WRITE_SHOTS:
        SHOTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size or {"width": 1280, "height": 800}
    await page.screenshot(path=path(""), full_page=True)
    await page.set_viewport_size({"width": 375, "height": 740})
    await page.screenshot(path=path("-375"), full_page=True)
    await page.set_viewport_size(size)
