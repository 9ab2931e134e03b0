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


@pytest.mark.parametrize(
    ("state", "retry", "cancel"),
    [
        (None, "404 no delivery dlv_7", "404 no delivery dlv_7"),
        ("pending", "409 delivery dlv_7 is pending; only finished deliveries (succeeded, "
         "failed, cancelled) can be retried", "409 delivery dlv_7 is pending already; only "
         "unfinished deliveries (pending, held, delivering) can be cancelled"),
        ("delivering", "409 delivery dlv_7 is delivering; only finished deliveries "
         "(succeeded, failed, cancelled) can be retried", None),
        ("succeeded", None, "409 delivery dlv_7 is succeeded already; only unfinished "
         "deliveries (pending, held, delivering) can be cancelled"),
    ],
)
def test_why_a_retry_or_a_cancel_was_refused(
        state: str | None, retry: str | None, cancel: str | None) -> None:
    for refuse, expected in ((rules.retry_refused, retry), (rules.cancel_refused, cancel)):
        if expected is not None:
            error = refuse(7, state)
            assert f"{error.status} {error.message}" == expected


def test_an_unknown_endpoint_is_not_found() -> None:
    error = rules.no_endpoint("ep")
    assert (error.status, error.message) == (404, "no webhook 'ep'")
