"""Failed API keys are logged (a prefix, never the key), counted in /metrics and slowed
per source address; other addresses go on unaffected."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from relay import config as cfgmod
from relay.throttle import BURST, Throttle
from tests.helpers import ADMIN, api_config, assert_error, auth
from tests.serving import running

WRONG = "k-wrong-" + "x" * 40  # long enough that its log prefix is 8 characters


class Clock:
    """The throttle's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, dict[str, Any]]]:
    return [(str(rec.msg), getattr(rec, "fields", {})) for rec in caplog.records
            if str(rec.msg).startswith("auth_")]


def _metric(text: str, reason: str) -> float:
    found = re.search(rf'^relay_auth_failures_total{{reason="{reason}"}} (\S+)$', text, re.M)
    assert found is not None, text
    return float(found.group(1))


@pytest.mark.slow
async def test_sixty_wrong_keys(make_config: Callable[..., cfgmod.Loaded],
                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="relay")
    async with running(api_config(make_config, "http://127.0.0.1:9")) as r, \
            httpx.AsyncClient(base_url=r.url, transport=httpx.AsyncHTTPTransport(
                local_address="127.0.0.2")) as elsewhere:
        clock = Clock()
        r.app.state.auth_throttle = Throttle(clock)
        answers = [await r.client.get("/v1/webhooks", headers=auth(f"{WRONG}{i}"))
                   for i in range(60)]
        assert [a.status_code for a in answers] == [401] * BURST + [429] * (60 - BURST)
        for answer in answers[BURST:]:
            assert_error(answer, 429, "too_many_auth_failures")
            assert answer.headers["retry-after"] == "1"
        # Each failure logged until the address is throttled, then one line: 11, not 60.
        lines = _lines(caplog)
        assert [action for action, _ in lines] == ["auth_failed"] * BURST + ["auth_throttled"]
        for _, fields in lines[:BURST]:
            assert fields == {"reason": "unknown", "key_prefix": "k-wrong-",
                              "source": "127.0.0.1", "path": "/v1/webhooks"}
        assert lines[-1][1]["source"] == "127.0.0.1"
        assert WRONG not in caplog.text and "k-wrong-x" not in caplog.text
        # Throttled: even the right key is not looked at, from this address only.
        assert (await r.client.get("/v1/webhooks", headers=auth(ADMIN))).status_code == 429
        assert (await elsewhere.get("/v1/webhooks", headers=auth(ADMIN))).status_code == 200
        assert_error(await elsewhere.get("/v1/webhooks", headers=auth(WRONG)), 401,
                     "unauthorized")  # its own bucket
        assert_error(await elsewhere.get("/v1/webhooks"), 401, "unauthorized")  # no key
        metrics = (await r.client.get("/metrics")).text
        assert _metric(metrics, "unknown") == BURST + 1
        assert _metric(metrics, "throttled") == 60 - BURST + 1
        assert _metric(metrics, "missing") == 1
        assert _metric(metrics, "not_admin") == 0
        # A second later a token is back: the right key works again.
        clock.now += 1
        assert (await r.client.get("/v1/webhooks", headers=auth(ADMIN))).status_code == 200
        # ... and a wrong one spends it: throttled again, without a line per failure.
        caplog.clear()
        assert (await r.client.get("/v1/webhooks", headers=auth(WRONG))).status_code == 401
        assert (await r.client.get("/v1/webhooks", headers=auth(WRONG))).status_code == 429
        assert _lines(caplog) == []


