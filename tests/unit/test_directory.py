"""The directory (relay.directory) as a value: the file's tenants and keys beside the
stored ones, never merged, and the file alone deciding whether relay is open."""

from __future__ import annotations

from relay import config as cfgmod
from relay import directory
from relay.types import ApiKeyRow, DirectoryRows, TenantRow
from tests.helpers import sha

T0 = 1_800_000_000.0
FILE = cfgmod.validate({
    "tenants": [{"id": "acme", "max_webhooks": 2}, {"id": "frozen", "webhooks_enabled": False}],
    "api_keys": [{"name": "admin", "key_sha256": sha("admin"), "scopes": ["admin"]}],
}, {})


def stored(tenant_id: str, uid: str | None = None) -> TenantRow:
    return TenantRow(tenant_id, tenant_id.upper(), {"k": "v"}, 5, True, uid, 10, T0, T0 + 1)


def rows(*tenants: TenantRow, keys: tuple[ApiKeyRow, ...] = ()) -> DirectoryRows:
    return DirectoryRows(7, tenants, keys)


def test_the_files_entries_come_first_then_datas_each_with_its_source() -> None:
    key = ApiKeyRow("key_1", "ci", sha("ci"), ("webhooks:read", "events:write"), "globex",
                    T0 + 60, T0)
    built = directory.build(FILE, rows(stored("globex", uid="g-1"), keys=(key,)), {}, T0)
    assert list(built.tenants) == ["default", "acme", "frozen", "globex"]
    assert built.version == 7 and not built.open
    acme, globex = built.tenants["acme"], built.tenants["globex"]
    assert (acme.source, acme.max_webhooks, acme.name, acme.created_at) == (
        "config", 2, "acme", T0)
    assert not built.tenants["frozen"].webhooks_enabled
    assert globex == directory.Tenant("globex", "GLOBEX", {"k": "v"}, 5, True, "api", T0,
                                      T0 + 1, "g-1", 10)
    assert built.named("g-1") is globex and built.named("globex") is globex
    assert built.named("nobody") is None
    assert [k.source for k in built.keys.values()] == ["config", "api"]
    ci = built.key(sha("ci"))
    assert ci is not None and ci.scopes == {"webhooks:read", "events:write"}
    assert ci.id == "key_1" and not ci.expired(T0 + 59) and ci.expired(T0 + 60)


def test_config_entries_keep_the_time_they_were_first_loaded() -> None:
    first = directory.build(FILE, rows(), {}, T0)
    later = directory.build(FILE, rows(), directory.seen_at(first), T0 + 100)
    assert later.tenants["acme"].created_at == T0
    assert later.key(sha("admin")) is not None
    assert later.keys[sha("admin")].created_at == T0


def test_the_file_alone_decides_whether_relay_is_open() -> None:
    open_file = cfgmod.validate({}, {})
    key = ApiKeyRow("key_1", "ci", sha("ci"), ("admin",), "default", None, T0)
    built = directory.build(open_file, rows(keys=(key,)), {}, T0)
    assert built.open and built.key(sha("ci")) is not None
    assert list(directory.of_file(open_file).tenants) == ["default"]


def test_a_file_tenant_that_exists_as_data_is_a_clash_and_the_file_wins() -> None:
    clashing = rows(stored("acme"), stored("globex", uid="frozen"), stored("other"))
    assert directory.clashes(FILE.config, clashing) == [
        "tenants[0].id: tenant 'acme' exists as data (made through the API as 'acme'): "
        "delete it there, or give this one another id",
        "tenants[1].id: tenant 'frozen' exists as data (made through the API as 'globex'): "
        "delete it there, or give this one another id",
    ]
    built = directory.build(FILE, clashing, {}, T0)
    assert built.tenants["acme"].source == "config"
    assert "globex" not in built.tenants and built.named("frozen") is built.tenants["frozen"]
    assert built.tenants["other"].source == "api"
    assert directory.clashes(FILE.config, rows(stored("other"))) == []
