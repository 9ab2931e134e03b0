"""Config reload: reading an edited config file as the running relay will apply it, and
noticing the edit. `Relay.reload` applies what `reread` returns."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from relay import config as cfgmod
from relay.errors import ConfigError
from relay.logs import log

_CONFIG_POLL = 0.25  # seconds between looks at the config file for edits


def reread(source: Path, running: cfgmod.Config) -> cfgmod.Loaded | None:
    """The file at `source`, validated as it will run; None (logged) if it is refused.

    A changed `[server] listen` needs a restart: until then relay still listens where
    it did, so the file is validated again with that address (everything derived
    from it, the default public_url, the allowed host names and whether API keys
    are required, judged as it will run) and refused if that fails."""
    bound = None  # the running listen, when the file names another
    try:
        loaded = cfgmod.load(source)
        if loaded.config.server.listen != running.server.listen:
            log("config_reload", logging.WARNING,
                note="[server] listen changes need a restart")
            bound = running.server.listen
            loaded = cfgmod.load(source, listen=bound)
    except ConfigError as exc:
        log("config_reload", logging.ERROR, result="refused", path=str(source),
            error=exc.message, details="; ".join(map(str, exc.details)) or None,
            listen=bound and f"{bound} (where relay listens until it restarts)")
        return None
    new = loaded.config
    for name, before, after in (  # the rest of [server] applies now
            ("[server] log_format", running.server.log_format, new.server.log_format),
            ("[storage]", running.storage, new.storage)):
        if before != after:
            log("config_reload", logging.WARNING, note=f"{name} changes need a restart")
    return loaded


def _file_version(path: Path) -> tuple[int, ...] | None:
    """What changes when a file is edited or replaced (None while it is missing). The
    ctime too: a copy that keeps the mtime (`cp -p`, `rsync -t`) cannot keep that."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino, st.st_dev


async def watch(path: Path, reload: Callable[[], Awaitable[object]]) -> None:
    """Reload when the config file changes, once the change has held for one look (an
    editor may write in several steps). A look is a stat of the path every
    `_CONFIG_POLL` s, following symlinks. Not inotify: a watch of the file's folder
    woke for every write beside it (the database's WAL in the README's layout, 8% of
    a core under load), and it missed a symlink swapped underneath (a Kubernetes
    ConfigMap replaces the folder that relay.toml points into)."""
    applied = last = _file_version(path)
    while True:
        await asyncio.sleep(_CONFIG_POLL)
        seen = _file_version(path)
        if seen == last and seen != applied:
            applied = seen
            await reload()
        last = seen
