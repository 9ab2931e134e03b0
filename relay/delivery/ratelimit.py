"""Rate limit: a token bucket per endpoint, as a pure value.

Tokens accrue at `rate` per second, up to a burst of one second's worth but at least one
token (else a rate below 1/s would never send). `take` hands out every whole token at
once; the fraction left carries over. So over any T seconds an endpoint starts at most
`rate * T + burst` sends. A fresh bucket (counted at time 0) is full at its first `take`.
"""

from __future__ import annotations

from dataclasses import dataclass

# A token this close to whole counts as whole: at `next_at`, float rounding of the time
# elapsed may leave it a hair short, which would make the caller wait a second time.
_ROUNDING = 1e-6


@dataclass(frozen=True, slots=True)
class Bucket:
    tokens: float = 0.0
    at: float = 0.0  # when `tokens` was counted


@dataclass(frozen=True, slots=True)
class Taken:
    allowed: int  # sends that may start now
    next_at: float  # when the next whole token is there
    bucket: Bucket  # what is left


def take(bucket: Bucket, now: float, rate: float) -> Taken:
    """Refill `bucket` for the time since it was counted, then take its whole tokens."""
    tokens = min(max(rate, 1.0), bucket.tokens + (now - bucket.at) * rate)
    allowed = int(tokens + _ROUNDING)
    left = max(0.0, tokens - allowed)
    return Taken(allowed, now + (1 - left) / rate, Bucket(left, now))


def give_back(bucket: Bucket, unused: int, rate: float) -> Bucket:
    """Return tokens taken but not spent (the claim found fewer due deliveries than it
    was allowed, or the endpoint's concurrency allowed fewer), up to the burst."""
    if unused <= 0:
        return bucket
    return Bucket(min(max(rate, 1.0), bucket.tokens + unused), bucket.at)
