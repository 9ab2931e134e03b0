"""One attempt: what it sends (the body and the headers, signed) and the result its
outcome makes (the retry policy, retry.py, decides the delivery's next state)."""

from __future__ import annotations

from relay.delivery.endpoints import Endpoint
from relay.delivery.headers import FIXED_HEADERS
from relay.delivery.retry import decide
from relay.delivery.sender import Outcome
from relay.delivery.signing import id_header, sign
from relay.types import AttemptResult, Claimed, Payload

# Where an envelope's `data` starts: relay.runtime.events.envelope serialises it last, and
# no value before it (an id, a type name, an ISO time, a tenant id) can hold this text.
_DATA = b',"data":'


def body_of(payload: bytes, mode: Payload) -> bytes:
    """What a delivery's body is, from the stored envelope: the envelope itself, wrapped
    in a one-element array, or its `data` alone (cut out of the bytes, not parsed: the
    value is exactly as the envelope carries it)."""
    if mode == "envelope":
        return payload
    if mode == "array":
        return b"[" + payload + b"]"
    return payload[payload.index(_DATA) + len(_DATA):-1]


def build_request(endpoint: Endpoint, event_id: str, payload: bytes,
                  now: float) -> tuple[bytes, dict[str, str]]:
    """Body and headers of one attempt sent at `now` (scheduled or a test send). A
    rotated-out secret signs only until its grace ends, even if `endpoint` was resolved
    while it was still valid. The endpoint's own headers never name one relay sets (see
    relay.delivery.headers; `resolve` left out any stored before that rule)."""
    body = body_of(payload, endpoint.payload)
    secrets = endpoint.secrets
    until = endpoint.row.prev_secret_until
    if len(secrets) > 1 and until is not None and now >= until:
        secrets = secrets[:1]
    headers = {
        **FIXED_HEADERS,
        **endpoint.headers,
        id_header(endpoint.signature): event_id,
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
