"""relay.delivery.signing, checked against independent verifiers.

standard-webhooks against the official `standardwebhooks` package and the spec's published
vector; hmac-sha256-timestamped against a port of the AthenaText Node verifier
(reference/000); hmac-sha256-body against a plain hex HMAC of the raw body
(reference/001, 002). Expected values are computed here with hmac/base64, never by sign().
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from types import MappingProxyType

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from relay.delivery.signing import (
    DEFAULT_HEADER,
    SCHEMES,
    SignatureError,
    check_secret,
    generate_secret,
    sign,
    verify,
)

WHSEC_1 = "whsec_" + base64.b64encode(bytes(range(32))).decode()
WHSEC_2 = "whsec_" + base64.b64encode(bytes(range(100, 132))).decode()
WHSEC_OTHER = "whsec_" + base64.b64encode(b"\xff" * 32).decode()
HMAC_1 = "athena_live_0123456789abcdef"
HMAC_2 = "second-secret-for-rotation"
HMAC_OTHER = "some-other-secret-value"
BODY = '{"id":"evt_8b1a2c3d4e","type":"lead.qualified","data":{"name":"Zoë"}}'.encode()
MSG_ID = "evt_8b1a2c3d4e"
TS = 1_776_184_188

SECRETS = {
    "standard-webhooks": (WHSEC_1, WHSEC_2, WHSEC_OTHER),
    "hmac-sha256-timestamped": (HMAC_1, HMAC_2, HMAC_OTHER),
    "hmac-sha256-body": (HMAC_1, HMAC_2, HMAC_OTHER),
}
SIGNED_SCHEMES = tuple(SECRETS)


def _hex(key: bytes, msg: bytes) -> str:
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


def athena_verify(raw_body: bytes, header: str, secret: str, now: float) -> bool:
    """Line-by-line port of the AthenaText Node.js verifier (reference/000)."""
    ts_part, sig_part = header.split(",")[:2]  # const [tsPart, sigPart] = header.split(',')
    timestamp = ts_part.split("=")[1]
    signature = sig_part.split("=")[1]
    expected = _hex(secret.encode(), (timestamp + ".").encode() + raw_body)
    fresh = abs(now - int(timestamp)) < 300
    return fresh and hmac.compare_digest(signature.encode(), expected.encode())


# --- standard-webhooks ---------------------------------------------------------------


def test_standard_webhooks_published_vector() -> None:
    # The example from the Standard Webhooks specification / reference libraries.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    msg_id, ts, body = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
    key = base64.b64decode(secret.removeprefix("whsec_"))
    independent = base64.b64encode(
        hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    ).decode()
    assert independent == "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert sign("standard-webhooks", [secret], msg_id, ts, body) == {
        "webhook-id": msg_id,
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }


def test_standard_webhooks_two_secrets_exact_value() -> None:
    expected = [
        "v1,"
        + base64.b64encode(
            hmac.new(
                base64.b64decode(s.removeprefix("whsec_")),
                f"{MSG_ID}.{TS}.".encode() + BODY,
                hashlib.sha256,
            ).digest()
        ).decode()
        for s in (WHSEC_1, WHSEC_2)
    ]
    headers = sign("standard-webhooks", [WHSEC_1, WHSEC_2], MSG_ID, TS, BODY, header="Ignored")
    assert headers == {
        "webhook-id": MSG_ID,
        "webhook-timestamp": str(TS),
        "webhook-signature": " ".join(expected),
    }


@pytest.mark.parametrize(
    ("signed_with", "verifier_secret"),
    [
        ([WHSEC_1], WHSEC_1),
        ([WHSEC_1, WHSEC_2], WHSEC_1),
        ([WHSEC_1, WHSEC_2], WHSEC_2),
        ([WHSEC_2, WHSEC_1], WHSEC_1),
    ],
)
@pytest.mark.parametrize("body", [BODY, b"[]", b""])
def test_standard_webhooks_official_verifier_accepts(
    signed_with: list[str], verifier_secret: str, body: bytes
) -> None:
    headers = sign("standard-webhooks", signed_with, "evt_1", int(time.time()), body)
    Webhook(verifier_secret).verify(body, headers, json_parse=False)


@pytest.mark.parametrize(
    ("signed_with", "verifier_secret", "body"),
    [
        ([WHSEC_1, WHSEC_2], WHSEC_OTHER, BODY),
        ([WHSEC_1], WHSEC_2, BODY),
        ([WHSEC_1], WHSEC_1, BODY + b" "),
    ],
    ids=["unsigned-secret", "old-secret-only", "tampered-body"],
)
def test_standard_webhooks_official_verifier_rejects(
    signed_with: list[str], verifier_secret: str, body: bytes
) -> None:
    headers = sign("standard-webhooks", signed_with, "evt_1", int(time.time()), BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(verifier_secret).verify(body, headers, json_parse=False)


def test_unpadded_whsec_secret_signs_like_official() -> None:
    unpadded = WHSEC_1.rstrip("=")
    assert unpadded != WHSEC_1
    headers = sign("standard-webhooks", [unpadded], "evt_1", int(time.time()), BODY)
    Webhook(unpadded).verify(BODY, headers, json_parse=False)


# --- hmac-sha256-timestamped -----------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected_name"),
    [(None, "Relay-Signature"), ("Athena-Signature", "Athena-Signature")],
)
def test_timestamped_exact_value(header: str | None, expected_name: str) -> None:
    headers = sign("hmac-sha256-timestamped", [HMAC_1, HMAC_2], MSG_ID, TS, BODY, header=header)
    sig1 = _hex(HMAC_1.encode(), f"{TS}.".encode() + BODY)
    sig2 = _hex(HMAC_2.encode(), f"{TS}.".encode() + BODY)
    assert headers == {expected_name: f"t={TS},v1={sig1},v1={sig2}"}


@pytest.mark.parametrize("secrets", [[HMAC_1], [HMAC_1, HMAC_2]])
def test_timestamped_passes_athena_verifier(secrets: list[str]) -> None:
    now = int(time.time())
    headers = sign("hmac-sha256-timestamped", secrets, MSG_ID, now, BODY, "Athena-Signature")
    assert list(headers) == ["Athena-Signature"]
    value = headers["Athena-Signature"]
    assert athena_verify(BODY, value, HMAC_1, now)
    # The port really checks things: wrong secret, tampered body, stale clock all fail.
    assert not athena_verify(BODY, value, HMAC_OTHER, now)
    assert not athena_verify(BODY + b"x", value, HMAC_1, now)
    assert not athena_verify(BODY, value, HMAC_1, now + 301)


# --- hmac-sha256-body -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("secrets", "header", "expected"),
    [
        ([HMAC_1], None, {"X-Relay-Signature": _hex(HMAC_1.encode(), BODY)}),
        (
            [HMAC_1, HMAC_2],
            "X-Aethenox-Signature",
            {
                "X-Aethenox-Signature": _hex(HMAC_1.encode(), BODY)
                + " "
                + _hex(HMAC_2.encode(), BODY)
            },
        ),
    ],
)
def test_body_exact_value(secrets: list[str], header: str | None, expected: dict) -> None:
    assert sign("hmac-sha256-body", secrets, MSG_ID, TS, BODY, header=header) == expected


def test_body_matches_reference_receiver() -> None:
    # reference/001-002: "compute an HMAC-SHA256 of the raw body ... compare to the header"
    value = sign("hmac-sha256-body", [HMAC_1], MSG_ID, TS, BODY)["X-Relay-Signature"]
    computed = hmac.new(HMAC_1.encode(), BODY, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(value, computed)


# --- sign(): general --------------------------------------------------------------------


def test_schemes_and_default_headers() -> None:
    assert SCHEMES == ("standard-webhooks", "hmac-sha256-timestamped", "hmac-sha256-body", "none",
                       "svix")
    assert DEFAULT_HEADER == {
        "hmac-sha256-timestamped": "Relay-Signature",
        "hmac-sha256-body": "X-Relay-Signature",
    }


@pytest.mark.parametrize("secrets", [[], [HMAC_1]])
def test_none_scheme_adds_nothing(secrets: list[str]) -> None:
    assert sign("none", secrets, MSG_ID, TS, BODY, header="X-Sig") == {}


@pytest.mark.parametrize("scheme", ["hmac-sha256-timestamped", "hmac-sha256-body"])
def test_hmac_schemes_add_only_the_signature_header(scheme: str) -> None:
    headers = sign(scheme, [HMAC_1], MSG_ID, TS, BODY)
    assert list(headers) == [DEFAULT_HEADER[scheme]]


@pytest.mark.parametrize(
    ("scheme", "secrets"),
    [
        ("standard-webhooks", [HMAC_1]),
        ("standard-webhooks", [WHSEC_1, "whsec_c2hvcnQ="]),
        ("hmac-sha256-body", ["short"]),
        ("hmac-sha256-timestamped", []),
        ("hmac-sha512", [HMAC_1]),
    ],
)
def test_sign_rejects_unusable_input(scheme: str, secrets: list[str]) -> None:
    with pytest.raises(ValueError):
        sign(scheme, secrets, MSG_ID, TS, BODY)


# --- verify() ---------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", SIGNED_SCHEMES)
@pytest.mark.parametrize("which", [0, 1])
def test_verify_accepts_either_rotation_secret(scheme: str, which: int) -> None:
    secrets = SECRETS[scheme]
    headers = sign(scheme, secrets[:2], MSG_ID, TS, BODY)
    verify(scheme, secrets[which], headers, BODY, now=TS + 10)


@pytest.mark.parametrize("scheme", SIGNED_SCHEMES)
def test_verify_header_names_case_insensitive(scheme: str) -> None:
    secret = SECRETS[scheme][0]
    headers = sign(scheme, [secret], MSG_ID, TS, BODY)
    shouted = MappingProxyType({k.upper(): v for k, v in headers.items()})
    verify(scheme, secret, shouted, BODY, now=TS)


def test_verify_custom_header_name() -> None:
    headers = sign("hmac-sha256-timestamped", [HMAC_1], MSG_ID, TS, BODY, "Athena-Signature")
    verify("hmac-sha256-timestamped", HMAC_1, headers, BODY, header="athena-signature", now=TS)
    with pytest.raises(SignatureError, match="no signature header 'Relay-Signature'"):
        verify("hmac-sha256-timestamped", HMAC_1, headers, BODY, now=TS)


@pytest.mark.parametrize("scheme", SIGNED_SCHEMES)
@pytest.mark.parametrize(
    ("case", "match"),
    [
        ("tampered-body", "signature mismatch"),
        ("wrong-secret", "signature mismatch"),
        ("missing-header", "no signature header"),
    ],
)
def test_verify_rejects(scheme: str, case: str, match: str) -> None:
    good, _, other = SECRETS[scheme]
    headers = sign(scheme, [good], MSG_ID, TS, BODY)
    body, secret = BODY, good
    if case == "tampered-body":
        body = BODY.replace(b"lead", b"leaf")
    elif case == "wrong-secret":
        secret = other
    else:
        headers = {k: v for k, v in headers.items() if k != "webhook-signature"}
        headers.pop(DEFAULT_HEADER.get(scheme, ""), None)
    with pytest.raises(SignatureError, match=match):
        verify(scheme, secret, headers, body, now=TS)


def test_verify_rejects_tampered_webhook_id() -> None:
    headers = sign("standard-webhooks", [WHSEC_1], MSG_ID, TS, BODY) | {"webhook-id": "evt_x"}
    with pytest.raises(SignatureError, match="signature mismatch"):
        verify("standard-webhooks", WHSEC_1, headers, BODY, now=TS)


@pytest.mark.parametrize("scheme", ["standard-webhooks", "hmac-sha256-timestamped"])
@pytest.mark.parametrize(
    ("now", "tolerance", "error"),
    [
        (TS + 400, 300, r"timestamp 400s old \(tolerance 300s\)"),
        (TS - 400, 300, r"timestamp 400s in the future \(tolerance 300s\)"),
        (TS + 61, 60, r"timestamp 61s old \(tolerance 60s\)"),
        (TS + 300, 300, None),
        (TS + 10**6, None, None),
    ],
)
def test_verify_timestamp_tolerance(
    scheme: str, now: int, tolerance: int | None, error: str | None
) -> None:
    secret = SECRETS[scheme][0]
    headers = sign(scheme, [secret], MSG_ID, TS, BODY)
    if error is None:
        verify(scheme, secret, headers, BODY, tolerance=tolerance, now=now)
    else:
        with pytest.raises(SignatureError, match=error):
            verify(scheme, secret, headers, BODY, tolerance=tolerance, now=now)


def test_verify_timestamped_rejects_replayed_signature_with_new_timestamp() -> None:
    value = sign("hmac-sha256-timestamped", [HMAC_1], MSG_ID, TS, BODY)["Relay-Signature"]
    forged = {"Relay-Signature": value.replace(f"t={TS}", f"t={TS + 100}")}
    with pytest.raises(SignatureError, match="signature mismatch"):
        verify("hmac-sha256-timestamped", HMAC_1, forged, BODY, now=TS + 100)


def test_verify_body_scheme_has_no_timestamp_check() -> None:
    headers = sign("hmac-sha256-body", [HMAC_1], MSG_ID, TS, BODY)
    verify("hmac-sha256-body", HMAC_1, headers, BODY, now=TS + 10**9)


@pytest.mark.parametrize(
    ("scheme", "headers", "match"),
    [
        ("hmac-sha256-timestamped", {"Relay-Signature": "v1=abcd"}, "no t= timestamp"),
        ("hmac-sha256-timestamped", {"Relay-Signature": "t=soon,v1=ab"}, "invalid timestamp"),
        (
            "standard-webhooks",
            {"webhook-id": MSG_ID, "webhook-timestamp": "x", "webhook-signature": "v1,AA=="},
            "invalid timestamp",
        ),
        ("hmac-sha256-body", {"X-Relay-Signature": ""}, "signature mismatch"),
    ],
)
def test_verify_rejects_malformed(scheme: str, headers: dict[str, str], match: str) -> None:
    with pytest.raises(SignatureError, match=match):
        verify(scheme, SECRETS[scheme][0], headers, BODY, now=TS)


def test_verify_none_accepts_anything() -> None:
    verify("none", "", {}, BODY)


# --- secrets ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scheme", "secret", "ok"),
    [
        ("standard-webhooks", WHSEC_1, True),
        ("standard-webhooks", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", True),  # 24 bytes
        ("standard-webhooks", WHSEC_1.rstrip("="), True),  # unpadded, as official libs allow
        ("standard-webhooks", "whsec_" + base64.b64encode(b"x" * 23).decode(), False),
        ("standard-webhooks", WHSEC_1.removeprefix("whsec_"), False),
        ("standard-webhooks", "whsec_not*base64!!not*base64!!not*base64!", False),
        ("standard-webhooks", "whsec_", False),
        ("standard-webhooks", HMAC_1, False),
        ("hmac-sha256-timestamped", "x" * 16, True),
        ("hmac-sha256-timestamped", "x" * 15, False),
        ("hmac-sha256-body", WHSEC_1, True),
        ("hmac-sha256-body", "", False),
        ("none", "", True),
        ("hmac-sha512", HMAC_1, False),
    ],
)
def test_check_secret(scheme: str, secret: str, ok: bool) -> None:
    reason = check_secret(scheme, secret)
    if ok:
        assert reason is None
    else:
        assert isinstance(reason, str)
        assert reason


def test_check_secret_reasons() -> None:
    assert "whsec_" in (check_secret("standard-webhooks", "abc") or "")
    assert "16 characters" in (check_secret("hmac-sha256-body", "abc") or "")


def test_generate_secret() -> None:
    a, b = generate_secret(), generate_secret()
    assert a.startswith("whsec_")
    assert len(base64.b64decode(a.removeprefix("whsec_"), validate=True)) == 32
    assert a != b
    for scheme in SCHEMES:
        assert check_secret(scheme, a) is None
    headers = sign("standard-webhooks", [a], "evt_1", int(time.time()), BODY)
    Webhook(a).verify(BODY, headers, json_parse=False)


@pytest.mark.parametrize("scheme", ["standard-webhooks", "svix"])
@pytest.mark.parametrize("secret", ["whsec_\u00da" + "A" * 43, "whsec_" + "A" * 42 + "\u00e9",
                                    "whsec_" + "!" * 44])
def test_a_secret_that_is_not_base64_is_refused_not_a_crash(scheme: str, secret: str) -> None:
    """A caller's chosen secret (Svix's endpoint create) with a character outside base64,
    ASCII or not, is a reason to refuse it, never an exception (it was a 500)."""
    assert check_secret(scheme, secret) is not None
