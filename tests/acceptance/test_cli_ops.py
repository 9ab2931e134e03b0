"""The operator commands (status, deliveries, replay, rotate-secret) against a running
`relay serve`, each run as a user runs it: a subprocess, exit codes, output."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.helpers import relay
from tests.receiver import Receiver
from tests.serving import ServeProcess, eventually, free_port, serve_toml

KEY = "ops-test-key-0123456789"
KEY_ENV = "RELAY_TEST_OPS_KEY"
ATTEMPTS = 3  # the first try and the two retries of the config's retry_schedule


@dataclass
class Ops:
    """A running relay with endpoint `ok` (2 succeeded deliveries) and `flaky` (2 failed
    ones: it answered 500 to every attempt, and answers 200 from now on)."""

    rx: Receiver
    serve: ServeProcess
    cwd: Path
    events: list[str]

    async def cli(self, *args: str, key: str = KEY) -> subprocess.CompletedProcess[str]:
        """`relay ARGS` in its own thread, so the receiver in this loop keeps serving; the
        URL comes from ./relay.toml, the key from $RELAY_API_KEY."""
        return await asyncio.to_thread(relay, *args, cwd=self.cwd, env={"RELAY_API_KEY": key})


@pytest.fixture
async def ops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Ops]:
    monkeypatch.setenv(KEY_ENV, KEY)  # relay serve reads its API key from there
    async with Receiver() as rx:
        rx.respond("/flaky", *[500] * (2 * ATTEMPTS))
        port = free_port()
        config = tmp_path / "relay.toml"
        config.write_text(serve_toml(port, 'retry_schedule = ["50ms", "100ms"]', f"""