async def test_console_sign_in_shares_the_budget(make_config: Callable[..., cfgmod.Loaded],
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="relay")
    async with running(api_config(make_config, "http://127.0.0.1:9")) as r:
        clock = Clock()
        r.app.state.auth_throttle = Throttle(clock)
        page = await r.client.get("/ui/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None

        async def sign_in(key: str) -> httpx.Response:
            return await r.client.post("/ui/login", data={"csrf": csrf.group(1), "key": key,
                                                          "next": "/ui/"},
                                       follow_redirects=False)

        for i in range(BURST - 2):
            assert (await sign_in(f"{WRONG}{i}")).status_code == 401
        not_admin = await sign_in("k-reader-0123456789")  # a real key, not an admin's
        assert not_admin.status_code == 401
        assert (await r.client.get("/v1/webhooks", headers=auth(WRONG))).status_code == 401
        refused = await sign_in(ADMIN)  # the budget is spent: not even the right key
        assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
        assert "Too many failed sign-ins" in refused.text
        reasons = [fields.get("reason") for action, fields in _lines(caplog)
                   if action == "auth_failed"]
        assert reasons == ["unknown"] * (BURST - 2) + ["not_admin", "unknown"]
        paths = {fields.get("path") for _, fields in _lines(caplog) if "path" in fields}
        assert paths == {"/ui/login", "/v1/webhooks"}
        prefixes = {fields.get("key_prefix") for action, fields in _lines(caplog)
                    if action == "auth_failed"}
        assert prefixes == {"k-wrong-", "k-re"}  # at most a quarter of a short key
        clock.now += 1
        assert (await sign_in(ADMIN)).status_code == 303  # signed in


@pytest.mark.slow
async def test_a_stale_key_does_not_lock_out_its_address(
        make_config: Callable[..., cfgmod.Loaded], caplog: pytest.LogCaptureFixture) -> None:
    """Behind a NAT, an ingress or a Docker bridge many clients share an address: one left
    with an old key repeats it, which spends the budget once, not every time, so valid
    keys from that address still work; different wrong keys are throttled as before."""
    caplog.set_level("INFO", logger="relay")
    async with running(api_config(make_config, "http://127.0.0.1:9")) as r, \
            httpx.AsyncClient(base_url=r.url, transport=httpx.AsyncHTTPTransport(
                local_address="127.0.0.2")) as guesser:
        clock = Clock()
        r.app.state.auth_throttle = Throttle(clock)
        for _ in range(3 * BURST):
            assert_error(await r.client.get("/v1/webhooks", headers=auth(WRONG)), 401,
                         "unauthorized")
        assert (await r.client.get("/v1/webhooks", headers=auth(ADMIN))).status_code == 200
        for _ in range(BURST + 1):  # no key at all, again and again: the same
            assert (await r.client.get("/v1/webhooks")).status_code == 401
        assert (await r.client.get("/v1/webhooks", headers=auth(ADMIN))).status_code == 200
        # Logged once each; every one counted.
        assert [(action, fields["reason"]) for action, fields in _lines(caplog)] == [
            ("auth_failed", "unknown"), ("auth_failed", "missing")]
        metrics = (await r.client.get("/metrics")).text
        assert _metric(metrics, "unknown") == 3 * BURST
        assert _metric(metrics, "missing") == BURST + 1
        # A minute on, the next repeat brings the source's summary line.
        caplog.clear()
        clock.now += 60
        assert (await r.client.get("/v1/webhooks", headers=auth(WRONG))).status_code == 401
        assert _lines(caplog) == [("auth_failed", {"source": "127.0.0.1",
                                                   "refused": 3 * BURST - 1 + BURST + 1,
                                                   "retry_after": None})]
        # A new wrong key each time: throttled after the burst, as before.
        answers = [(await guesser.get("/v1/webhooks", headers=auth(f"{WRONG}{i}"))).status_code
                   for i in range(BURST + 1)]
        assert answers == [401] * BURST + [429]


async def test_open_relay_has_nothing_to_fail(make_config: Callable[..., cfgmod.Loaded],
                                              caplog: pytest.LogCaptureFixture) -> None:
    """Without api_keys every loopback caller without a key is admin: nothing to fail,
    nothing logged. A key sent is checked all the same (issue 22: a revoked key must not
    become an admin's), so a wrong one is a 401."""
    caplog.set_level(logging.INFO, logger="relay")
    async with running(make_config()) as r:
        for _ in range(BURST + 1):
            response = await r.client.get("/v1/webhooks")
            assert response.status_code == 200
        assert _lines(caplog) == []
        assert_error(await r.client.get("/v1/webhooks", headers=auth(WRONG)), 401,
                     "unauthorized")
