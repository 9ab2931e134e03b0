"""One attempt: what it sends (the body and the headers, signed) and the result its
outcome makes (the retry policy, retry.py, decides the delivery's next state)."""

from __future__ import annotations

from relay.delivery.endpoints import Endpoint
from relay.delivery.headers import FIXED_HEADERS
from relay.delivery.retry import decide
from relay.delivery.sender import Outcome
from relay.delivery.signing import WEBHOOK_ID, sign
from relay.types import AttemptResult, Claimed


def build_request(endpoint: Endpoint, event_id: str, payload: bytes,
                  now: float) -> tuple[bytes, dict[str, str]]:
    """Body and headers of one attempt sent at `now` (scheduled or a test send). A
    rotated-out secret signs only until its grace ends, even if `endpoint` was resolved
    while it was still valid. The endpoint's own headers never name one relay sets (see
    relay.delivery.headers; `resolve` left out any stored before that rule)."""
    body = payload if endpoint.payload == "envelope" else b"[" + payload + b"]"
    secrets = endpoint.secrets
    until = endpoint.row.prev_secret_until
    if len(secrets) > 1 and until is not None and now >= until:
        secrets = secrets[:1]
    headers = {
        **FIXED_HEADERS,
        **endpoint.headers,
        WEBHOOK_ID: event_id,
        **sign(endpoint.signature, secrets, event_id, int(now), body, endpoint.signature_header),
    }
    return body, headers


def result_of(item: Claimed, endpoint: Endpoint, headers: dict[str, str], started: float,
              outcome: Outcome, now: float, *, accepting: bool) -> AttemptResult:
    """What an attempt started at `started` and over at `now` records. `accepting`:
    whether its endpoint accepts deliveries now (it may have been paused meanwhile)."""
    decision = decide(
        attempt=item.attempt, status=outcome.status, ok=outcome.ok,
        retry_after=outcome.retry_after, schedule=endpoint.schedule, now=now,
        accepting=accepting,
    )
    return AttemptResult(
        delivery_id=item.id, endpoint_id=endpoint.id, attempt=item.attempt,
        started_at=started, duration_ms=outcome.duration_ms, request_headers=headers,
        status=outcome.status, response_headers=outcome.headers,
        response_body=outcome.body, error=outcome.error, state=decision.state,
        next_at=decision.next_at, success=outcome.ok, gone=decision.gone,
    )