[[api_keys]]
name = "ops"
key_env = "{KEY_ENV}"
scopes = ["admin"]
[[endpoints]]
id = "ok"
url = "{rx.url}/ok"
[[endpoints]]
id = "flaky"
url = "{rx.url}/flaky"
"""))
        serve = ServeProcess(config, port, tmp_path)
        await serve.start()
        try:
            async with httpx.AsyncClient(base_url=serve.url, timeout=10,
                                         headers={"authorization": f"Bearer {KEY}"}) as api:
                events = []
                for n in range(2):
                    sent = await api.post("/v1/events",
                                          json={"type": "lead.qualified", "data": {"n": n}})
                    assert sent.status_code == 202, sent.text
                    events.append(sent.json()["id"])

                async def flaky_failed() -> bool:
                    page = await api.get("/v1/webhooks/flaky/deliveries",
                                         params={"status": "failed"})
                    return len(page.json()["data"]) == 2

                await eventually(flaky_failed, message="flaky's deliveries to fail")
            await rx.wait_for(2, "/ok")
            yield Ops(rx, serve, tmp_path, events)
        finally:
            await asyncio.to_thread(serve.terminate)


async def test_status_shows_queue_depth_and_endpoint_health(ops: Ops) -> None:
    done = await ops.cli("status")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "succeeded 2" in lines[0] and "failed 2" in lines[0] and "pending 0" in lines[0]
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert rows["ENDPOINT"][:3] == ["ENDPOINT", "SOURCE", "STATE"]
    assert rows["ok"][1:3] == ["config", "active"]
    assert rows["flaky"][1:3] == ["config", "active"]
    assert int(rows["flaky"][-2]) > 0 and rows["flaky"][-1] == "0"  # failures, pending
    assert rows["ok"][-2:] == ["0", "0"]


async def test_deliveries_lists_filters_and_shows_attempts(ops: Ops) -> None:
    failed = await ops.cli("deliveries", "--status", "failed")
    assert failed.returncode == 0, failed.stderr
    header, *rows = failed.stdout.splitlines()
    assert header.split() == ["DELIVERY", "EVENT", "ENDPOINT", "STATUS", "ATTEMPTS", "LAST",
                              "UPDATED"]
    assert sorted(row.split()[1] for row in rows) == sorted(ops.events)
    assert all(row.split()[2:6] == ["flaky", "failed", str(ATTEMPTS), "500"] for row in rows)

    ok = await ops.cli("deliveries", "--endpoint", "ok", "--limit", "1")
    assert ok.returncode == 0, ok.stderr
    assert [row.split()[2:4] for row in ok.stdout.splitlines()[1:]] == [["ok", "succeeded"]]

    shown = await ops.cli("deliveries", "--id", rows[0].split()[0])
    assert shown.returncode == 0, shown.stderr
    assert f"-> flaky  failed, {ATTEMPTS} attempt(s)" in shown.stdout
    attempts = [line.split() for line in shown.stdout.splitlines() if line.startswith("#")]
    assert [(a[0], a[2]) for a in attempts] == [(f"#{n}", "500") for n in (1, 2, 3)]


async def test_replay_by_event_and_by_window(ops: Ops) -> None:
    first = ops.rx.received("/ok")[0]
    replayed = await ops.cli("replay", first.headers["webhook-id"], "--endpoint", "ok")
    assert replayed.returncode == 0, replayed.stderr
    assert "replayed 1 event(s): 1 deliveries queued" in replayed.stdout
    again = (await ops.rx.wait_for(3, "/ok"))[2]
    assert again.headers["webhook-id"] == first.headers["webhook-id"]
    assert again.body == first.body

    nothing = await ops.cli("replay", "--since", "2h", "--until", "1h")
    assert nothing.returncode == 0, nothing.stderr
    assert "nothing to re-send" in nothing.stdout

    resent = await ops.cli("replay", "--endpoint", "flaky", "--since", "10m")
    assert resent.returncode == 0, resent.stderr
    assert "re-sent 2 failed deliveries" in resent.stdout
    await ops.rx.wait_for(2 * ATTEMPTS + 2, "/flaky")
    got = {r.headers["webhook-id"] for r in ops.rx.received("/flaky")[-2:]}
    assert got == set(ops.events)

    async def none_failed() -> bool:
        left = await ops.cli("deliveries", "--status", "failed")
        return left.stdout.strip() == "no deliveries"

    await eventually(none_failed, message="re-sent deliveries to succeed")


async def test_rotate_secret_prints_the_new_secret(ops: Ops) -> None:
    done = await ops.cli("rotate-secret", "ok", "--grace", "1h")
    assert done.returncode == 0, done.stderr
    secret = done.stdout.strip()
    assert secret.startswith("whsec_") and "\n" not in secret
    assert "previous secret keeps signing until" in done.stderr
    sent = await ops.cli("send", "lead.qualified")
    assert sent.returncode == 0, sent.stderr
    signature = (await ops.rx.wait_for(3, "/ok"))[2].headers["webhook-signature"]
    assert len(signature.split()) == 2  # the new secret's and, during the grace, the old's


async def test_api_errors_are_clean_lines(ops: Ops) -> None:
    cases = [
        (("status",), "wrong-key", "Error: 401 unauthorized: unknown API key"),
        (("deliveries", "--id", "dlv_999999"), KEY, "Error: 404 not_found: "),
        (("rotate-secret", "nope"), KEY, "Error: 404 not_found: "),
        (("replay", "evt_nope"), KEY, "Error: 1 refused:\n  evt_nope: 404 not_found: "),
    ]
    for args, key, message in cases:
        done = await ops.cli(*args, key=key)
        assert done.returncode == 1, args
        assert done.stderr.startswith(message), done.stderr
        assert "Traceback" not in done.stderr


@pytest.mark.parametrize("args", [("status",), ("deliveries",), ("replay", "evt_1"),
                                  ("rotate-secret", "ok"), ("send", "x")])
def test_unreachable_relay_is_one_clean_line(tmp_path: Path, args: tuple[str, ...]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = relay(*args, "--url", url, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith(f"Error: cannot reach relay at {url}: ")
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr


@pytest.mark.parametrize(("args", "message"), [
    (("replay",), "give either event ids or --since"),
    (("replay", "evt_1", "--since", "1h"), "give either event ids or --since"),
    (("replay", "evt_1", "--until", "1h"), "--until needs --since"),
    (("replay", "--since", "yesterday"), "'yesterday' is neither an ISO-8601 time"),
    (("deliveries", "--status", "lost"), "'lost' is not one of"),
])
def test_usage_errors(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    done = relay(*args, cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
