"""The storage rules of relay.storage.rules as tables: each decision both backends apply,
checked without a database."""

from __future__ import annotations

from typing import Any

import pytest

from relay.errors import Conflict, TooManyRequests
from relay.storage import rules
from relay.storage.base import INTERRUPTED, attempt_row, endpoint_row, migrations, sql_in
from relay.storage.postgres.connection import numbered
from relay.storage.reads import where
from relay.types import (
    FINISHED,
    IN_LINE,
    STATES,
    UNFINISHED,
    AttemptRow,
    ConfigEndpoint,
    EndpointRow,
    EndpointSpec,
    StoredAnswer,
)


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


@pytest.mark.parametrize(
    ("count", "limit", "refused"),
    [(0, None, False), (99, None, False), (0, 1, False), (2, 3, False), (3, 3, True),
     (4, 3, True), (0, 0, True)],
)
def test_max_webhooks(count: int, limit: int | None, refused: bool) -> None:
    result = rules.within_max_webhooks("acme", count, limit)
    if not refused:
        assert result is None
    else:
        assert isinstance(result, TooManyRequests)
        assert result.message == (f"tenant 'acme' already has {count} webhooks, its "
                                  "max_webhooks; delete one first")


@pytest.mark.parametrize(
    ("changes", "written"),
    [
        ({}, {}),
        ({"name": "n", "is_paused": True}, {"name": "n", "is_paused": True}),
        ({"spec": EndpointSpec(url="u", timeout=5.0)},
         {"spec": '{"enabled": true, "events": ["*"], "filter": {}, "headers": {}, "ordering": '
                  '"none", "payload": "envelope", "signature": "standard-webhooks", '
                  '"timeout": 5.0, "url": "u"}'}),
        ({"disable_reason": None, "consecutive_failures": 0, "failing_since": None,
          "is_active": True},
         {"disable_reason": None, "consecutive_failures": 0, "failing_since": None,
          "is_active": True}),
    ],
)
def test_which_columns_an_update_writes(changes: dict[str, Any],
                                        written: dict[str, Any]) -> None:
    values = rules.endpoint_changes(changes)
    assert values == written and list(values) == list(written)


@pytest.mark.parametrize("column", ["secret", "tenant", "id", "deleted_at", "updated_at"])
def test_an_update_may_not_change_other_columns(column: str) -> None:
    with pytest.raises(ValueError, match=f"not updatable: \\['{column}'\\]"):
        rules.endpoint_changes({"name": "n", column: "x"})


def _row(**fields: Any) -> EndpointRow:
    base: dict[str, Any] = dict(
        id="ep", tenant="t", source="api", name="ep", spec=EndpointSpec(url="u"), secret="s",
        prev_secret=None, prev_secret_until=None, is_active=True, is_paused=False,
        disable_reason=None, created_at=0.0, last_delivery_at=None,
        last_delivery_status=None, consecutive_failures=0, failing_since=None)
    return EndpointRow(**{**base, **fields})


@pytest.mark.parametrize(
    ("endpoint", "state"),
    [
        (_row(), "pending"),
        (None, "held"),  # deleted meanwhile: its deliveries are cancelled, not sent
        (_row(is_paused=True), "held"),
        (_row(is_active=False), "held"),
        (_row(spec=EndpointSpec(url="u", enabled=False)), "held"),
        (_row(spec=EndpointSpec(url="u", enabled=True)), "pending"),
    ],
)
def test_the_state_an_unclaimed_delivery_returns_to(endpoint: EndpointRow | None,
                                                    state: str) -> None:
    assert rules.unclaimed_state(endpoint) == state


@pytest.mark.parametrize(
    ("head_state", "attempts", "blocks"),
    [
        ("pending", 0, False),  # never tried
        ("pending", 1, True),  # failed once, waits for its retry
        ("delivering", 1, False),  # its first attempt is in flight
        ("delivering", 2, True),  # being retried
        ("pending", 5, True),
    ],
)
def test_the_head_blocks_the_others_once_it_has_failed(head_state: str, attempts: int,
                                                       blocks: bool) -> None:
    assert rules.blocks(head_state, attempts) is blocks


