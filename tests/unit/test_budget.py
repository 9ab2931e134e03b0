"""The claim budget as a table: how many due deliveries the scheduler claims."""

from __future__ import annotations

import pytest

from relay.delivery import budget


@pytest.mark.parametrize(
    ("concurrency", "inflight", "ready", "unrecorded", "total"),
    [
        (10, 0, 0, 0, 20),  # run ahead: twice the concurrency loaded at most
        (10, 10, 0, 0, 10),
        (10, 10, 10, 0, 0),
        (10, 4, 3, 9, 13),
        (10, 4, 3, 10, 0),  # the database is behind on recording: claim nothing
    ],
)
def test_total(concurrency: int, inflight: int, ready: int, unrecorded: int,
               total: int) -> None:
    assert budget.total(concurrency=concurrency, inflight=inflight, ready=ready,
                        unrecorded=unrecorded) == total


@pytest.mark.parametrize(
    ("concurrency", "inflight", "ready", "left", "tokens", "claim"),
    [
        (4, 0, 0, 100, None, 8),  # its slots, and as many again to run ahead
        (4, 4, 0, 100, None, 4),
        (4, 4, 2, 100, None, 2),  # exactly half its slots: worth a claim
        (4, 4, 3, 100, None, 0),  # one would be ready already: wait for a batch
        (4, 1, 0, 3, None, 3),  # the budget left in all
        (4, 0, 0, 0, None, 0),
        (1000, 0, 0, 10_000, None, budget.MAX_CLAIM),  # one claim stays small
        (1, 1, 0, 100, None, 1),
        (1, 1, 1, 100, None, 0),
        # Rate-limited: no run-ahead, and no more than the tokens.
        (4, 0, 0, 100, 10, 4),
        (4, 1, 0, 100, 2, 2),
        (4, 3, 0, 100, 10, 1),
        (4, 4, 0, 100, 10, 0),
        (4, 0, 0, 100, 0, 0),
        (4, 0, 0, 1, 10, 1),
    ],
)
def test_endpoint(concurrency: int, inflight: int, ready: int, left: int,
                  tokens: int | None, claim: int) -> None:
    got = budget.endpoint(concurrency=concurrency, inflight=inflight, ready=ready,
                          budget=left, tokens=tokens)
    assert max(got, 0) == claim


@pytest.mark.parametrize(
    ("ordered", "inflight", "ready", "unrecorded", "held"),
    [
        (True, 0, 0, 0, False),  # nothing of it in the air: claim the head
        (True, 1, 0, 0, True),  # one request in flight at a time
        (True, 0, 1, 0, True),  # claimed, not sent yet
        (True, 0, 0, 1, True),  # sent, outcome not committed: the head may not have moved
        (False, 3, 2, 1, False),  # unordered endpoints are never held back
    ],
)
def test_held_back(ordered: bool, inflight: int, ready: int, unrecorded: int,
                   held: bool) -> None:
    assert budget.held_back(ordered=ordered, inflight=inflight, ready=ready,
                            unrecorded=unrecorded) is held


@pytest.mark.parametrize(
    ("left", "tokens", "claim"),
    [(100, None, 1), (100, 5, 1), (100, 0, 0), (0, None, 0)],  # the head only, if allowed
)
def test_endpoint_ordered(left: int, tokens: int | None, claim: int) -> None:
    got = budget.endpoint(concurrency=8, inflight=0, ready=0, budget=left, tokens=tokens,
                          ordered=True)
    assert max(got, 0) == claim
