"""`relay listen`: its signature verdicts, and the app's answers, via real ASGI calls."""

from __future__ import annotations

import json

import httpx
import pytest

from relay.delivery.signing import generate_secret, sign
from relay.listen import check, make_app

SECRET = generate_secret()
OTHER = generate_secret()
HMAC_SECRET = "a-shared-secret-of-some-length"
BODY = b'{"id":"evt_1","type":"lead.qualified","data":{}}'
NOW = 1_776_000_000


def signed(scheme: str, secret: str = SECRET, at: int = NOW,
           header: str | None = None) -> dict[str, str]:
    """The headers a delivery signed at `at` carries, names lowercased as ASGI gives them."""
    return {k.lower(): v for k, v in sign(scheme, [secret], "evt_1", at, BODY, header).items()}


@pytest.mark.parametrize(("scheme", "secret"), [
    ("standard-webhooks", SECRET),
    ("hmac-sha256-timestamped", HMAC_SECRET),
    ("hmac-sha256-body", HMAC_SECRET),
    ("svix", SECRET),
])
def test_auto_detects_and_accepts_each_scheme(scheme: str, secret: str) -> None:
    assert check(signed(scheme, secret), BODY, secret, "auto", None, now=NOW) == f"valid {scheme}"


@pytest.mark.parametrize(("headers", "secret", "expected"), [
    (signed("standard-webhooks", OTHER), SECRET, "INVALID standard-webhooks: signature mismatch"),
    (signed("standard-webhooks"), None, "standard-webhooks (not verified: pass --secret)"),
    ({}, SECRET, "unsigned"),
    (signed("hmac-sha256-body", HMAC_SECRET), "short",
     "hmac-sha256-body (not verified: --secret must be at least 16 characters)"),
])
def test_verdicts(headers: dict[str, str], secret: str | None, expected: str) -> None:
    assert check(headers, BODY, secret, "auto", None, now=NOW) == expected


def test_tampered_body_is_invalid() -> None:
    verdict = check(signed("standard-webhooks"), BODY + b" ", SECRET, "auto", None, now=NOW)
    assert verdict == "INVALID standard-webhooks: signature mismatch"


@pytest.mark.parametrize(("scheme", "secret"), [
    ("standard-webhooks", SECRET),
    ("hmac-sha256-timestamped", HMAC_SECRET),
])
def test_stale_timestamp_is_flagged_apart_from_a_valid_signature(scheme: str,
                                                                 secret: str) -> None:
    headers = signed(scheme, secret, at=NOW - 412)
    assert check(headers, BODY, secret, "auto", None, now=NOW) == (
        f"valid {scheme}; STALE timestamp: 412s old (tolerance 300s)")
    assert check(headers, BODY, secret, "auto", None, now=NOW, tolerance=600) == f"valid {scheme}"


def test_stale_and_invalid_are_both_flagged_even_without_a_secret() -> None:
    headers = signed("standard-webhooks", OTHER, at=NOW - 1000)
    assert check(headers, BODY, SECRET, "auto", None, now=NOW) == (
        "INVALID standard-webhooks: signature mismatch; STALE timestamp: 1000s old "
        "(tolerance 300s)")
    assert check(headers, BODY, None, "auto", None, now=NOW).endswith(
        "; STALE timestamp: 1000s old (tolerance 300s)")


def test_future_timestamp_is_flagged() -> None:
    headers = signed("standard-webhooks", at=NOW + 400)
    assert check(headers, BODY, SECRET, "auto", None, now=NOW) == (
        "valid standard-webhooks; FUTURE timestamp: 400s ahead (tolerance 300s)")


def test_custom_header_and_explicit_scheme() -> None:
    headers = signed("hmac-sha256-body", HMAC_SECRET, header="X-Hub-Signature")
    assert check(headers, BODY, HMAC_SECRET, "auto", "X-Hub-Signature",
                 now=NOW) == "valid hmac-sha256-body"
    assert check(headers, BODY, HMAC_SECRET, "hmac-sha256-timestamped", "X-Hub-Signature",
                 now=NOW).startswith("INVALID hmac-sha256-timestamped: no t= timestamp")


async def post(app: object, headers: dict[str, str]) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://listen") as client:
        return await client.post("/hooks", content=BODY, headers=headers)


async def test_app_prints_the_delivery_and_answers_status() -> None:
    lines: list[str] = []
    app = make_app(SECRET, "auto", None, 202, 0.0, out=lines.append)
    response = await post(app, signed("standard-webhooks", at=NOW - 412))
    assert response.status_code == 202 and response.json() == {"received": True}
    assert lines[0].endswith(" POST /hooks -> 202")
    assert "  webhook-id: evt_1" in lines
    assert "  signature: valid standard-webhooks; STALE timestamp: " in "\n".join(lines)
    assert json.loads(lines[-1])["type"] == "lead.qualified"  # the body, pretty-printed


@pytest.mark.parametrize(("fail_rate", "expected"), [(1.0, 500), (0.0, 200)])
async def test_fail_rate_answers_500(fail_rate: float, expected: int) -> None:
    lines: list[str] = []
    app = make_app(None, "auto", None, 200, fail_rate, out=lines.append)
    for _ in range(5):
        assert (await post(app, {})).status_code == expected
    marks = [line for line in lines if line.startswith("---")]
    assert len(marks) == 5
    assert all(m.endswith("-> 500 (--fail-rate)") == (expected == 500) for m in marks)