@pytest.mark.parametrize("flag", [1, True])  # SQLite's 0/1, PostgreSQL's bool
def test_an_endpoint_row_reads_alike_from_either_backend(flag: Any) -> None:
    row = ("ep", "t", "api", "n", '{"url": "u"}', "s", None, None, flag, 0 * flag, None,
           1.0, None, None, 2, 3.0, 0.0, None, None)
    assert endpoint_row(row) == _row(name="n", created_at=1.0, consecutive_failures=2,
                                     failing_since=3.0)
    assert endpoint_row(row).is_paused is False


def test_an_interrupted_attempt_row_has_no_headers_or_body() -> None:
    row = (7, 2, 1.0, None, None, None, None, None, INTERRUPTED)
    assert attempt_row(row) == AttemptRow(7, 2, 1.0, None, {}, None, {}, b"", INTERRUPTED)


@pytest.mark.parametrize(
    ("until", "secrets"),
    [
        (None, ("whsec_new", None, None)),  # no grace: the old one stops at once
        (100.0, ("whsec_new", "whsec_old", 100.0)),  # both sign until the grace ends
    ],
)
def test_rotate_secrets_grace(until: float | None,
                              secrets: tuple[str, str | None, float | None]) -> None:
    r = rules.rotation("whsec_old", "whsec_new", until)
    assert (r.secret, r.prev_secret, r.prev_secret_until) == secrets


def _config(endpoint_id: str, url: str = "u", tenant: str = "t",
            secret: str | None = None) -> ConfigEndpoint:
    return ConfigEndpoint(endpoint_id, tenant, EndpointSpec(url=url), secret)


def _stored(source: str = "config", url: str = "u", tenant: str = "t",
            secret: str = "s", deleted: bool = False) -> rules.StoredConfig:
    return rules.StoredConfig(source, tenant, EndpointSpec(url=url).to_json(), secret, deleted)


@pytest.mark.parametrize(
    ("endpoints", "stored", "plan"),
    [
        ([], {}, ([], [], [])),
        ([_config("a")], {}, (["a"], [], [])),  # new
        ([_config("a")], {"a": _stored()}, ([], [], [])),  # unchanged: left alone
        ([_config("a", secret="s")], {"a": _stored()}, ([], [], [])),  # same secret
        ([_config("a", url="v")], {"a": _stored()}, ([], ["a"], [])),  # spec changed
        ([_config("a", tenant="t2")], {"a": _stored()}, ([], ["a"], [])),
        ([_config("a", secret="s2")], {"a": _stored()}, ([], ["a"], [])),  # a new secret
        ([_config("a")], {"a": _stored(deleted=True)}, ([], ["a"], [])),  # back again
        ([], {"a": _stored()}, ([], [], ["a"])),  # gone from the file
        ([], {"a": _stored(deleted=True)}, ([], [], [])),  # already removed
        ([_config("b")], {"c": _stored(), "a": _stored()}, (["b"], [], ["a", "c"])),
    ],
)
def test_config_sync_plan(endpoints: list[ConfigEndpoint],
                          stored: dict[str, rules.StoredConfig],
                          plan: tuple[list[str], list[str], list[str]]) -> None:
    result = rules.config_sync(endpoints, stored)
    assert isinstance(result, rules.SyncPlan)
    assert ([e.id for e in result.add], [e.id for e in result.update], result.remove) == plan
    assert result.changed is any(plan)


def test_config_sync_refuses_an_api_endpoints_id_whole() -> None:
    result = rules.config_sync([_config("a"), _config("b")],
                               {"b": _stored(source="api"), "c": _stored()})
    assert isinstance(result, Conflict)
    assert result.message == "endpoint id 'b' is already used by an API endpoint"


