"""The storage rules of relay.storage.rules as tables: each decision both backends apply,
checked without a database."""

from __future__ import annotations

import pytest

from relay.errors import Conflict
from relay.storage import rules
from relay.storage.base import FINISHED, IN_LINE, STATES, UNFINISHED, migrations, sql_in


@pytest.mark.parametrize(
    ("taken", "refused"),
    [(False, None), (True, "endpoint id 'ep' is already used")],
)
def test_a_new_endpoint_needs_a_free_id(taken: bool, refused: str | None) -> None:
    result = rules.endpoint_id_free("ep", taken)
    if refused is None:
        assert result is None
    else:
        assert isinstance(result, Conflict) and result.message == refused


@pytest.mark.parametrize(
    ("source", "refused"),
    [
        (None, False),  # a new id
        ("config", False),  # the file's own endpoint, updated (or brought back)
        ("api", True),  # an API endpoint has it: the file may not take it over
    ],
)
def test_a_config_endpoint_may_not_take_an_api_endpoints_id(
        source: str | None, refused: bool) -> None:
    result = rules.config_id_free("ep", source)
    if not refused:
        assert result is None
    else:
        assert isinstance(result, Conflict)
        assert result.message == "endpoint id 'ep' is already used by an API endpoint"


def test_every_state_is_finished_or_not_and_sql_lists_them() -> None:
    assert sorted(UNFINISHED + FINISHED) == sorted(STATES)
    assert set(IN_LINE) < set(UNFINISHED)
    assert sql_in(UNFINISHED) == "('pending', 'held', 'delivering')"
    assert sql_in(IN_LINE) == "('pending', 'delivering')"


@pytest.mark.parametrize("folder", ["", "postgres"])
def test_the_head_query_repeats_the_unfinished_index_term(folder: str) -> None:
    # SQLite uses a partial index only for a query that repeats its WHERE term as written.
    [index] = [sql for n, sql in migrations(folder) if "deliveries_unfinished" in sql]
    assert f"WHERE state IN {sql_in(IN_LINE)};" in " ".join(index.split())
