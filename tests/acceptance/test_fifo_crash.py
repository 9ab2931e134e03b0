"""`kill -9` of a real `relay serve` while it delivers to an ordered (fifo) endpoint, then
restart: no later event goes before an earlier acknowledged one, and all arrive."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.helpers import FlakyReceiver, assert_in_order
from tests.serving import ServeProcess, eventually, free_port, serve_toml


async def test_kill_9_mid_run_keeps_the_fifo_order(tmp_path: Path) -> None:
    async with FlakyReceiver(fail_every=5, failures=2) as rx:
        port = free_port()
        config = tmp_path / "relay.toml"
        # Five retries: each kill may cut an attempt short, and an interrupted attempt
        # counts (docs/architecture.md, Crashes), so a head that fails twice must still
        # have attempts left after both kills.
        config.write_text(serve_toml(
            port, 'retry_schedule = ["20ms", "20ms", "20ms", "20ms", "20ms"]',
            f'[storage]\npath = "{tmp_path / "relay.db"}"\n'
            f'[[endpoints]]\nid = "ordered"\nurl = "{rx.url}"\nordering = "fifo"\n',
        ))
        relay = ServeProcess(config, port, tmp_path)
        await relay.start(60)
        try:
            # One batch: all 200 are queued before the deliveries get far, so the kills
            # below land mid-run, the second soon after the restart.
            async with httpx.AsyncClient(base_url=relay.url, timeout=30) as client:
                sent = await client.post("/v1/events/batch", json={"events": [
                    {"type": "order.created", "data": {"n": n}} for n in range(200)]})
                assert sent.status_code == 202, sent.text
            for at in (60, 130):  # twice, mid-run
                await eventually(lambda at=at: len(rx.seen) >= at, 60, f"{at} requests")
                relay.kill()
                await relay.start(60)
            await eventually(lambda: len(rx.succeeded) == 200, 120, "all 200 delivered")
            assert_in_order(rx, 200)
            assert rx.max_in_flight == 1
        finally:
            if relay.proc is not None and relay.proc.poll() is None:
                relay.terminate()
