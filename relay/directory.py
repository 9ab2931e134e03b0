"""The directory: every tenant, API key and event type relay knows, from the config file
and from data (created through the API, SPEC §10), as one value every request reads.

Config entries and data rows never merge: a stored tenant may not have an id the file
defines, nor a stored event type a name the file declares (the API refuses it, and a
file that defines a stored one is refused: `clashes`). Event types carry their schema
compiled when the directory is built, never per request; relay's own operational types
(relay.*) are listed after the file's and data's, for test sends and the catalog.
`default` always exists and belongs to the file. The file alone decides whether relay
is open (`open`: no `[[api_keys]]` there, so loopback only, and a caller without a key
is an admin of `default`); a caller that sends a key has it checked against both.

A `Directory` is built whole (`build`) and replaced, never changed, so a request that
read it sees one consistent state; relay.runtime.directory keeps it in step with the
store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import jsonschema_rs

from relay.config import DEFAULT_TENANT, SCOPES, Config, Loaded, Scope
from relay.config.event_types import compile_schema
from relay.delivery import operational
from relay.types import ApiKeyRow, DirectoryRows, EventTypeRow, Source, TenantRow

TypeSource = Literal["config", "api", "relay"]  # relay: its own operational events


@dataclass(frozen=True, slots=True)
class Tenant:
    id: str
    name: str
    metadata: Mapping[str, str]
    max_webhooks: int | None  # None: no limit
    webhooks_enabled: bool
    source: Source
    created_at: float  # a config tenant's: when this process first loaded it
    updated_at: float
    uid: str | None = None  # Svix's application uid (data tenants only)
    throttle_rate: int | None = None  # Svix's, stored and echoed, not enforced


@dataclass(frozen=True, slots=True)
class Key:
    """An API key: only its digest is known."""

    name: str
    sha256: str
    scopes: frozenset[Scope]
    tenant: str
    source: Source
    created_at: float  # a config key's: when this process first loaded it
    id: str | None = None  # key_<ulid>; None: a config key, named only in its file
    expires_at: float | None = None  # None: never

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now


@dataclass(frozen=True, slots=True)
class EventType:
    """An event type as ingest, test sends and the catalog read it."""

    name: str
    description: str
    sample: dict[str, Any]
    schema: dict[str, Any] | None  # None: any object
    validator: jsonschema_rs.Validator | None  # the schema compiled; None when not enforced
    deprecated: bool  # accepted at ingest all the same; shown as deprecated
    archived: bool  # Svix's delete: kept as data, neither listed nor enforced
    enforced: bool  # counts for the unknown-type rule and its schema is checked
    source: TypeSource
    created_at: float  # a config type's: when this process first loaded it
    updated_at: float


@dataclass(frozen=True)
class Directory:
    version: int  # the store's directory version the rows were read at
    open: bool  # no [[api_keys]] in the file
    tenants: Mapping[str, Tenant]  # by id, in list order: default, the file's, then data's
    keys: Mapping[str, Key]  # by sha256, in list order: the file's, then data's
    uids: Mapping[str, str] = field(default_factory=dict)  # uid -> tenant id
    # by name, in list order: the file's, data's (archived too), then relay's own
    event_types: Mapping[str, EventType] = field(default_factory=dict)
    # those ingest checks: when any exist, a type not among them is refused
    enforced: Mapping[str, EventType] = field(default_factory=dict)

    def tenant(self, tenant_id: str) -> Tenant | None:
        return self.tenants.get(tenant_id)

    def named(self, name: str) -> Tenant | None:
        """The tenant with this id, else the one with this uid (Svix's `{app_id}`)."""
        tenant_id = name if name in self.tenants else self.uids.get(name)
        return None if tenant_id is None else self.tenants.get(tenant_id)

    def key(self, digest: str) -> Key | None:
        """The key whose SHA-256 (hex) is `digest`."""
        return self.keys.get(digest)

    def catalog(self, include_archived: bool = False) -> list[EventType]:
        """Every event type in list order; archived ones (Svix's deleted) only if asked."""
        return [t for t in self.event_types.values() if include_archived or not t.archived]


def tenant_of(row: TenantRow) -> Tenant:
    """A stored tenant as the directory holds it."""
    return Tenant(row.id, row.name, row.metadata, row.max_webhooks, row.webhooks_enabled,
                  "api", row.created_at, row.updated_at, row.uid, row.throttle_rate)


def key_of(row: ApiKeyRow) -> Key:
    """A stored key as the directory holds it (scopes in SCOPES' order)."""
    return Key(row.name, row.sha256, frozenset(s for s in SCOPES if s in row.scopes),
               row.tenant, "api", row.created_at, row.id, row.expires_at)


def config_tenants(config: Config) -> list[str]:
    """The ids the file owns: `default` (always), then its [[tenants]]."""
    return list(dict.fromkeys([DEFAULT_TENANT, *(t.id for t in config.tenants)]))


def clashes(config: Config, rows: DirectoryRows) -> list[str]:
    """Where the file defines a tenant whose id a stored tenant has as its id or uid, or
    an event type stored under its name: one `key.path: reason` line each (the file
    would take over what was made through the API, or make one name two things; relay
    refuses such a file)."""
    stored = {t.id: t.id for t in rows.tenants} | {t.uid: t.id for t in rows.tenants if t.uid}
    types = {t.name for t in rows.event_types}
    return [f"tenants[{i}].id: tenant {t.id!r} exists as data (made through the API as "
            f"{stored[t.id]!r}): delete it there, or give this one another id"
            for i, t in enumerate(config.tenants) if t.id in stored] + [
            f"event_types[{i}].name: event type {t.name!r} exists as data (made through "
            "the API): delete it there, or give this one another name"
            for i, t in enumerate(config.event_types) if t.name in types]


def _stored_type(row: EventTypeRow, before: EventType | None) -> EventType:
    """A stored event type with its schema compiled, or the compiled one of `before`
    when the row did not change since (a tenant's change compiles nothing again). A
    schema that does not compile (the API refuses those) leaves the type unchecked."""
    if not row.enforced or row.schema is None:
        validator = None
    elif before is not None and (before.updated_at, before.schema) == (row.updated_at,
                                                                      row.schema):
        validator = before.validator
    else:
        validator, _ = compile_schema(row.schema)
    return EventType(row.name, row.description, row.sample, row.schema, validator,
                     row.deprecated, row.archived, row.enforced, "api", row.created_at,
                     row.updated_at)


def _event_types(loaded: Loaded, rows: DirectoryRows, seen: Mapping[str, float],
                 before: Mapping[str, EventType], now: float) -> dict[str, EventType]:
    """The file's event types, data's (those the file does not declare), relay's own."""
    types: dict[str, EventType] = {}
    for conf in loaded.config.event_types:
        at = seen.get(first_seen("event_type", conf.name), now)
        types[conf.name] = EventType(conf.name, conf.description, conf.sample,
                                     conf.json_schema, conf.validator, False, False, True,
                                     "config", at, at)
    for row in rows.event_types:
        if row.name not in types:
            prior = before.get(row.name)
            types[row.name] = _stored_type(row, prior if prior and prior.source == "api"
                                           else None)
    for name, (description, sample) in operational.TYPES.items():
        types[name] = EventType(name, description, sample, None, None, False, False, False,
                                "relay", 0.0, 0.0)
    return types


def build(loaded: Loaded, rows: DirectoryRows, seen: Mapping[str, float],
          now: float, before: Directory | None = None) -> Directory:
    """The directory of a config and the stored rows. A config entry's `created_at` is
    `seen[...]` (its `first_seen` name) or `now`; `before`: the directory this one
    replaces, whose compiled schemas are kept for the rows that did not change. A
    stored tenant or event type whose id the file has (a `clashes` case another
    process's file let in) is left out: the file wins, never a mix of both."""
    config = loaded.config
    tenants: dict[str, Tenant] = {}
    for tenant_id in config_tenants(config):
        conf = config.tenant(tenant_id)
        assert conf is not None
        at = seen.get(first_seen("tenant", tenant_id), now)
        tenants[tenant_id] = Tenant(tenant_id, tenant_id, {}, conf.max_webhooks,
                                    conf.webhooks_enabled, "config", at, at)
    uids: dict[str, str] = {}
    for row in rows.tenants:
        if row.id in tenants or (row.uid is not None and row.uid in tenants):
            continue
        tenants[row.id] = tenant_of(row)
        if row.uid is not None:
            uids[row.uid] = row.id
    keys: dict[str, Key] = {}
    for key in loaded.api_keys:
        keys[key.sha256] = Key(key.name, key.sha256, key.scopes, key.tenant, "config",
                               seen.get(first_seen("key", key.sha256), now))
    for data in rows.keys:
        keys.setdefault(data.sha256, key_of(data))
    types = _event_types(loaded, rows, seen, {} if before is None else before.event_types,
                         now)
    enforced = {n: t for n, t in types.items() if t.enforced and not t.archived}
    return Directory(rows.version, not loaded.api_keys, tenants, keys, uids, types, enforced)


def of_file(loaded: Loaded, now: float = 0.0) -> Directory:
    """The directory of a config file alone (before the store is read)."""
    return build(loaded, DirectoryRows(0, (), ()), {}, now)


def first_seen(kind: str, name: str) -> str:
    """The name under which a config entry's first load time is kept."""
    return f"{kind}:{name}"


def seen_at(directory: Directory) -> dict[str, float]:
    """The first load times of a directory's config entries, for the next `build`."""
    return {**{first_seen("tenant", t.id): t.created_at for t in directory.tenants.values()
               if t.source == "config"},
            **{first_seen("key", k.sha256): k.created_at for k in directory.keys.values()
               if k.source == "config"},
            **{first_seen("event_type", t.name): t.created_at
               for t in directory.event_types.values() if t.source == "config"}}
