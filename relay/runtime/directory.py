"""This process's directory (relay.directory), kept in step with the config file and
the store, and the changes the API makes to it.

Requests read `Keeper.current`, never the database: it is read again from the store
right after this process's own writes (so a new key works at once), on a config load,
and when the store reports that another process changed it (PostgreSQL: NOTIFY
relay_directory, and the heartbeat's look at the version, within a second).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from relay import directory as dirmod
from relay.config import Loaded
from relay.directory import Directory
from relay.errors import ConfigError
from relay.logs import log
from relay.storage.base import Directory as DirectoryRole
from relay.types import ApiKeyRow, EventTypeRow, TenantRemoved, TenantRow


class Keeper:
    """The directory of `loaded` and the `store`'s rows. `on_change` runs after a
    reload that changed it (relay ends the sessions it no longer grants);
    `on_endpoints` after a tenant's endpoints were deleted with it."""

    def __init__(self, store: DirectoryRole, loaded: Loaded, clock: Callable[[], float],
                 on_change: Callable[[], Awaitable[None]],
                 on_endpoints: Callable[[], Awaitable[None]]) -> None:
        self._store = store
        self._loaded = loaded
        self._clock = clock
        self._on_change = on_change
        self._on_endpoints = on_endpoints
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self.current = dirmod.of_file(loaded, clock())

    # --- loading --------------------------------------------------------------------

    async def prepare(self, loaded: Loaded) -> Directory:
        """The directory `loaded` would give with the rows stored now; ConfigError
        naming each tenant or event type the file defines that exists as data (relay
        refuses the file: at start it does not start, a reload keeps the running
        config)."""
        rows = await self._store.directory()
        lines = dirmod.clashes(loaded.config, rows)
        if lines:
            raise ConfigError("the config file defines what exists as data: "
                              + "; ".join(lines), lines)
        return dirmod.build(loaded, rows, dirmod.seen_at(self.current), self._clock(),
                            self.current)

    async def install(self, directory: Directory, loaded: Loaded) -> None:
        """Make `directory` (prepared for `loaded`) the current one, then read the rows
        again: another process may have changed them since `prepare` read them, and a
        reload in between built on the config before `loaded`."""
        async with self._lock:
            self._loaded, self.current = loaded, directory
        await self.reload()

    async def reload(self) -> None:
        """Read the stored rows again; when the version moved, rebuild and tell
        `on_change`. A stored tenant that another process's file let clash with this
        file's is left out (logged): this file wins here."""
        async with self._lock:
            rows = await self._store.directory()
            if rows.version == self.current.version:
                return
            if lines := dirmod.clashes(self._loaded.config, rows):
                log("directory_clash", logging.ERROR, problems="; ".join(lines),
                    note="the config files of the processes sharing the database differ")
            self.current = dirmod.build(self._loaded, rows, dirmod.seen_at(self.current),
                                        self._clock(), self.current)
        await self._on_change()

    def changed(self) -> None:
        """Another process changed the directory (the store's watcher): reload soon."""
        task = asyncio.create_task(self._reload_logged(), name="relay-directory-reload")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reload_logged(self) -> None:
        try:
            await self.reload()
        except Exception as exc:  # the database away: the heartbeat will ask again
            log("directory_reload_failed", logging.WARNING, error=repr(exc))

    # --- the API's changes (relay.operations.tenants, .keys) ----------------------------

    async def create_tenant(self, tenant: TenantRow) -> TenantRow:
        row = await self._store.create_tenant(tenant)
        await self.reload()
        log("tenant_created", tenant=row.id)
        return row

    async def change_tenant(self, tenant_id: str, changes: dict[str, Any]) -> TenantRow:
        row = await self._store.update_tenant(tenant_id, changes, self._clock())
        await self.reload()
        log("tenant_changed", tenant=tenant_id, fields=",".join(sorted(changes)) or None)
        return row

    async def delete_tenant(self, tenant_id: str) -> TenantRemoved:
        """Delete a tenant with its endpoints (their unfinished deliveries cancelled)
        and keys; its events stay until retention."""
        removed = await self._store.delete_tenant(tenant_id, self._clock())
        await self.reload()
        await self._on_endpoints()
        log("tenant_deleted", tenant=tenant_id, endpoints=len(removed.endpoints) or None,
            cancelled=removed.cancelled or None, keys=removed.keys or None)
        return removed

    async def create_key(self, key: ApiKeyRow) -> ApiKeyRow:
        """Store a new key; it works on this process when this returns."""
        in_file = key.tenant in dirmod.config_tenants(self._loaded.config)
        row = await self._store.create_api_key(key, in_file)
        await self.reload()
        log("api_key_created", key=row.id, name=row.name, tenant=row.tenant,
            scopes=",".join(row.scopes))
        return row

    async def revoke_key(self, key_id: str) -> ApiKeyRow:
        """Delete a key; refused on this process when this returns, on the others
        within a second (PostgreSQL)."""
        row = await self._store.delete_api_key(key_id)
        await self.reload()
        log("api_key_revoked", key=row.id, name=row.name, tenant=row.tenant)
        return row

    # --- the API's changes (relay.operations.event_types) --------------------------------

    async def create_event_type(self, event_type: EventTypeRow,
                                unarchive: bool = False) -> EventTypeRow:
        """Store a new event type; ingest checks it on this process when this returns,
        on the others within a second (PostgreSQL)."""
        row = await self._store.create_event_type(event_type, unarchive)
        await self.reload()
        log("event_type_created", event_type=row.name, enforced=row.enforced)
        return row

    async def change_event_type(self, name: str, changes: dict[str, Any]) -> EventTypeRow:
        row = await self._store.update_event_type(name, changes, self._clock())
        await self.reload()
        log("event_type_changed", event_type=name, fields=",".join(sorted(changes)) or None)
        return row

    async def delete_event_type(self, name: str) -> EventTypeRow:
        """Expunge an event type (archiving is a change: `archived`)."""
        row = await self._store.delete_event_type(name)
        await self.reload()
        log("event_type_deleted", event_type=name)
        return row
