"""The directory's storage rules (relay.storage.directory) as tables: what both backends
decide about stored tenants and API keys, checked without a database."""

from __future__ import annotations

import pytest

from relay.errors import Conflict, NotFound, Unprocessable
from relay.storage import directory
from relay.types import ApiKeyRow, TenantRow

TENANT = TenantRow("acme", "Acme", {"plan": "pro"}, 5, True, "acme-uid", None, 1.0, 2.0)
KEY = ApiKeyRow("key_1", "ci", "ab" * 32, ("events:write", "webhooks:read"), "acme", None, 3.0)


@pytest.mark.parametrize(
    ("tenant_id", "uid", "taken", "refused"),
    [
        ("acme", None, [], None),
        ("acme", "a-1", [], None),
        # another tenant has the id, or has it as its uid: either finds that tenant
        ("acme", None, [("acme", None)], "tenant id 'acme' is already used by tenant 'acme'"),
        ("acme", None, [("other", "acme")],
         "tenant id 'acme' is already used by tenant 'other'"),
        # the uid is another tenant's uid or id
        ("acme", "a-1", [("other", "a-1")], "uid 'a-1' is already used by tenant 'other'"),
        ("acme", "other", [("other", None)], "uid 'other' is already used by tenant 'other'"),
    ],
)
def test_a_tenants_names_are_nobody_elses(tenant_id: str, uid: str | None,
                                          taken: list[tuple[str, str | None]],
                                          refused: str | None) -> None:
    result = directory.names_free(tenant_id, uid, taken)
    if refused is None:
        assert result is None
    else:
        assert isinstance(result, Conflict) and result.message == refused


@pytest.mark.parametrize(
    ("in_file", "stored", "refused"),
    [(True, False, False), (False, True, False), (False, False, True)],
)
def test_a_key_acts_in_a_tenant_of_the_file_or_a_stored_one(
        in_file: bool, stored: bool, refused: bool) -> None:
    result = directory.key_tenant_known("acme", in_file, stored)
    if not refused:
        assert result is None
    else:
        assert isinstance(result, Unprocessable)
        assert result.details == [{"path": "tenant", "message": "unknown tenant 'acme'"}]


def test_tenant_changes_write_only_updatable_columns_metadata_as_json() -> None:
    assert directory.tenant_changes({"name": "A", "metadata": {"b": "c"}}) == {
        "name": "A", "metadata": '{"b": "c"}'}
    assert set(directory.TENANT_UPDATABLE) == {
        "name", "metadata", "max_webhooks", "webhooks_enabled", "uid", "throttle_rate"}
    with pytest.raises(ValueError, match="not updatable"):
        directory.tenant_changes({"id": "other"})


def test_rows_round_trip_through_their_columns() -> None:
    """What a backend inserts (the *_values) reads back as the same row (SQLite gives
    its flags as 0/1)."""
    values = list(directory.tenant_values(TENANT))
    assert directory.tenant_row(values) == TENANT
    values[4] = 1
    assert directory.tenant_row(values) == TENANT
    assert directory.api_key_row(directory.api_key_values(KEY)) == KEY
    assert len(directory.TENANT_COLS.split(", ")) == len(values)
    assert len(directory.API_KEY_COLS.split(", ")) == len(directory.api_key_values(KEY))


def test_unknown_ids_are_not_found() -> None:
    assert isinstance(directory.no_tenant("x"), NotFound)
    assert directory.no_tenant("x").message == "no tenant 'x'"
    assert directory.no_key("key_1").message == "no API key 'key_1'"
