"""Two real `relay serve` processes on one PostgreSQL database: a tenant and an API key
made through one are usable on the other within a second, and a key revoked on one is
refused by the other within a second (NOTIFY relay_directory, or the heartbeat's look at
the directory's version should the NOTIFY be lost)."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.serving import ServeProcess, eventually, free_port, serve_toml


async def test_a_key_made_on_one_process_works_on_the_other_and_its_revocation_too(
        tmp_path: Path, pg_url: str) -> None:
    relays = []
    for name in ("one", "two"):
        home = tmp_path / name
        home.mkdir()
        port = free_port()
        (home / "relay.toml").write_text(serve_toml(port, rest=f'[storage]\nurl = "{pg_url}"\n'))
        relays.append(ServeProcess(home / "relay.toml", port, home))
    for relay in relays:
        await relay.start()
    try:
        async with httpx.AsyncClient(base_url=relays[0].url, timeout=10) as one, \
                httpx.AsyncClient(base_url=relays[1].url, timeout=10) as two:
            made = await one.post("/v1/tenants", json={"id": "globex"})
            assert made.status_code == 201, made.text
            key = await one.post("/v1/api-keys", json={
                "name": "ci", "scopes": ["webhooks:read"], "tenant": "globex"})
            assert key.status_code == 201, key.text
            bearer = {"authorization": f"Bearer {key.json()['key']}"}

            async def on_two(status: int) -> bool:
                answer = await two.get("/v1/webhooks", headers=bearer)
                return answer.status_code == status

            await eventually(lambda: on_two(200), 1.0, "the key to work on the other process")
            assert (await two.get("/v1/tenants/globex")).json()["source"] == "api"
            revoked = await one.delete(f"/v1/api-keys/{key.json()['id']}")
            assert revoked.status_code == 204
            await eventually(lambda: on_two(401), 1.0, "the other process to refuse the key")
    finally:
        for relay in relays:
            assert relay.terminate() == 0
