"""The config key table: validation with key paths, defaults, the rendered example."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from relay import config as cfgmod
from relay.errors import ConfigError
from tests.helpers import BAD_HEADER_NAMES, BAD_HEADER_VALUES, FORBIDDEN_HEADERS

ROOT = Path(__file__).resolve().parents[2]
GOOD_SECRET = "whsec_" + "A" * 43 + "="


def errors_of(data: dict, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        cfgmod.validate(data, env or {})
    return [str(d) for d in info.value.details]


def test_embedded_defaults() -> None:
    loaded = cfgmod.validate({}, {})
    cfg = loaded.config
    assert cfg.server.listen == "127.0.0.1:8080"
    assert cfg.server.max_body_bytes == 256 * 1024
    assert cfg.storage.path == "relay.db"
    assert cfg.storage.retention == 7 * 86400
    assert cfg.delivery.timeout == 10
    assert cfg.delivery.disable_after == 5 * 86400
    # The default schedule's last attempt lands about 24 h after the first.
    assert 23 * 3600 <= sum(cfg.delivery.retry_schedule) <= 25 * 3600
    assert cfg.tenant("default") is not None and cfg.tenant("other") is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("10s", 10), ("5m", 300), ("2h", 7200), ("7d", 604800), ("1.5s", 1.5)],
)
def test_durations(text: str, seconds: float) -> None:
    assert cfgmod.parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["10", "ten s", "5 weeks", "", "-1s"])
def test_bad_durations_name_the_key(bad: str) -> None:
    [line] = errors_of({"delivery": {"timeout": bad}})
    assert line.startswith("delivery.timeout: ")
    assert "not a duration" in line


def test_every_error_reported_with_its_key_path() -> None:
    data = {
        "server": {"listen": "nowhere", "log_format": "xml", "max_body_bytes": 0},
        "delivery": {"retry_schedule": ["5s", "soon"], "typo": 1},
        "endpoints": [
            {"id": "ok", "url": "https://a.example/"},
            {"id": "bad id!", "url": "http://b.example/", "events": ["a.*.b"],
             "signature": "md5"},
        ],
    }
    lines = errors_of(data)
    joined = "\n".join(lines)
    for path in ("server.listen:", "server.log_format:", "server.max_body_bytes:",
                 "delivery.retry_schedule[1]:", "delivery.typo: unknown key",
                 "endpoints[1].id:", "endpoints[1].events[0]:", "endpoints[1].signature:"):
        assert path in joined, path


def test_cross_checks_name_the_key() -> None:
    data = {
        "tenants": [{"id": "acme"}, {"id": "acme"}],
        "api_keys": [
            {"name": "a", "key_env": "MISSING", "scopes": ["events:write"]},
            {"name": "b", "scopes": ["admin"], "tenant": "nope",
             "key_sha256": "0" * 64},
        ],
        "endpoints": [
            {"id": "e1", "url": "http://plain.example/"},
            {"id": "e1", "url": "https://x.example/", "tenant": "ghost"},
            {"id": "e3", "url": "https://x.example/", "secret": "short",
             "signature": "hmac-sha256-body"},
            {"id": "e4", "url": "https://x.example/", "secret": "not-whsec-at-all-1234"},
            {"id": "e5", "url": "ftp://x.example/"},
            {"id": "e6", "url": "https://x.example/", "signature_header": "X-Sig"},
        ],
    }
    joined = "\n".join(errors_of(data))
    expected = [
        "tenants[1].id: duplicate tenant",
        "api_keys[0].key_env: environment variable MISSING is not set",
        "api_keys[1].tenant: unknown tenant 'nope'",
        "endpoints[0].url:",
        "endpoints[1].id: duplicate endpoint id",
        "endpoints[1].tenant: unknown tenant 'ghost'",
        "endpoints[2].secret: must be at least 16 characters",
        "endpoints[3].secret:",
        "endpoints[4].url:",
        "endpoints[5].signature_header:",
    ]
    for item in expected:
        assert item in joined, f"{item!r} not in:\n{joined}"


HTTPS = "https://x.example/"


@pytest.mark.parametrize(("data", "expected"), [
    pytest.param(  # the report that started it: the URL check ran only once types were fine
        {"endpoints": [{"id": "e", "url": "not a url", "events": "lead.*"}]},
        ["endpoints[0].events: Input should be a valid list",
         "endpoints[0].url: scheme '(none)' is not allowed: use https://"],
        id="type-error-and-bad-url-in-one-endpoint"),
    pytest.param(
        {"delivery": {"timeout": "ten"},
         "endpoints": [{"id": "e", "url": HTTPS, "tenant": "ghost"}]},
        ["delivery.timeout: 'ten' is not a duration; use a number and unit: 500ms, 10s, 5m, "
         "2h, 7d",
         "endpoints[0].tenant: unknown tenant 'ghost'"],
        id="type-error-and-cross-check-in-other-sections"),
    pytest.param(
        {"colour": "blue", "endpoints": [{"id": "e", "url": "ftp://x.example/"}]},
        ["colour: unknown key",
         "endpoints[0].url: scheme 'ftp' is not allowed: use https://"],
        id="unknown-top-level-key-and-bad-url"),
    pytest.param(  # the URL check depends on allow_http: it waits
        {"delivery": {"allow_http": 5}, "endpoints": [{"id": "e", "url": "http://x.example/"}]},
        ["delivery.allow_http: Input should be a valid boolean, unable to interpret input"],
        id="url-check-waits-for-allow-http"),
    pytest.param(  # ... but not for another key of the same section
        {"delivery": {"timeout": 5}, "endpoints": [{"id": "e", "url": "http://x.example/"}]},
        ["delivery.timeout: 5 is not a duration; use a number and unit: 500ms, 10s, 5m, 2h, 7d",
         "endpoints[0].url: plain http:// is not allowed: use https://, or set "
         "delivery.allow_http = true"],
        id="url-check-runs-beside-other-delivery-errors"),
    pytest.param(  # a valid key beside an invalid one is read as validated ("no" is false)
        {"delivery": {"timeout": 5, "allow_http": "no"},
         "endpoints": [{"id": "e", "url": "http://x.example/", "timeout": "1s",
                        "rate_limit": -1}]},
        ["delivery.timeout: 5 is not a duration; use a number and unit: 500ms, 10s, 5m, 2h, 7d",
         "endpoints[0].rate_limit: Input should be greater than 0",
         "endpoints[0].url: plain http:// is not allowed: use https://, or set "
         "delivery.allow_http = true"],
        id="valid-keys-beside-invalid-ones-are-converted"),
    pytest.param(  # the secret's check depends on the scheme: it waits
        {"endpoints": [{"id": "e", "url": HTTPS, "signature": "md5", "secret": "short"}]},
        ["endpoints[0].signature: Input should be 'standard-webhooks', "
         "'hmac-sha256-timestamped', 'hmac-sha256-body', 'none' or 'svix'"],
        id="secret-check-waits-for-signature"),
    pytest.param(
        {"endpoints": [{"id": "e", "url": HTTPS, "secret": 5, "secret_env": "MISSING"}]},
        ["endpoints[0].secret: Input should be a valid string",
         "endpoints[0].secret_env: environment variable MISSING is not set"],
        id="env-check-runs-beside-a-bad-secret"),
    pytest.param(  # with a tenant id invalid, which tenants exist is unknown
        {"tenants": [{"id": "bad id!"}],
         "api_keys": [{"name": "k", "key_env": "K", "scopes": ["admin"], "tenant": "bad id!"}],
         "endpoints": [{"id": "e", "url": HTTPS, "tenant": "other"}]},
        ["tenants[0].id: String should match pattern '^[A-Za-z0-9_-]{1,64}$'",
         "api_keys[0].key_env: environment variable K is not set"],
        id="tenant-references-wait-for-tenant-ids"),
    pytest.param(
        {"api_keys": [{"name": "k", "key_env": 5, "scopes": [], "tenant": "ghost"}]},
        ["api_keys[0].key_env: Input should be a valid string",
         "api_keys[0].scopes: List should have at least 1 item after validation, not 0",
         "api_keys[0].tenant: unknown tenant 'ghost'"],
        id="api-key-type-errors-and-unknown-tenant"),
    pytest.param(  # each item on its own: a duplicate is found beside another item's error
        {"endpoints": [{"id": "e", "url": HTTPS, "rate_limit": 0},
                       {"id": "e", "url": HTTPS}]},
        ["endpoints[0].rate_limit: Input should be greater than 0",
         "endpoints[1].id: duplicate endpoint id 'e'"],
        id="duplicate-beside-another-items-error"),
    pytest.param(  # reported in section order, whatever found them
        {"endpoints": [{"id": "a", "url": "ftp://x.example/"}, {"id": "b", "url": 5}],
         "server": {"listen": "nowhere"}},
        ["server.listen: 'nowhere' must be HOST:PORT, e.g. 127.0.0.1:8080",
         "endpoints[0].url: scheme 'ftp' is not allowed: use https://",
         "endpoints[1].url: Input should be a valid string"],
        id="section-order"),
    pytest.param(  # without keys every caller is admin: loopback only, for check and serve
        {"server": {"listen": "10.0.0.5:8080"}},
        ["api_keys: required when listening beyond loopback (10.0.0.5:8080): without API "
         "keys every caller is an admin; add [[api_keys]], or listen on 127.0.0.1"],
        id="no-keys-beyond-loopback"),
    pytest.param(
        {"server": {"listen": "0.0.0.0:8080"}},
        ["server.public_url: required when listening on every address (0.0.0.0:8080): "
         "relay cannot tell which names are its own; set the URL clients reach it at, e.g. "
         "https://relay.example.com (and allowed_hosts for other names)",
         "api_keys: required when listening beyond loopback (0.0.0.0:8080): without API "
         "keys every caller is an admin; add [[api_keys]], or listen on 127.0.0.1"],
        id="no-keys-on-every-address"),
    pytest.param(  # keys that are not a list: whether there are any is unknown
        {"server": {"listen": "10.0.0.5:8080"}, "api_keys": 5},
        ["api_keys: must be an array of tables ([[api_keys]])"],
        id="no-keys-check-waits-for-api-keys"),
    pytest.param(
        {"server": {"listen": "localhost:8080"}, "tenants": [5]},
        ["tenants[0]: must be a table"],
        id="no-keys-on-loopback-by-name"),
    pytest.param(
        {"server": 5, "endpoints": {"id": "e"}, "tenants": [5]},
        ["server: must be a table", "tenants[0]: must be a table",
         "endpoints: must be an array of tables ([[endpoints]])"],
        id="not-tables"),
])
def test_every_independent_error_at_once(data: dict, expected: list[str]) -> None:
    assert errors_of(data) == expected


@pytest.mark.parametrize("name", FORBIDDEN_HEADERS + BAD_HEADER_NAMES)
def test_forbidden_header_names_refused(name: str) -> None:
    lines = errors_of({"endpoints": [
        {"id": "e", "url": "https://x.example/", "headers": {"X-Ok": "1", name: "x"}}]})
    assert len(lines) == 1 and lines[0].startswith(f"endpoints[0].headers.{name}: "), lines


@pytest.mark.parametrize("value", BAD_HEADER_VALUES)
def test_bad_header_values_refused(value: str) -> None:
    lines = errors_of({"endpoints": [
        {"id": "e", "url": "https://x.example/", "headers": {"X-Team": value}}]})
    assert len(lines) == 1 and lines[0].startswith("endpoints[0].headers.X-Team: "), lines


@pytest.mark.parametrize(("url", "message"), [
    ("https://x.example/a\x00b", "the URL holds the control character '\\x00' at position 19"),
    ("https://x.example/a b", "the URL holds whitespace (' ' at position 19)"),
    ("http://0x7f.1/", "host '0x7f.1' is not a valid IP address"),
    ("https://x.example/#top", "a #fragment is never sent to the receiver"),
])
def test_non_canonical_urls_refused(url: str, message: str) -> None:
    [line] = errors_of({"delivery": {"allow_http": True},
                        "endpoints": [{"id": "e", "url": url}]})
    assert line.startswith(f"endpoints[0].url: {message}"), line


def test_good_headers_taken_as_given() -> None:
    headers = {"X-Team": "sales", "Authorization": "Bearer a b", "X-Utf8": "caf\u00e9 \u20ac",
               "x~odd!#$%&'*+.^_`|": "", "Accept": "*/*", "X-Tab": "a\tb"}
    loaded = cfgmod.validate({"endpoints": [
        {"id": "e", "url": "https://x.example/", "headers": headers}]}, {})
    assert loaded.config.endpoints[0].headers == headers


def test_header_names_are_case_insensitive_and_unique() -> None:
    lines = errors_of({"endpoints": [
        {"id": "e", "url": "https://x.example/", "headers": {"X-A": "1", "x-a": "2"}}]})
    assert lines == ["endpoints[0].headers.x-a: x-a is given twice (header names ignore case)"]


@pytest.mark.parametrize("name", [n for n in FORBIDDEN_HEADERS + BAD_HEADER_NAMES
                                  if n.lower() not in ("relay-signature", "x-relay-signature")])
def test_forbidden_signature_header_refused(name: str) -> None:
    lines = errors_of({"endpoints": [
        {"id": "e", "url": "https://x.example/", "signature": "hmac-sha256-body",
         "signature_header": name, "secret": "s" * 20}]})
    assert len(lines) == 1 and lines[0].startswith("endpoints[0].signature_header: "), lines
    assert name in lines[0] or repr(name) in lines[0]


def test_signature_header_defaults_and_clash_with_headers() -> None:
    for name in ("Relay-Signature", "x-relay-signature", "Athena-Signature"):
        cfgmod.validate({"endpoints": [{"id": "e", "url": "https://x.example/",
                                        "signature": "hmac-sha256-timestamped",
                                        "signature_header": name, "secret": "s" * 20}]}, {})
    lines = errors_of({"endpoints": [
        {"id": "e", "url": "https://x.example/", "signature": "hmac-sha256-body",
         "signature_header": "Athena-Signature", "secret": "s" * 20,
         "headers": {"athena-signature": "forged"}}]})
    assert lines == ["endpoints[0].headers.athena-signature: athena-signature is this "
                     "endpoint's signature_header"]


def test_api_key_needs_exactly_one_source_and_never_plaintext() -> None:
    both = errors_of({"api_keys": [{"name": "k", "scopes": ["admin"], "key_env": "K",
                                    "key_sha256": "a" * 64}]}, {"K": "x"})
    assert both == ["api_keys[0]: set exactly one of key_env or key_sha256"]
    plain = errors_of({"api_keys": [{"name": "k", "scopes": ["admin"], "key": "secret"}]})
    assert "api_keys[0].key: unknown key" in plain
    scope = errors_of({"api_keys": [{"name": "k", "scopes": ["root"], "key_env": "K"}]},
                      {"K": "x"})
    assert scope[0].startswith("api_keys[0].scopes[0]:")


def test_env_values_are_resolved_but_kept_out_of_the_config() -> None:
    loaded = cfgmod.validate(
        {"api_keys": [{"name": "k", "key_env": "K", "scopes": ["admin"]}],
         "endpoints": [{"id": "e", "url": "https://x.example/", "secret_env": "S"}]},
        {"K": "the-key", "S": GOOD_SECRET},
    )
    assert loaded.endpoint_secrets == {"e": GOOD_SECRET}
    [key] = loaded.api_keys
    assert key.sha256 != "the-key" and len(key.sha256) == 64
    assert "the-key" not in repr(loaded.config)


def test_load_reports_toml_syntax_with_the_file(tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    path.write_text("[server\nlisten = 1\n")
    with pytest.raises(ConfigError, match=r"relay.toml: not valid TOML"):
        cfgmod.load(path)


def test_load_reports_text_that_is_not_utf8_with_where(tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    path.write_bytes(b'[delivery]\nallow_http = true  # caf\xe9\n')  # Latin-1, not UTF-8
    with pytest.raises(ConfigError, match=r"relay.toml: not UTF-8 text: byte 0xe9 at line 2, "
                       r"column 25$"):
        cfgmod.load(path)


def test_example_file_is_the_rendered_key_table() -> None:
    """config.example.toml is generated from the models: regenerate it when this fails
    (python -c 'from relay.config import render_example; print(render_example())')."""
    assert (ROOT / "config.example.toml").read_text() == cfgmod.render_example() + "\n"


def test_example_documents_every_key_and_is_valid() -> None:
    text = cfgmod.render_example()
    for section, field in cfgmod.Config.model_fields.items():
        model = field.annotation
        model = getattr(model, "__args__", [model])[0]
        for name, info in model.model_fields.items():
            key = info.alias or name
            assert re.search(rf"^(# )*#? ?{key} =", text, re.M), f"{section}.{key}"
    cfgmod.validate(tomllib.loads(text), {})  # as shipped
    # With every example block uncommented, it is still valid.
    example_line = re.compile(r"^# (\w+ = .*|\[\[\w+\]\])$")
    live = "\n".join(
        line[2:] if example_line.match(line) else line for line in text.splitlines()
    )
    data = tomllib.loads(live)
    assert data["endpoints"][0]["id"] == "crm"
    cfgmod.validate(data, {"RELAY_BILLING_KEY": "k", "CRM_WEBHOOK_SECRET": "s" * 20})


def test_ordering_is_checked_and_described() -> None:
    endpoint = {"id": "ledger", "url": "https://ledger.example/", "ordering": "fifo"}
    loaded = cfgmod.validate({"endpoints": [endpoint]}, {})
    assert loaded.config.endpoints[0].ordering == "fifo"
    assert "  ledger: https://ledger.example/ <- * [standard-webhooks, fifo]" \
        in cfgmod.describe(loaded)
    with pytest.raises(ConfigError, match=r"endpoints\[0\]\.ordering: Input should be"):
        cfgmod.validate({"endpoints": [{**endpoint, "ordering": "lifo"}]}, {})
