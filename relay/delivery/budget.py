"""Claim budget: how many due deliveries the scheduler claims, in all and per endpoint.
Pure.

Claims run ahead of sending, so a freed slot starts the next delivery without a database
round trip; the lease of a claimed delivery covers that wait. Bounds:

- in all, at most 2 x `concurrency` deliveries are loaded (in flight + claimed, waiting),
  and none are claimed while `concurrency` or more outcomes wait to be recorded (the
  database is behind: backpressure);
- per endpoint, at most 2 x its `endpoint_concurrency` (in flight + ready), claimed in
  batches of at least half its slots once some are ready, and at most `MAX_CLAIM` at once;
- a rate-limited endpoint claims no run-ahead (its tokens are spent when claimed): at most
  its free slots, and at most the tokens it was given.
- an ordered (fifo) endpoint claims one delivery, its head, and only when nothing of it is
  in flight, claimed or waiting to be recorded: then the database's head is the next one
  to send (docs/ordering.md).
"""

from __future__ import annotations

MAX_CLAIM = 256  # deliveries claimed per endpoint per round


def total(*, concurrency: int, inflight: int, ready: int, unrecorded: int) -> int:
    """Deliveries the scheduler may claim now across all endpoints (<= 0: none)."""
    if unrecorded >= concurrency:
        return 0
    return 2 * concurrency - inflight - ready


def held_back(*, ordered: bool, inflight: int, ready: int, unrecorded: int) -> bool:
    """An ordered endpoint waits until its previous delivery's outcome is committed: the
    head it would claim is the one the database names, never one behind it."""
    return ordered and inflight + ready + unrecorded > 0


def endpoint(*, concurrency: int, inflight: int, ready: int, budget: int,
             tokens: int | None, ordered: bool = False) -> int:
    """Deliveries to claim now for one due endpoint (<= 0: none), out of `budget` left
    in all; `tokens` None: no rate limit. `ordered`: the caller checked `held_back`."""
    if ordered:
        return min(1, budget, MAX_CLAIM if tokens is None else tokens)
    if tokens is not None:
        return min(concurrency - inflight - ready, budget, MAX_CLAIM, tokens)
    free = min(2 * concurrency - inflight - ready, budget, MAX_CLAIM)
    if ready and free < concurrency // 2:
        return 0  # wait to claim a batch worth the round trip
    return free
