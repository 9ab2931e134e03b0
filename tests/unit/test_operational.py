"""The operational-event decision (pure), as a table; and its documented samples."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from relay.delivery import operational
from relay.types import AttemptResult

ROOT = Path(__file__).resolve().parents[2]
OPS_DELIVERY = 99  # a delivery of an operational event in these tables


def attempt(code: str, delivery_id: int) -> AttemptResult:
    """`ok`, `fail` (retried) or `last` (failed: retries used up)."""
    return AttemptResult(
        delivery_id=delivery_id, endpoint_id="e", attempt=1, started_at=0.0,
        duration_ms=1.0, request_headers={}, status=200 if code == "ok" else 500,
        response_headers={}, response_body=b"", error=None if code == "ok" else "HTTP 500",
        state={"ok": "succeeded", "fail": "pending", "last": "failed"}[code],  # type: ignore[arg-type]
        next_at=None, success=code == "ok",
    )


def event_of(delivery_id: int) -> tuple[str, str]:
    return ("evt_ops", "relay.endpoint.failing") if delivery_id == OPS_DELIVERY \
        else (f"evt_{delivery_id}", "lead.qualified")


@pytest.mark.parametrize(("before", "codes", "ops", "disabled", "expected"), [
    (0, ["fail"] * 2, False, None, []),
    (0, ["fail"] * 3, False, None, ["failing"]),  # the 3rd failure in a row
    (2, ["fail"], False, None, ["failing"]),  # the streak started in an earlier batch
    (3, ["fail"] * 4, False, None, []),  # already reported this streak
    (0, ["fail"] * 3 + ["ok"] + ["fail"] * 3, False, None,
     ["failing", "recovered", "failing"]),  # one per streak, however it flaps
    (5, ["ok"], False, None, ["recovered"]),
    (2, ["ok"], False, None, []),  # never reported failing: nothing to recover from
    (0, ["ok", "ok"], False, None, []),
    (0, ["last"], False, None, ["exhausted"]),
    (2, ["last"], False, None, ["failing", "exhausted"]),
    (0, ["fail"], False, "the endpoint answered 410 Gone", ["disabled"]),
    # Attempts at delivering operational events report nothing (no loops).
    (2, ["fail"], True, None, []),
    (5, ["ok"], True, None, []),
    (0, ["last"], True, None, []),
    (0, ["fail"], True, "the endpoint answered 410 Gone", []),
])
def test_from_attempts(before: int, codes: list[str], ops: bool, disabled: str | None,
                       expected: list[str]) -> None:
    attempts = [attempt(c, OPS_DELIVERY if ops else n) for n, c in enumerate(codes)]
    asked: list[int] = []

    def asking(delivery_id: int) -> tuple[str, str]:
        asked.append(delivery_id)
        return event_of(delivery_id)

    notices = operational.from_attempts(
        "e", "acme", before, attempts, failing_after=3, disabled=disabled,
        disabled_code=None if disabled is None else operational.GONE, event_of=asking,
    )
    assert [n.type.rsplit(".", 1)[1] for n in notices] == expected
    assert all(n.endpoint_id == "e" and n.tenant == "acme" for n in notices)
    # What a caller fetches beforehand covers every question, and is empty when nothing
    # can report (PostgreSQL then skips the query).
    fetched = operational.lookups(before, attempts, failing_after=3, disabled=disabled)
    assert set(asked) <= set(fetched)
    assert bool(fetched) == bool(asked)


def test_exhausted_names_the_delivery_event_and_last_error() -> None:
    [notice] = operational.from_attempts(
        "e", "default", 0, [attempt("last", 7)], failing_after=5, disabled=None,
        disabled_code=None, event_of=event_of,
    )
    assert notice.data == {"delivery_id": "dlv_7", "event_id": "evt_7",
                           "event_type": "lead.qualified", "attempts": 1,
                           "last_status": 500, "last_error": "HTTP 500"}


def test_the_docs_page_shows_every_type_with_its_sample() -> None:
    page = (ROOT / "docs" / "operational-events.md").read_text()
    shown = {}
    for block in re.findall(r"```json\n(.*?)```", page, re.S):
        envelope = json.loads(block)
        shown[envelope["type"]] = envelope["data"]
    assert shown == {name: sample for name, (_, sample) in operational.TYPES.items()}
