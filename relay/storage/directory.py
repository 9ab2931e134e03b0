"""The directory's storage rules (tenants and API keys kept as data, SPEC §10), each
decided once as a pure function both backends apply, as relay.storage.rules does for
endpoints; and the columns and row mappers both backends read the directory with.

Every write to these tables bumps `directory_changes.version` in its own transaction,
so a process that sees the version move knows its snapshot (relay.directory) is stale.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

from relay.errors import Conflict, NotFound, Unprocessable
from relay.types import ApiKeyRow, Row, TenantRow

# The columns behind TenantRow and ApiKeyRow, in their fields' order.
TENANT_COLS = ("id, name, metadata, max_webhooks, webhooks_enabled, uid, throttle_rate, "
               "created_at, updated_at")
API_KEY_COLS = "id, name, sha256, scopes, tenant, expires_at, created_at"
# The tenant columns update_tenant may set (updated_at is set by every update).
TENANT_UPDATABLE = frozenset({"name", "metadata", "max_webhooks", "webhooks_enabled", "uid",
                              "throttle_rate"})


def tenant_row(row: Row) -> TenantRow:
    """A TenantRow from the columns of TENANT_COLS (SQLite's flags are 0/1)."""
    return TenantRow(id=row[0], name=row[1], metadata=json.loads(row[2]),
                     max_webhooks=row[3], webhooks_enabled=bool(row[4]), uid=row[5],
                     throttle_rate=row[6], created_at=row[7], updated_at=row[8])


def api_key_row(row: Row) -> ApiKeyRow:
    """An ApiKeyRow from the columns of API_KEY_COLS."""
    return ApiKeyRow(id=row[0], name=row[1], sha256=row[2], scopes=tuple(json.loads(row[3])),
                     tenant=row[4], expires_at=row[5], created_at=row[6])


def tenant_values(tenant: TenantRow) -> tuple[Any, ...]:
    """The values of TENANT_COLS for an insert."""
    return (tenant.id, tenant.name, json.dumps(tenant.metadata), tenant.max_webhooks,
            tenant.webhooks_enabled, tenant.uid, tenant.throttle_rate, tenant.created_at,
            tenant.updated_at)


def api_key_values(key: ApiKeyRow) -> tuple[Any, ...]:
    """The values of API_KEY_COLS for an insert."""
    return (key.id, key.name, key.sha256, json.dumps(list(key.scopes)), key.tenant,
            key.expires_at, key.created_at)


def names_free(tenant_id: str, uid: str | None,
               taken: Collection[tuple[str, str | None]]) -> Conflict | None:
    """Whether a tenant may be called `tenant_id` with `uid`, given the stored tenants
    (id, uid) other than itself whose id or uid is one of those names: a tenant is found
    by either (Svix's `{app_id}` takes both), so no name may be another tenant's id or
    uid."""
    for other_id, other_uid in taken:
        if tenant_id in (other_id, other_uid):
            return Conflict(f"tenant id {tenant_id!r} is already used by tenant {other_id!r}")
        if uid is not None and uid in (other_id, other_uid):
            return Conflict(f"uid {uid!r} is already used by tenant {other_id!r}")
    return None


def tenant_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    """The column values an update writes, in the order given; ValueError for a column
    not TENANT_UPDATABLE (a caller's mistake, not a request's)."""
    unknown = set(changes) - TENANT_UPDATABLE
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    return {k: json.dumps(v) if k == "metadata" else v for k, v in changes.items()}


def no_tenant(tenant_id: str) -> NotFound:
    """The answer for a tenant id that no stored tenant has."""
    return NotFound(f"no tenant {tenant_id!r}")


def no_key(key_id: str) -> NotFound:
    """The answer for a key id that no stored key has (revoked ones are deleted)."""
    return NotFound(f"no API key {key_id!r}")


def key_tenant_known(tenant: str, in_file: bool, stored: bool) -> Unprocessable | None:
    """Whether a new key may act in `tenant`: one the config file defines (`in_file`) or
    a stored one, read in the key's transaction (`stored`), so that a key cannot outlive
    a tenant deleted at the same moment."""
    if in_file or stored:
        return None
    return Unprocessable("the request has invalid fields",
                         [{"path": "tenant", "message": f"unknown tenant {tenant!r}"}])
