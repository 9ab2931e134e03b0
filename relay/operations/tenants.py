"""Tenants as data (SPEC §10): what /v1/tenants, the console and Svix's applications
(/api/v1) do, each rule once. Free of HTTP: callers authorise (an admin's operations)
and translate.

The file's tenants (`default` among them) are read-only here: changing or deleting one
is a 409 naming the file, and so is creating one with an id (or uid) the file has. What
two stored tenants may not share, the store decides (relay.storage.directory). Answers
are the directory's `Tenant`s, which every surface shows in its own shape.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, TypeVar

from relay.directory import Tenant, config_tenants, tenant_of
from relay.directory_models import TenantOut
from relay.directory_models import tenant_of as answer_of
from relay.errors import Conflict, NotFound
from relay.models import Page, PageQuery
from relay.operations.pages import Order, sorted_page
from relay.runtime import Relay
from relay.types import TenantRemoved, TenantRow

_T = TypeVar("_T")


def ordered(relay: Relay) -> list[tuple[Order, Tenant]]:
    """Every tenant in list order: the file's as it lists them (`default` first), then
    data's in creation order."""
    return [((0, i, t.id) if t.source == "config" else (1, t.created_at, t.id), t)
            for i, t in enumerate(relay.directory.tenants.values())]


async def list_tenants(relay: Relay, query: PageQuery) -> Page[TenantOut]:
    data, cursor = await sorted_page(relay, "tenants", ordered(relay), query)
    return Page[TenantOut](data=[answer_of(t) for t in data], next=cursor)


def get_tenant(relay: Relay, tenant_id: str) -> Tenant:
    tenant = relay.directory.tenant(tenant_id)
    if tenant is None:
        raise NotFound(f"no tenant {tenant_id!r}")
    return tenant


def webhook_counts(relay: Relay) -> Counter[str]:
    """How many webhooks each tenant has (the file's and the API's), from the set in
    memory: no query."""
    return Counter(endpoint.tenant for endpoint in relay.endpoints.values())


def _in_file(tenant_id: str, what: str) -> Conflict:
    if tenant_id == "default":
        return Conflict(f"tenant 'default' always exists and is relay's own: {what}")
    return Conflict(f"tenant {tenant_id!r} is defined in the config file: {what}")


def _free_of_the_file(relay: Relay, tenant_id: str | None, uid: str | None) -> None:
    """Conflict when the file has `tenant_id` or `uid` as a tenant's id: config entries
    and data never merge."""
    owned = config_tenants(relay.config)
    if tenant_id in owned:
        raise _in_file(tenant_id, "edit it there, or choose another id")
    if uid is not None and uid in owned:
        raise Conflict(f"uid {uid!r} is the id of a tenant of the config file")


def data_tenant(relay: Relay, tenant_id: str) -> Tenant:
    """The data tenant `tenant_id`; Conflict for the file's, NotFound for none."""
    tenant = get_tenant(relay, tenant_id)
    if tenant.source == "config":
        raise _in_file(tenant_id, "change it in the file, not through the API")
    return tenant


async def create_tenant(relay: Relay, tenant_id: str, name: str,
                        metadata: dict[str, str], max_webhooks: int | None,
                        webhooks_enabled: bool, *, uid: str | None = None,
                        throttle_rate: int | None = None) -> Tenant:
    """A new tenant, usable on every process when this returns (this one at once,
    the others within a second)."""
    _free_of_the_file(relay, tenant_id, uid)
    now = relay.clock()
    row = await relay.keeper.create_tenant(TenantRow(
        tenant_id, name, metadata, max_webhooks, webhooks_enabled, uid, throttle_rate,
        now, now))
    return tenant_of(row)


async def change_tenant(relay: Relay, tenant_id: str, changes: dict[str, Any]) -> Tenant:
    """Set the given fields (relay.storage.directory.TENANT_UPDATABLE) of a data
    tenant; disabling one ends its portal sessions."""
    data_tenant(relay, tenant_id)
    if changes.get("uid") is not None:
        _free_of_the_file(relay, None, changes["uid"])
    return tenant_of(await relay.keeper.change_tenant(tenant_id, changes))


async def delete_tenant(relay: Relay, tenant_id: str) -> TenantRemoved:
    """Delete a data tenant: its webhooks (their unfinished deliveries cancelled) and
    its API keys go, its events stay until retention."""
    data_tenant(relay, tenant_id)
    return await relay.keeper.delete_tenant(tenant_id)

