"""[storage]: path selects SQLite, url or url_env PostgreSQL; never a password in the file."""

from __future__ import annotations

import pytest

from relay import config as cfgmod
from relay.errors import ConfigError
from relay.storage import create_store
from relay.storage.postgres import PostgresStore
from relay.storage.sqlite import SQLiteStore

URL = "postgresql://relay@db.internal:5432/relay"


def details(data: dict[str, object], env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as err:
        cfgmod.validate(data, env or {})
    return [str(d) for d in err.value.details]


def test_path_and_url_together_is_an_error_naming_the_keys() -> None:
    assert details({"storage": {"path": "x.db", "url": URL}}) == [
        "storage: set one of path (SQLite), url or url_env (PostgreSQL), not path and url"]


def test_a_password_in_the_file_is_refused() -> None:
    [line] = details({"storage": {"url": "postgresql://relay:hunter2@db/relay"}})
    assert line.startswith("storage.url: a password must not be written in the config file")
    assert "hunter2" not in line


@pytest.mark.parametrize("url", ["mysql://db/relay", "postgresql://db", "db:5432"])
def test_only_postgresql_urls_with_a_database(url: str) -> None:
    [line] = details({"storage": {"url": url}})
    assert line.startswith("storage.url:") and "postgresql://user@host:5432/database" in line


def test_url_env_must_be_set_and_may_carry_the_password() -> None:
    assert details({"storage": {"url_env": "RELAY_DB"}}) == [
        "storage.url_env: environment variable RELAY_DB is not set"]
    secret_url = "postgresql://relay:hunter2@db/relay"
    loaded = cfgmod.validate({"storage": {"url_env": "RELAY_DB"}}, {"RELAY_DB": secret_url})
    assert loaded.config.storage.database_url({"RELAY_DB": secret_url}) == secret_url
    assert "hunter2" not in "\n".join(cfgmod.describe(loaded))


def test_the_factory_chooses_the_backend() -> None:
    sqlite = cfgmod.validate({}, {}).config.storage
    assert isinstance(create_store(sqlite, {}), SQLiteStore)
    postgres = cfgmod.validate({"storage": {"url": URL}}, {}).config.storage
    store = create_store(postgres, {})
    assert isinstance(store, PostgresStore) and store.path == URL


def test_min_free_space_and_timeout_take_units() -> None:
    storage = cfgmod.validate({"storage": {"min_free_space": "512KB", "timeout": "1500ms"}},
                              {}).config.storage
    assert (storage.min_free_space, storage.timeout) == (512 << 10, 1.5)
    defaults = cfgmod.validate({}, {}).config.storage
    assert (defaults.min_free_space, defaults.timeout) == (256 << 20, 5.0)


@pytest.mark.parametrize("size", ["256", "1.5GB", "-1MB", "256 TB", 256])
def test_a_size_without_its_unit_is_refused(size: object) -> None:
    [line] = details({"storage": {"min_free_space": size}})
    assert line.startswith("storage.min_free_space:") and "512KB, 256MB, 2GB" in line


def test_a_zero_timeout_is_refused() -> None:
    [line] = details({"storage": {"timeout": "0s"}})
    assert line.startswith("storage.timeout:") and "greater than 0" in line
