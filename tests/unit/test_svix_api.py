"""Svix's API's pure parts as tables: relay's answers as Svix's (convert), relay's errors
as Svix's (errors), paging (pages.scan) and what an idempotency key's request is."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.requests import Request

from relay.api.svix import convert, errors, idempotency, pages
from relay.errors import BadRequest, Conflict, NotFound, TooManyRequests, Unprocessable
from relay.models import Webhook
from relay.types import ListedAttempt


def _webhook(**fields: Any) -> Webhook:
    base: dict[str, Any] = dict(
        id="ep_1", uid=None, name="", url="https://r.example/", events=["*"], channels=None,
        metadata={}, filter={}, headers={}, signature="svix", signature_header=None,
        payload="data", timeout=None, retry_schedule=None, rate_limit=None,
        ordering="none", tenant="acme", is_active=True, is_paused=False, disable_reason=None,
        source="api", created_at="2026-04-14T16:29:48Z", updated_at="2026-04-14T16:29:49Z",
        last_delivery_at=None, last_delivery_status=None, consecutive_failures=0, pending=0,
        blocked_behind_head=0)
    return Webhook(**{**base, **fields})


@pytest.mark.parametrize(("fields", "expected"), [
    ({}, {"eventTypes": None, "throttleRate": None, "disabled": False, "description": ""}),
    ({"events": ["a.b", "lead.*"]}, {"eventTypes": ["a.b", "lead.*"]}),
    ({"rate_limit": 0.5}, {"throttleRate": 1}),  # Svix's is an integer, at least 1
    ({"rate_limit": 10.4}, {"throttleRate": 10}),
    ({"is_active": False, "name": "CRM"}, {"disabled": True, "description": "CRM"}),
    ({"uid": "crm", "metadata": {"k": "v"}, "channels": ["c"]},
     {"uid": "crm", "metadata": {"k": "v"}, "channels": ["c"]}),
])
def test_endpoints_as_svix_shows_them(fields: dict[str, Any], expected: dict[str, Any]
                                      ) -> None:
    shown = convert.endpoint_out(_webhook(**fields)).model_dump(mode="json")
    assert {k: shown[k] for k in expected} == expected
    assert shown["createdAt"] == "2026-04-14T16:29:48Z"


def _attempt(**fields: Any) -> ListedAttempt:
    base: dict[str, Any] = dict(
        id=7, delivery_id=3, event_id="evt_1", endpoint_id="ep_1", manual=False, n=1,
        started_at=0.0, duration_ms=12.6, status=200, response_body=b'{"ok":true}',
        error=None)
    return ListedAttempt(**{**base, **fields})


@pytest.mark.parametrize(("fields", "content", "expected"), [
    ({}, True, {"status": 0, "statusText": "success", "responseStatusCode": 200,
                "response": '{"ok":true}', "triggerType": 0, "responseDurationMs": 13}),
    ({}, False, {"response": "{}"}),  # Svix's SDK v2 asks without content
    ({"status": 500}, True, {"status": 2, "statusText": "fail", "responseStatusCode": 500}),
    ({"status": 302}, True, {"status": 2}),  # redirects are not followed: a failure
    ({"status": None, "error": "connection refused", "response_body": b"",
      "duration_ms": None}, True,
     {"status": 2, "responseStatusCode": 0, "response": "connection refused",
      "responseDurationMs": 0}),
    ({"manual": True}, True, {"triggerType": 1}),  # a replay's: Svix's manual attempt
    ({"response_body": b"\xff"}, True, {"response": "\ufffd"}),
])
def test_attempts_as_svix_shows_them(fields: dict[str, Any], content: bool,
                                     expected: dict[str, Any]) -> None:
    shown = convert.attempt_out(_attempt(**fields), "https://r/", content).model_dump(
        mode="json")
    assert {k: shown[k] for k in expected} == expected
    assert (shown["id"], shown["msgId"], shown["endpointId"]) == ("atmpt_7", "evt_1", "ep_1")


@pytest.mark.parametrize(("ref", "number"), [
    ("atmpt_12", 12), ("atmpt_0", 0), ("12", None), ("atmpt_", None), ("atmpt_x", None),
    ("atmpt_\uff11", None), ("atmpt_" + "9" * 19, None)])
def test_attempt_ids(ref: str, number: int | None) -> None:
    if number is None:
        with pytest.raises(NotFound):
            convert.attempt_number(ref)
    else:
        assert convert.attempt_number(ref) == number


@pytest.mark.parametrize(("error", "status", "expected"), [
    (NotFound("no webhook 'x'"), 404, {"code": "not_found", "detail": "no webhook 'x'"}),
    (Conflict("taken"), 409, {"code": "conflict", "detail": "taken"}),
    (TooManyRequests("slow down"), 429, {"code": "too_many_requests", "detail": "slow down"}),
    (Unprocessable("bad", [{"path": "events", "message": "m"}]), 422,
     {"detail": [{"loc": ["body", "eventTypes"], "msg": "m", "type": "value_error"}]}),
    (Unprocessable("bad", [{"path": "headers.X-A", "message": "m"},
                           {"path": "events[1]", "message": "n"}]), 422,
     {"detail": [{"loc": ["body", "headers", "X-A"], "msg": "m", "type": "value_error"},
                 {"loc": ["body", "eventTypes", "[1]"], "msg": "n", "type": "value_error"}]}),
    (Unprocessable("bad"), 422, {"detail": [{"loc": ["body"], "msg": "bad",
                                             "type": "value_error"}]}),
    (BadRequest("the body is not valid JSON"), 422,  # Svix answers malformed JSON 422
     {"detail": [{"loc": ["body"], "msg": "the body is not valid JSON",
                  "type": "value_error.jsondecode"}]}),
])
def test_relays_errors_as_svixs(error: Exception, status: int, expected: dict[str, Any]
                                ) -> None:
    assert isinstance(error, (NotFound, Conflict, TooManyRequests, Unprocessable, BadRequest))
    answer = errors.refusal(error)
    assert answer.status_code == status
    assert json.loads(bytes(answer.body)) == expected


async def _scan(rows: list[int], keep: Any, after: str | None, limit: int
                ) -> tuple[list[int], str | None, bool]:
    return await pages.scan(pages.in_memory(rows, str), keep, str, after, limit)


@pytest.mark.parametrize(("after", "limit", "keep", "expected"), [
    (None, 2, None, ([0, 1], "1", True)),
    ("1", 2, None, ([2, 3], "3", True)),
    ("7", 2, None, ([8, 9], "9", False)),  # the last page: still an iterator (A12)
    ("9", 2, None, ([], "9", False)),  # nothing new: the iterator given back
    ("gone", 2, None, ([], "gone", False)),
    (None, 3, "odd", ([1, 3, 5], "5", True)),
    ("5", 3, "odd", ([7, 9], "9", False)),
    (None, 20, None, (list(range(10)), "9", False)),
])
async def test_pages_resume_where_the_last_looked(
        after: str | None, limit: int, keep: str | None,
        expected: tuple[list[int], str | None, bool]) -> None:
    def kept(n: int) -> bool:
        return keep is None or n % 2 == 1

    assert await _scan(list(range(10)), kept, after, limit) == expected


async def test_a_filtered_page_stops_reading_at_the_scan_limit() -> None:
    rows = list(range(pages.MAX_SCAN * 3))
    found, position, more = await _scan(rows, lambda n: n == len(rows) - 1, None, 5)
    assert found == [] and more and position is not None
    assert int(position) < 2 * pages.MAX_SCAN  # stopped, resumable from there


def _request(method: str, path: str, query: str = "") -> Request:
    return Request({"type": "http", "method": method, "path": path, "headers": [],
                    "query_string": query.encode(), "scheme": "http",
                    "server": ("relay", 80)})


def test_an_idempotency_keys_request_is_method_path_query_and_body() -> None:
    first = idempotency.digest(_request("POST", "/api/v1/app/a/msg"), b"{}")
    assert first == idempotency.digest(_request("POST", "/api/v1/app/a/msg"), b"{}")
    others = {
        idempotency.digest(_request("PUT", "/api/v1/app/a/msg"), b"{}"),
        idempotency.digest(_request("POST", "/api/v1/app/b/msg"), b"{}"),
        idempotency.digest(_request("POST", "/api/v1/app/a/msg", "with_content=true"), b"{}"),
        idempotency.digest(_request("POST", "/api/v1/app/a/msg"), b'{"a":1}'),
    }
    assert first not in others and len(others) == 4
