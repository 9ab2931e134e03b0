"""Live config edits: applied without a restart; an invalid edit changes nothing."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest

from relay import config as cfgmod
from relay.errors import StorageError
from tests.receiver import Receiver
from tests.serving import eventually, running


def write(path: Path, tmp_path: Path, endpoints: str) -> None:
    path.write_text(f"""
[storage]
path = "{tmp_path / 'relay.db'}"
[delivery]
allow_http = true
allow_private_networks = true
retry_schedule = ["50ms"]
{endpoints}
""")


def endpoint(id_: str, url: str, extra: str = "") -> str:
    return f'[[endpoints]]\nid = "{id_}"\nurl = "{url}"\n{extra}\n'


@pytest.fixture
def relay_log(caplog: pytest.LogCaptureFixture) -> Any:
    logger = logging.getLogger("relay")
    logger.propagate = True
    caplog.set_level("INFO", logger="relay")
    yield caplog


@pytest.mark.slow
async def test_file_edit_applies_and_invalid_edit_is_refused(
    tmp_path: Path, relay_log: pytest.LogCaptureFixture,
) -> None:
    path = tmp_path / "relay.toml"
    async with Receiver() as rx:
        write(path, tmp_path, endpoint("a", f"{rx.url}/a"))
        async with running(cfgmod.load(path), watch=True) as r:
            await r.send()
            await rx.wait_for(1, "/a")

            # A valid edit: a second endpoint, picked up by the file watcher.
            write(path, tmp_path, endpoint("a", f"{rx.url}/a") + endpoint("b", f"{rx.url}/b"))
            await eventually(lambda: "b" in r.relay.endpoints, 10, "the reload")
            assert (await r.send()).json()["deliveries"] == 2
            await rx.wait_for(1, "/b")

            # An invalid edit: logged with its key path, the running config stays.
            write(path, tmp_path, endpoint("a", "ftp://nowhere/") + endpoint("b", f"{rx.url}/b"))
            refused = await eventually(
                lambda: [rec for rec in relay_log.records if rec.msg == "config_reload"
                         and rec.fields.get("result") == "refused"], 10, "the refusal")
            assert "endpoints[0].url" in refused[0].fields["details"]
            assert r.relay.endpoints["a"].url == f"{rx.url}/a"
            assert (await r.send()).json()["deliveries"] == 2
            await rx.wait_for(2, "/a")

            # Removing an endpoint cancels what it still had queued.
            rx.respond("/b", 500, 500, 500)
            await r.send()
            write(path, tmp_path, endpoint("a", f"{rx.url}/a"))
            await eventually(lambda: "b" not in r.relay.endpoints, 10, "b removed")
            counts = await r.relay.store.counts()
            assert counts.get("pending", 0) == 0 and counts.get("held", 0) == 0


@pytest.mark.slow
async def test_replaced_files_and_swapped_symlinks_apply(tmp_path: Path) -> None:
    """Editors that write a new file and rename it over the old one, and Kubernetes'
    ConfigMaps (relay.toml a symlink into a folder that is swapped whole)."""
    link = tmp_path / "relay.toml"
    async with Receiver() as rx:
        for version in ("v1", "v2", "v3"):
            (tmp_path / version).mkdir()
            events = {"v1": "", "v2": 'events = ["x.*"]', "v3": 'events = ["y.*"]'}[version]
            write(tmp_path / version / "relay.toml", tmp_path,
                  endpoint("a", f"{rx.url}/a", events))
        (tmp_path / "data").symlink_to("v1")
        link.symlink_to("data/relay.toml")
        async with running(cfgmod.load(link), watch=True) as r:
            new = tmp_path / "data.new"
            new.symlink_to("v2")
            new.replace(tmp_path / "data")  # the swap: one rename of a symlink
            await eventually(lambda: r.relay.endpoints["a"].events == ("x.*",), 10,
                             "the symlink's new target")
            # A new file renamed over the link itself.
            replacement = tmp_path / "relay.toml.tmp"
            replacement.write_text((tmp_path / "v3" / "relay.toml").read_text())
            replacement.replace(link)
            await eventually(lambda: r.relay.endpoints["a"].events == ("y.*",), 10,
                             "the renamed file")


async def test_an_edit_that_keeps_size_and_mtime_applies(tmp_path: Path) -> None:
    """`cp -p` or `rsync -t` over the file: same size, the old mtime; the ctime moves."""
    path = tmp_path / "relay.toml"
    async with Receiver() as rx:
        write(path, tmp_path, endpoint("a", f"{rx.url}/a", 'events = ["x.*"]'))
        async with running(cfgmod.load(path), watch=True) as r:
            before = path.stat()
            write(path, tmp_path, endpoint("a", f"{rx.url}/a", 'events = ["y.*"]'))
            os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
            assert (path.stat().st_size, path.stat().st_mtime_ns) == (
                before.st_size, before.st_mtime_ns)
            await eventually(lambda: r.relay.endpoints["a"].events == ("y.*",), 10,
                             "the edit with the old mtime")


async def test_a_failed_background_task_does_not_stop_the_shutdown(
    tmp_path: Path, relay_log: pytest.LogCaptureFixture,
) -> None:
    """A bug that kills the config watch (simulated: its reload raises) is logged when
    relay stops, and the store is closed all the same."""
    path = tmp_path / "relay.toml"
    write(path, tmp_path, endpoint("a", "http://127.0.0.1:9/a"))
    async with running(cfgmod.load(path), watch=True) as r:
        async def broken() -> bool:
            raise RuntimeError("a bug")

        r.relay.reload = broken  # type: ignore[method-assign]
        write(path, tmp_path, endpoint("b", "http://127.0.0.1:9/b"))
        await eventually(lambda: any(t.done() for t in r.relay._tasks), 10, "the watch to die")
        store = r.relay.store
    failed = [rec for rec in relay_log.records if rec.msg == "task_failed"]
    assert failed[0].fields == {"task": "relay-config-watch", "error": "RuntimeError('a bug')"}
    assert [rec.msg for rec in relay_log.records][-1] == "stopped"
    with pytest.raises(StorageError, match="closed"):
        await store.ingest([])


async def test_reload_method_for_sighup(tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    async with Receiver() as rx:
        write(path, tmp_path, endpoint("a", f"{rx.url}/a"))
        async with running(cfgmod.load(path)) as r:
            write(path, tmp_path, endpoint("a", f"{rx.url}/a", 'events = ["x.*"]'))
            assert await r.relay.reload()
            assert r.relay.endpoints["a"].events == ("x.*",)
            path.write_text("this is not toml [")
            assert not await r.relay.reload()
            assert r.relay.endpoints["a"].events == ("x.*",)


async def test_rate_limit_spaces_requests(make_config: Any) -> None:
    async with Receiver() as rx:
        cfg = make_config(endpoints=[{"id": "e", "url": f"{rx.url}/r", "rate_limit": 10}])
        async with running(cfg) as r:
            for i in range(15):
                await r.send(data={"n": i})
            got = await rx.wait_for(15, "/r", timeout=10)
            # A bucket of 10/s holds one second's burst; the rest come at 10/s.
            assert got[-1].at - got[0].at >= 0.4