@pytest.mark.parametrize(
    ("bounds", "used", "order"),
    [
        # (type, before, since, until): the conditions that apply, the order
        ((None, None, None, None), ["tenant = ?"], "seq DESC"),
        (("order.paid", "evt_1", None, None),
         ["tenant = ?", "type = ?", "seq < (SELECT seq FROM events WHERE id = ?)"],
         "seq DESC"),
        ((None, None, 10.0, None), ["tenant = ?", "created_at >= ?"],
         "created_at DESC, seq DESC"),
        ((None, "evt_1", None, 20.0),
         ["tenant = ?", "created_at < ?",
          "(created_at, seq) < (SELECT created_at, seq FROM events WHERE id = ?)"],
         "created_at DESC, seq DESC"),
    ],
)
def test_a_page_of_events(bounds: tuple[Any, Any, Any, Any], used: list[str],
                          order: str) -> None:
    page = rules.event_page("acme", *bounds)
    assert [sql for sql, value in page.conditions if value is not None] == used
    assert all(sql.count("?") == 1 for sql, _ in page.conditions)
    assert page.order == order


@pytest.mark.parametrize(
    ("conditions", "always", "sql", "values"),
    [
        ([("a = ?", 1), ("b = ?", None), ("c < ?", 3)], (), "a = ? AND c < ?", [1, 3]),
        ([("a = ?", None)], ("deleted_at IS NULL",), "deleted_at IS NULL", []),
        (rules.delivery_page("ep", None, 9), (), "endpoint_id = ? AND id < ?", ["ep", 9]),
        (rules.endpoint_page("acme", None), ("deleted_at IS NULL",),
         "deleted_at IS NULL AND tenant = ?", ["acme"]),
    ],
)
def test_a_lists_optional_filters(conditions: list[rules.Condition], always: tuple[str, ...],
                                  sql: str, values: list[Any]) -> None:
    assert where(conditions, *always) == (sql, values)


@pytest.mark.parametrize(
    ("written", "postgres"),
    [
        ("SELECT 1", "SELECT 1"),
        ("a = ? AND b IN (SELECT x FROM t WHERE y = ?) LIMIT 5",
         "a = $1 AND b IN (SELECT x FROM t WHERE y = $2) LIMIT 5"),
    ],
)
def test_the_shared_reads_placeholders_on_postgresql(written: str, postgres: str) -> None:
    assert numbered(written) == postgres


_ANSWERED = StoredAnswer("d", 201, b"{}", 1000.0)
_IN_FLIGHT = StoredAnswer("d", None, b"", 1000.0)


@pytest.mark.parametrize(("stored", "digest", "now", "expected"), [
    (None, "d", 1000.0, None),  # a new key: run it
    (_ANSWERED, "d", 1001.0, _ANSWERED),  # the same request again: the first answer
    (_ANSWERED, "other", 1001.0, "another request"),
    (_ANSWERED, "other", 1000.0 + rules.REQUEST_KEPT, None),  # expired: a new request
    (_ANSWERED, "d", 1000.0 + rules.REQUEST_KEPT - 1, _ANSWERED),
    (_IN_FLIGHT, "d", 1001.0, "still being answered"),
    (_IN_FLIGHT, "other", 1001.0, "another request"),
    (_IN_FLIGHT, "d", 1000.0 + rules.REQUEST_ABANDONED, None),  # lost: run it again
])
def test_what_a_request_under_an_idempotency_key_gets(
        stored: StoredAnswer | None, digest: str, now: float, expected: object) -> None:
    decision = rules.answer_again(stored, digest, now)
    if isinstance(expected, str):
        assert isinstance(decision, Conflict) and expected in decision.message
    else:
        assert decision == expected


@pytest.mark.parametrize(("uid", "holder", "refused"), [
    ("crm", None, False), ("crm", "ep_1", True)])
def test_a_uid_names_one_endpoint(uid: str, holder: str | None, refused: bool) -> None:
    assert (rules.uid_free(uid, holder) is not None) is refused
