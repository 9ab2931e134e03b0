"""The rate limit's token bucket as a table, `now` given."""

from __future__ import annotations

import pytest

from relay.delivery.ratelimit import Bucket, Taken, give_back, take

NOW = 1_000_000.0


@pytest.mark.parametrize(
    ("bucket", "now", "rate", "taken"),
    [
        # A fresh bucket is full: one second's worth at once.
        (Bucket(), NOW, 10.0, Taken(10, NOW + 0.1, Bucket(0.0, NOW))),
        # Empty, just taken: nothing until the next token, 1/rate later.
        (Bucket(0.0, NOW), NOW, 10.0, Taken(0, NOW + 0.1, Bucket(0.0, NOW))),
        # Tokens accrue with time; the fraction left carries over.
        (Bucket(0.0, NOW), NOW + 0.25, 10.0, Taken(2, NOW + 0.3, Bucket(0.5, NOW + 0.25))),
        (Bucket(0.5, NOW), NOW + 0.05, 10.0, Taken(1, NOW + 0.15, Bucket(0.0, NOW + 0.05))),
        # Never more than the burst, however long it was quiet.
        (Bucket(0.0, NOW), NOW + 3600, 10.0, Taken(10, NOW + 3600.1, Bucket(0.0, NOW + 3600))),
        # Below one per second the burst is one token, so it still sends.
        (Bucket(), NOW, 0.5, Taken(1, NOW + 2.0, Bucket(0.0, NOW))),
        (Bucket(0.0, NOW), NOW + 1.0, 0.5, Taken(0, NOW + 2.0, Bucket(0.5, NOW + 1.0))),
        (Bucket(0.0, NOW), NOW + 10.0, 0.5, Taken(1, NOW + 12.0, Bucket(0.0, NOW + 10.0))),
    ],
)
def test_take(bucket: Bucket, now: float, rate: float, taken: Taken) -> None:
    got = take(bucket, now, rate)
    assert (got.allowed, got.bucket.at) == (taken.allowed, taken.bucket.at)
    assert got.next_at == pytest.approx(taken.next_at, abs=1e-6)
    assert got.bucket.tokens == pytest.approx(taken.bucket.tokens, abs=1e-6)


@pytest.mark.parametrize("rate", [0.5, 3.0, 10.0, 250.0])
def test_never_more_than_rate_per_second_plus_the_burst(rate: float) -> None:
    """Taking at every next_at for a minute starts about rate x 60 sends, never more
    than rate x 60 + the burst."""
    bucket, now, started, takes = Bucket(), NOW, 0, 0
    while now < NOW + 60:
        taken = take(bucket, now, rate)
        assert taken.allowed or takes == 0 or taken.next_at > now  # no waiting twice
        started += taken.allowed
        bucket, now, takes = taken.bucket, taken.next_at, takes + 1
    assert rate * 60 - 1 <= started <= rate * 60 + max(rate, 1.0)
    assert takes <= rate * 60 + 1  # each take at next_at finds a token


@pytest.mark.parametrize(("bucket", "unused", "rate", "after"), [
    (Bucket(0.0, 10.0), 3, 5.0, Bucket(3.0, 10.0)),  # returned, at the same count time
    (Bucket(0.5, 10.0), 9, 5.0, Bucket(5.0, 10.0)),  # never past the burst
    (Bucket(0.2, 10.0), 1, 0.5, Bucket(1.0, 10.0)),  # a slow rate's burst is one token
    (Bucket(0.2, 10.0), 0, 5.0, Bucket(0.2, 10.0)),  # nothing unused: unchanged
])
def test_give_back(bucket: Bucket, unused: int, rate: float, after: Bucket) -> None:
    assert give_back(bucket, unused, rate) == after
