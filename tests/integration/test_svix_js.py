"""Svix's JavaScript SDK (npm `svix`, tests/svix_js) against relay's /api/v1: an
application, an endpoint with a chosen secret and a message that arrives, verified by
Svix's own verifier; Svix's kitchen-sink checks run in the script. Skipped without node
or without `npm ci` having been run in tests/svix_js."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from svix import Webhook

from relay import config as cfgmod
from tests.helpers import ADMIN, admin_api

SCRIPT = Path(__file__).resolve().parents[1] / "svix_js" / "flow.mjs"
SECRET = "whsec_" + "j" * 32
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(
    NODE is None or not (SCRIPT.parent / "node_modules" / "svix").is_dir(),
    reason="needs node and `npm ci` in tests/svix_js")


async def test_the_javascript_sdk(make_config: Callable[..., cfgmod.Loaded]) -> None:
    assert NODE is not None
    async with admin_api(make_config) as (r, rx):
        node = await asyncio.create_subprocess_exec(
            NODE, str(SCRIPT), r.url, ADMIN, rx.url, SECRET, cwd=SCRIPT.parent,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(node.communicate(), 60)
        assert node.returncode == 0, err.decode()
        made = json.loads(out.decode().strip().splitlines()[-1])
        assert made["app"] == "acme"
        [got] = await rx.wait_for(1, "/js")
        assert json.loads(got.body) == {"from": "node"}
        assert got.headers["svix-id"] == made["message"]
        Webhook(SECRET).verify(got.body, got.headers)
        stored = await r.relay.store.get_endpoint(made["endpoint"])
        assert stored is not None and stored.uid == "js-hook"
