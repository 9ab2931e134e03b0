"""The idempotency decision of ingest as a table: what each batch is answered and which
events are inserted, given what is already stored."""

from __future__ import annotations

import pytest

from relay.errors import Conflict
from relay.storage.idempotency import Key, Prior, decide, keys
from relay.types import Ingested, NewEvent

NOW = 1_700_000_000.0
Ev = tuple[str, str, str | None, str]  # (id, tenant, idempotency key, digest)


def event(spec: Ev, deliveries: int = 1) -> NewEvent:
    id_, tenant, key, digest = spec
    return NewEvent(id_, tenant, "order.created", key, digest, NOW, b"{}",
                    tuple((f"ep{i}", "pending") for i in range(deliveries)))


STORED = {("t1", "k-old"): Prior("evt_old", "order.paid", NOW - 60, "d-old", 3)}


@pytest.mark.parametrize(
    ("batches", "answers", "fresh"),
    [
        # no keys: every event is new
        ([[("e1", "t1", None, "a"), ("e2", "t1", None, "a")]],
         [[("e1", False), ("e2", False)]], ["e1", "e2"]),
        # a stored key with the same digest: the original, nothing inserted
        ([[("e1", "t1", "k-old", "d-old")]], [[("evt_old", True)]], []),
        # a stored key with another digest: the batch is refused
        ([[("e1", "t1", None, "a"), ("e2", "t1", "k-old", "other")]], ["evt_old"], []),
        # the same key under another tenant is another key
        ([[("e1", "t2", "k-old", "x")]], [[("e1", False)]], ["e1"]),
        # repeated within one batch: the first one answers the second
        ([[("e1", "t1", "k", "a"), ("e2", "t1", "k", "a")]],
         [[("e1", False), ("e1", True)]], ["e1"]),
        # repeated within one batch with another digest: the whole batch is refused
        ([[("e1", "t1", "k", "a"), ("e2", "t1", "k", "b")]], ["e1"], []),
        # across batches of one transaction: the earlier batch's event answers
        ([[("e1", "t1", "k", "a")], [("e2", "t1", "k", "a")]],
         [[("e1", False)], [("e1", True)]], ["e1"]),
        # a refused batch leaves its neighbours alone, and its keys are not remembered
        ([[("e1", "t1", "k", "a"), ("e2", "t1", "k-old", "other")],
          [("e3", "t1", "k", "c")]],
         ["evt_old", [("e3", False)]], ["e3"]),
        # a later batch reusing an earlier batch's key with other content: only it fails
        ([[("e1", "t1", "k", "a")], [("e2", "t1", "k", "b"), ("e3", "t1", None, "c")]],
         [[("e1", False)], "e1"], ["e1"]),
    ],
)
def test_decide(batches: list[list[Ev]], answers: list[list[tuple[str, bool]] | str],
                fresh: list[str]) -> None:
    decision = decide([[event(e) for e in b] for b in batches], STORED)
    assert [e.id for e in decision.fresh] == fresh
    assert len(decision.results) == len(answers)
    for result, expected in zip(decision.results, answers, strict=True):
        if isinstance(expected, str):  # refused: the event that holds the key
            assert isinstance(result, Conflict)
            assert f"already used for event {expected} with different content" in str(result)
        else:
            assert isinstance(result, list)
            assert [(r.id, r.duplicate) for r in result] == expected


def test_a_repeat_answers_the_original_event_as_stored() -> None:
    [result] = decide([[event(("e1", "t1", "k-old", "d-old"))]], STORED).results
    assert result == [Ingested("evt_old", "order.paid", NOW - 60, 3, True)]


def test_a_fresh_event_is_answered_with_its_own_deliveries() -> None:
    [result] = decide([[event(("e1", "t1", "k", "a"), deliveries=2)]], {}).results
    assert result == [Ingested("e1", "order.created", NOW, 2, False)]


def test_the_stored_priors_are_not_changed() -> None:
    stored: dict[Key, Prior] = dict(STORED)
    decide([[event(("e1", "t1", "k", "a"))]], stored)
    assert stored == STORED


def test_keys_are_looked_up_once_each_in_order() -> None:
    batches = [[event(("e1", "t2", "b", "x")), event(("e2", "t1", "b", "x"))],
               [event(("e3", "t2", "b", "x")), event(("e4", "t1", None, "x"))]]
    assert keys(batches) == [("t1", "b"), ("t2", "b")]
