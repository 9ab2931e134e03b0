"""The configuration: one pydantic model per TOML section is the key table.

Each key is defined once, here: its type, default and description (`Field`) feed
validation (`load`), `relay check`, `relay init` and `config.example.toml`
(`render_example`). Errors name their key path (`endpoints[1].url: ...`); all of them are
reported at once.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import json
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args
from urllib.parse import urlsplit

import jsonschema_rs
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    PrivateAttr,
    RootModel,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError
from typing_extensions import TypedDict

from relay import hosts
from relay.delivery.headers import clashes, header_problems, name_problem
from relay.delivery.matching import FilterError, Loc, compile_filter
from relay.delivery.signing import SCHEMES, check_secret
from relay.errors import ConfigError
from relay.text import control_problem

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
DURATION_RE = re.compile(r"^ *(\d+(?:\.\d+)?) *(ms|s|m|h|d) *$")
TYPE_RE = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"
ID_RE = r"^[A-Za-z0-9_-]{1,64}$"
PATTERN_RE = r"^(\*|[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*(\.\*)?)$"
SCOPES = ("events:write", "webhooks:read", "webhooks:write", "admin")
DEFAULT_TENANT = "default"


def parse_duration(value: Any) -> float:
    """"500ms", "10s", "5m", "2h", "7d" -> seconds. Bare numbers are refused: a unit is required."""
    if isinstance(value, str):
        match = DURATION_RE.match(value)
        if match:
            return float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    raise ValueError(f"{value!r} is not a duration; use a number and unit: 500ms, 10s, 5m, 2h, 7d")


def format_duration(seconds: float) -> str:
    """The shortest exact duration string for `seconds` (inverse of parse_duration)."""
    for unit in ("d", "h", "m", "s"):
        count = seconds / _DURATION_UNITS[unit]
        if count >= 1 and count == int(count):
            return f"{int(count)}{unit}"
    return f"{round(seconds * 1000)}ms"


Duration = Annotated[float, BeforeValidator(parse_duration)]


def _no_controls(value: str) -> str:
    if problem := control_problem(value):
        raise ValueError(problem)
    return value


# A string relay stores or looks up (an id, key, name, cursor): no control characters
# (relay.text; PostgreSQL cannot store NUL in text). NoControls goes after any
# StringConstraints, which then keep their own messages.
NoControls = AfterValidator(_no_controls)
Text = Annotated[str, NoControls]


_SIZE_UNITS = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}
SIZE_RE = re.compile(r"^\s*(\d+)\s*(B|KB|MB|GB)\s*$")


def parse_size(value: Any) -> int:
    """"512KB", "256MB", "2GB" -> bytes (KB = 1024 bytes). A unit is required."""
    if isinstance(value, str):
        match = SIZE_RE.match(value)
        if match:
            return int(match.group(1)) * _SIZE_UNITS[match.group(2)]
    raise ValueError(f"{value!r} is not a size; use a number and unit: 512KB, 256MB, 2GB")


Size = Annotated[int, BeforeValidator(parse_size)]
DEFAULT_RETRY_SCHEDULE = ["5s", "5m", "30m", "2h", "5h", "8h", "8h"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_S = TypeVar("_S", bound=BaseModel)


def _check_listen(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536 or not host:
        raise ValueError(f"{value!r} must be HOST:PORT, e.g. 127.0.0.1:8080")
    try:
        hosts.normalize(host)
    except ValueError as exc:
        raise ValueError(f"{value!r} must be HOST:PORT: {exc}") from None
    return value


def _check_public_url(value: str | None) -> str | None:
    """http(s)://host[:port], without a path: relay's routes are at the root."""
    if value is None:
        return None
    parts = urlsplit(value)
    if hosts.origin(value) is None or parts.path not in ("", "/") or parts.query \
            or parts.fragment:
        raise ValueError(f"{value!r} must be http(s)://HOST[:PORT] without a path, "
                         "e.g. https://relay.example.com")
    return value.rstrip("/")


def _check_allowed_host(value: str) -> str:
    if value == hosts.ANY:
        return value
    if not isinstance(value, str):
        raise ValueError("must be a host name or address")
    return hosts.normalize(value)  # a port is refused: the port in Host is not compared


class ServerConfig(_Section):
    listen: Annotated[str, BeforeValidator(_check_listen)] = Field(
        "127.0.0.1:8080",
        description="Address and port of the ingest endpoint and API. Listening beyond "
        "loopback requires [[api_keys]]; listening on every address (0.0.0.0, [::]) "
        "requires public_url.",
    )
    public_url: Annotated[str | None, BeforeValidator(_check_public_url)] = Field(
        None,
        description="The URL clients reach relay at: the base of every link relay hands "
        "out (portal links, the console's URL in the log); its host is always allowed. "
        "Default: http:// and the listen address. Behind a proxy or TLS terminator, set "
        "it to the proxy's URL.",
        examples=["https://relay.example.com"],
    )
    allowed_hosts: list[Annotated[str, BeforeValidator(_check_allowed_host)]] = Field(
        default_factory=list,
        description="Host names and addresses relay answers besides its own; a request "
        "naming another host in its Host header is refused (421) before any route runs, "
        "so a web page cannot reach relay through DNS rebinding. Its own: localhost, "
        "127.0.0.1 and [::1] when it listens on loopback or on every address, the listen "
        "address when it is a specific one, and public_url's host. The port is not "
        "compared; X-Forwarded-Host is never read. /healthz, /readyz and /metrics also "
        "answer a Host that is an IP address, or none (probes use addresses; DNS rebinding "
        'needs a name). ["*"] answers every host: only behind a proxy that checks Host '
        "itself.",
        examples=[["relay.internal", "10.0.0.5"]],
    )
    max_body_bytes: int = Field(
        262144, gt=0, description="Largest request body accepted (bytes); larger gets 413."
    )
    log_format: Literal["text", "json"] = Field(
        "text", description='Log lines as "text" (key=value) or "json" (one object per line).'
    )

    @model_validator(mode="after")
    def _public_url_for_wildcard(self) -> ServerConfig:
        if self.is_wildcard and self.public_url is None:
            raise invalid_at("server", [(("public_url",), (
                f"required when listening on every address ({self.listen}): relay cannot "
                "tell which names are its own; set the URL clients reach it at, e.g. "
                "https://relay.example.com (and allowed_hosts for other names)"))])
        return self

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def is_wildcard(self) -> bool:
        """Listening on every address (0.0.0.0, ::)."""
        try:
            return ipaddress.ip_address(self.host).is_unspecified
        except ValueError:
            return False

    @functools.cached_property
    def base_url(self) -> str:
        """public_url, else http:// and the listen address (never a wildcard: then
        public_url is required)."""
        if self.public_url is not None:
            return self.public_url
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @functools.cached_property
    def host_names(self) -> frozenset[str]:
        """The host names relay answers, normalized (relay.hosts); `*` among them: any."""
        own = {hosts.normalize(self.host)} if not self.is_wildcard else set()
        if self.is_loopback or self.is_wildcard:
            own |= hosts.LOOPBACK_NAMES
        host, _ = hosts.parse_host_header(urlsplit(self.base_url).netloc)
        return frozenset({*own, host, *self.allowed_hosts})


_POSTGRES_SCHEMES = ("postgresql", "postgres")


def _check_database_url(value: str | None) -> str | None:
    """A PostgreSQL URL without a password (it belongs in url_env or PGPASSWORD)."""
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in _POSTGRES_SCHEMES or not parts.path.strip("/"):
        raise ValueError(f"{value!r} must be postgresql://user@host:5432/database")
    if parts.password is not None:
        raise ValueError(
            "a password must not be written in the config file; put the whole URL in an "
            "environment variable named by url_env, or the password in PGPASSWORD"
        )
    return value


class StorageConfig(_Section):
    path: str = Field(
        "relay.db", description="SQLite database file (relative to the working directory)."
    )
    url: Annotated[str | None, BeforeValidator(_check_database_url)] = Field(
        None,
        description="PostgreSQL instead of SQLite: postgresql://user@host:5432/db, shared "
        "by every relay serve pointed at it (docs/scaling.md). No password here: use "
        "url_env or PGPASSWORD.",
    )
    url_env: str | None = Field(
        None, description="Name of an environment variable holding the PostgreSQL URL "
        "(which may carry the password); instead of url."
    )
    retention: Duration = Field(
        "7d",
        validate_default=True,
        description="Events, deliveries and attempts older than this are purged in the "
        "background (deliveries still pending or held are kept).",
    )
    sync: Literal["full", "normal"] = Field(
        "full",
        description='When ingest answers 202. "full": after the commit reached the disk '
        "(an fsync per group commit): nothing acknowledged is lost, even by a power loss; "
        "every request in a group waits for the disk's fsync. \"normal\": after the commit "
        "reached the operating system: a crash or kill -9 of relay loses nothing, a power "
        "loss or kernel crash may lose the last moments of acknowledged events (never "
        "corrupts the database); the 202 no longer waits for the disk (SQLite "
        "synchronous=NORMAL; PostgreSQL will map it to synchronous_commit).",
    )
    min_free_space: Size = Field(
        "256MB",
        validate_default=True,
        description="SQLite: below this much free space on the database's filesystem, "
        "/readyz (still 200) lists a warning, the log warns once (and once more when space "
        "returns) and WAL checkpoints run as soon as anything was written. /metrics shows "
        "the free bytes. \"0B\": no warning.",
        examples=["1GB"],
    )
    timeout: Duration = Field(
        "5s",
        validate_default=True,
        gt=0,
        description="PostgreSQL: the longest any database call may take (a statement, "
        "taking or opening a connection); past it the call fails (ingest answers 503) and "
        "the connection is discarded, so a database that stops answering turns /readyz "
        "to 503 within about this long instead of holding requests. Keep it under your "
        "clients' timeout. The heartbeat uses the shorter of this and 2s.",
        examples=["10s"],
    )

    def database_url(self, env: Mapping[str, str]) -> str | None:
        """The PostgreSQL URL (None: SQLite at `path`); ConfigError when more than one of
        them is given, or url_env names an unset variable."""
        given = [k for k in ("path", "url", "url_env")
                 if k in self.model_fields_set and getattr(self, k) is not None]
        if len(given) > 1:
            raise ConfigError("invalid configuration", [
                "storage: set one of path (SQLite), url or url_env (PostgreSQL), "
                f"not {' and '.join(given)}"])
        if self.url_env is None:
            return self.url
        value = env.get(self.url_env)
        if not value:
            raise ConfigError("invalid configuration", [
                f"storage.url_env: environment variable {self.url_env} is not set"])
        parts = urlsplit(value)
        if parts.scheme not in _POSTGRES_SCHEMES or not parts.path.strip("/"):
            raise ConfigError("invalid configuration", [
                f"storage.url_env: {self.url_env} must hold "
                "postgresql://user[:password]@host:5432/database"])
        return value

    @property
    def where(self) -> str:
        """The database as `relay check` and logs name it (never a password)."""
        if self.url_env is not None:
            return f"PostgreSQL from ${self.url_env}"
        return self.url or self.path


class DeliveryConfig(_Section):
    timeout: Duration = Field(
        "10s", validate_default=True, description="Time allowed for one delivery attempt."
    )
    retry_schedule: list[Duration] = Field(
        DEFAULT_RETRY_SCHEDULE,
        validate_default=True,
        min_length=0,
        description="Delays between attempts, each with +-10% jitter; after the last "
        "retry fails the delivery is `failed`. The default ends about 24h after the first.",
    )
    concurrency: int = Field(256, gt=0, description="Deliveries in flight at once, in all.")
    endpoint_concurrency: int = Field(
        16, gt=0, description="Deliveries in flight at once to one endpoint."
    )
    disable_after: Duration = Field(
        "5d",
        validate_default=True,
        description="An endpoint failing without a single success for this long, over "
        "several failed attempts in a row (docs/operational-events.md), is disabled.",
    )
    allow_private_networks: bool = Field(
        False,
        description="Allow destinations resolving to private, loopback or link-local addresses.",
    )
    allow_http: bool = Field(False, description="Allow plain http:// endpoint URLs.")


_ORIGIN_RE = r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?$"


class UiConfig(_Section):
    title: str = Field("relay", min_length=1, max_length=80,
                       description="Name shown in the console's and portal's header.")
    logo_url: str | None = Field(
        None, pattern=r"^(https://|/)\S+$",
        description="Logo shown beside the title (an https:// URL or a path on this server).",
        examples=["https://example.com/logo.svg"],
    )
    accent: str = Field("#2458d6", pattern=r"^#[0-9a-fA-F]{6}$",
                        description="Accent colour of buttons and links, as #rrggbb.")
    frame_ancestors: list[Annotated[str, Field(pattern=_ORIGIN_RE)]] = Field(
        default_factory=list,
        description="Origins allowed to embed the tenant portal in an iframe (CSP "
        "frame-ancestors); none: it cannot be embedded. The operator console never can.",
        examples=[["https://app.example.com"]],
    )
    session_idle: Duration = Field(
        "1h", validate_default=True, gt=0,
        description="A console or portal session not used for this long ends (sign in or "
        "open a portal link again). Use is recorded at most once a minute (a tenth of this "
        "when shorter), so a session may end up to that much earlier; the deliveries "
        "table's automatic refresh is not use.",
    )
    session_lifetime: Duration = Field(
        "12h", validate_default=True, gt=0,
        description="A console or portal session ends this long after signing in or "
        "opening the portal link, however busy (a portal session ends sooner with its "
        "link's expires_in).",
    )


class OperatorConfig(_Section):
    failing_after: int = Field(
        5, gt=0,
        description="Consecutive failed attempts after which an endpoint is reported "
        "failing (`relay.endpoint.failing`, once per failure streak).",
    )


class TenantConfig(_Section):
    id: str = Field(pattern=ID_RE, description="Tenant id.", examples=["acme"])
    webhooks_enabled: bool = Field(
        True, description="When false, ingest and webhook routes answer 403 for this tenant."
    )
    max_webhooks: int | None = Field(
        None, ge=0, description="Most endpoints this tenant may create through the API.",
        examples=[50],
    )


class ApiKeyConfig(_Section):
    name: str = Field(description="A label for logs and errors.", examples=["billing-service"])
    key_env: str | None = Field(
        None, description="Name of the environment variable holding the key.",
        examples=["RELAY_BILLING_KEY"],
    )
    key_sha256: str | None = Field(
        None, pattern=r"^[0-9a-f]{64}$",
        description="Hex SHA-256 of the key (`printf %s KEY | sha256sum`); use instead of key_env.",
    )
    scopes: list[Literal["events:write", "webhooks:read", "webhooks:write", "admin"]] = Field(
        min_length=1, description="What the key may do.", examples=[["events:write"]]
    )
    tenant: str = Field(DEFAULT_TENANT, description="The tenant the key acts in.")


def invalid_at(title: str, problems: list[tuple[Loc, str]]) -> ValidationError:
    """Problems found by relay's own checks as a pydantic error, each at its key path below
    the value being validated (pydantic prefixes that value's own path)."""
    return ValidationError.from_exception_data(title, [
        InitErrorDetails(type=PydanticCustomError("invalid", "{reason}", {"reason": message}),
                         loc=loc, input=None)
        for loc, message in problems])


def _not_json(value: Any, loc: Loc = ()) -> list[tuple[Loc, str]]:
    """Where a value read from TOML or a file cannot be JSON (a TOML date or time, inf)."""
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in _not_json(item, (*loc, key))]
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in _not_json(item, (*loc, i))]
    if isinstance(value, float) and not math.isfinite(value):
        return [(loc, "must be a finite number")]
    if value is None or isinstance(value, str | int | float):
        return []
    return [(loc, f"a TOML {type(value).__name__} is not JSON; write it as a string")]


SCHEMA_DRAFT = "https://json-schema.org/draft/2020-12/schema"
# Checks a schema against the 2020-12 meta-schema, reporting every error (compiling a
# validator stops at the first). The meta-schemas are built into jsonschema-rs: offline.
_META_SCHEMA = jsonschema_rs.Draft202012Validator({"$ref": SCHEMA_DRAFT}, offline=True)


def compile_schema(schema: dict[str, Any]) -> tuple[jsonschema_rs.Validator | None,
                                                     list[tuple[Loc, str]]]:
    """A JSON Schema compiled for ingest, or every problem with its path in the schema.

    Draft 2020-12 only; `format` is asserted (an unknown format name is an error, not a
    silent pass); `$ref` reaches only into the schema itself: nothing is fetched.
    """
    problems = _not_json(schema)
    declared = schema.get("$schema", SCHEMA_DRAFT)
    if declared not in (SCHEMA_DRAFT, SCHEMA_DRAFT + "#"):
        problems.append((("$schema",), f"relay validates with JSON Schema draft 2020-12: "
                         f"set {SCHEMA_DRAFT} or leave $schema out"))
    if problems:
        return None, problems
    problems = [(tuple(e.instance_path), e.message) for e in _META_SCHEMA.iter_errors(schema)]
    if problems:
        return None, problems
    try:
        return jsonschema_rs.Draft202012Validator(
            schema, validate_formats=True, ignore_unknown_formats=False, offline=True,
        ), []
    except jsonschema_rs.ValidationError as exc:  # an unresolvable $ref, a bad pattern
        message = exc.message.partition("\n")[0]
        if isinstance(exc.kind, jsonschema_rs.ValidationErrorKind.Referencing):
            message += " ($ref reaches only inside the schema, e.g. #/$defs/NAME)"
        return None, [(tuple(exc.instance_path), message)]


class EventTypeConfig(_Section):
    name: str = Field(
        pattern=TYPE_RE, max_length=128, description="Event type name.",
        examples=["lead.qualified"],
    )
    description: str = Field("", description="What the event means, for API users.",
                             examples=["A lead crossed the qualification threshold."])
    sample: dict[str, Any] = Field(
        default_factory=dict, description="Example `data`, sent by test deliveries; must "
        "match the schema.",
        examples=[{"lead_id": "lead_4c88e100", "score": 0.87}],
    )
    schema_: dict[str, Any] | None = Field(
        None, alias="schema",
        description="JSON Schema (draft 2020-12) that every event's `data` must match: "
        "ingest answers 422 naming each violation's path. `format` is checked "
        "(email, date-time, uuid, ...); `$ref` reaches only inside the schema. See "
        "docs/schemas-and-filters.md.",
        examples=[{"type": "object", "required": ["lead_id", "score"], "properties": {
            "lead_id": {"type": "string"},
            "score": {"type": "number", "minimum": 0, "maximum": 1}}}],
    )
    schema_file: str | None = Field(
        None, description="A JSON file holding the schema, relative to the config file; "
        "instead of schema. Read at start and on every reload.",
    )
    _schema: dict[str, Any] | None = PrivateAttr(None)
    _validator: jsonschema_rs.Validator | None = PrivateAttr(None)

    @property
    def json_schema(self) -> dict[str, Any] | None:
        """The schema `data` must match (inline or read from schema_file); None: any."""
        return self._schema

    @property
    def validator(self) -> jsonschema_rs.Validator | None:
        """The schema compiled once, at config load; ingest only runs it."""
        return self._validator

    @model_validator(mode="after")
    def _compile_schema(self, info: ValidationInfo) -> EventTypeConfig:
        if self._validator is not None:  # an instance validated again (inside Config)
            return self
        if self.schema_ is not None and self.schema_file is not None:
            raise invalid_at("event type", [(("schema_file",), "set schema or "
                                             "schema_file, not both")])
        if self.schema_file is not None:
            schema = self._read_schema_file(info.context)
        elif self.schema_ is not None:
            schema = self.schema_
        else:
            return self
        validator, problems = compile_schema(schema)
        if validator is None:
            if self.schema_file is None:
                raise invalid_at("event type", [(("schema", *loc), msg) for loc, msg in problems])
            raise invalid_at("event type", [(("schema_file",), f"{self.schema_file}: "
                                             f"{key_path(loc)}: {msg}") for loc, msg in problems])
        problems = _not_json(self.sample) or [
            (tuple(e.instance_path), e.message) for e in validator.iter_errors(self.sample)]
        if problems:
            hint = "" if "sample" in self.model_fields_set else " (no sample given: {} is used)"
            raise invalid_at("event type", [(("sample", *loc), msg + hint)
                                            for loc, msg in problems])
        self._schema, self._validator = schema, validator
        return self

    def _read_schema_file(self, context: Any) -> dict[str, Any]:
        assert self.schema_file is not None
        base = context.get("config_dir") if isinstance(context, dict) else None
        path = Path(base or ".") / self.schema_file
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise invalid_at("event type", [(("schema_file",), f"cannot read {path}: "
                                             f"{exc.strerror}")]) from None
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
            raise invalid_at("event type", [(("schema_file",), f"{path} is not JSON: "
                                             f"{exc}")]) from None
        if not isinstance(schema, dict):
            raise invalid_at("event type", [(("schema_file",), f"{path} must hold a JSON "
                                             "object (a schema)")])
        return schema


def _check_headers(headers: dict[str, str]) -> dict[str, str]:
    """An endpoint's extra headers: HTTP names and values, none that relay sets or that
    frames the request (relay.delivery.headers); each problem at `headers.NAME`."""
    problems = header_problems(headers)
    if problems:
        raise invalid_at("headers", [((name,), why) for name, why in problems])
    return headers


def _check_signature_header(name: str | None) -> str | None:
    problem = None if name is None else name_problem(name, signature=True)
    if problem:
        raise ValueError(problem)
    return name


Headers = Annotated[dict[str, str], AfterValidator(_check_headers)]
SignatureHeader = Annotated[str | None, AfterValidator(_check_signature_header)]


Scheme = Literal["standard-webhooks", "hmac-sha256-timestamped", "hmac-sha256-body", "none"]
Ordering = Literal["none", "fifo"]  # endpoint delivery order: see EndpointConfig.ordering

# The filter grammar as JSON Schema, for /openapi.json (relay.delivery.matching checks
# and compiles filters; a unit test keeps the operators here equal to its list).
_Scalar = str | float | bool
_Ordered = str | float
FilterOperators = TypedDict("FilterOperators", {
    "$eq": Annotated[_Scalar, Field(description="Equal to.")],
    "$neq": Annotated[_Scalar, Field(description="Of the same kind and not equal to.")],
    "$in": Annotated[list[_Scalar], Field(min_length=1, description="Equal to one of.")],
    "$nin": Annotated[list[_Scalar], Field(min_length=1,
                                           description="Of a listed kind, equal to none.")],
    "$gt": Annotated[_Ordered, Field(description="Greater than (strings by code point).")],
    "$gte": Annotated[_Ordered, Field(description="Greater than or equal to.")],
    "$lt": Annotated[_Ordered, Field(description="Less than.")],
    "$lte": Annotated[_Ordered, Field(description="Less than or equal to.")],
    "$exists": Annotated[bool, Field(description="true: present (even null); false: absent.")],
    "$prefix": Annotated[str, Field(description="A string starting with.")],
}, total=False)
FilterOperators.__pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[attr-defined]


class FilterTable(RootModel[dict[str, _Scalar | list[_Scalar] | FilterOperators
                                 | Annotated[list["FilterTable"], Field(min_length=1)]]]):
    """Dotted paths into the envelope -> conditions; $and/$or/$not -> lists of tables."""


def _controls(value: Any, loc: Loc = ()) -> list[tuple[Loc, str]]:
    """Where the keys and strings of `value` hold a control character."""
    problems: list[tuple[Loc, str]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if problem := control_problem(key):
                problems.append(((*loc, key), f"the key {problem}"))
            problems += _controls(item, (*loc, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            problems += _controls(item, (*loc, i))
    elif isinstance(value, str) and (problem := control_problem(value)):
        problems.append((loc, problem))
    return problems


def _check_filter(value: Any) -> dict[str, Any]:
    """A valid filter, as given (stored and shown so); every problem at its key path."""
    if not isinstance(value, dict):
        raise ValueError("must be a table of dotted paths into the envelope")
    if problems := _controls(value):
        raise invalid_at("filter", problems)
    try:
        compile_filter(value)
    except FilterError as exc:
        raise invalid_at("filter", exc.problems) from None
    return value


Filter = Annotated[dict[str, Any], PlainValidator(_check_filter,
                                                  json_schema_input_type=FilterTable)]


class EndpointConfig(_Section):
    id: str = Field(pattern=ID_RE, description="Endpoint id (letters, digits, _ and -).",
                    examples=["crm"])
    url: str = Field(description="Where deliveries are POSTed, in canonical form: ASCII "
                     "(an international host as xn--...), no whitespace, control characters, "
                     "backslashes, user:password@ or #fragment; a DNS name, dotted-decimal IPv4 "
                     "or [IPv6] host.",
                     examples=["https://crm.example.com/hooks/relay"])
    events: list[Annotated[str, Field(pattern=PATTERN_RE)]] = (
        Field(["*"], min_length=1,
              description='Event types to deliver: exact names, "prefix.*" or "*".',
              examples=[["lead.*", "conversation.completed"]])
    )
    tenant: str = Field(DEFAULT_TENANT, description="Only events of this tenant are delivered.")
    secret_env: str | None = Field(
        None, description="Environment variable holding the signing secret.",
        examples=["CRM_WEBHOOK_SECRET"],
    )
    secret: str | None = Field(
        None, description="The signing secret itself; without secret or secret_env relay "
        "generates one (`relay secret ID` prints it).",
    )
    headers: Headers = Field(
        default_factory=dict, description="Extra request headers: HTTP token names, "
        "values of visible characters (no controls, no whitespace at either end); not "
        "Host, Content-Length, Transfer-Encoding, Connection, Upgrade, TE, Trailer, "
        "Keep-Alive, Proxy-*, Content-Type, User-Agent, webhook-* or a signature header: "
        "relay sets those or they frame the request.",
        examples=[{"X-Team": "sales"}],
    )
    filter: Filter = Field(
        default_factory=dict,
        description="Dotted envelope path -> a value, a list of accepted values, or an "
        "operator table ($eq $neq $in $nin $gt $gte $lt $lte $exists $prefix); beside the "
        "paths, $and/$or/$not take lists of such tables. Every entry must match; a value of "
        "another kind than the operand, or a missing path, matches nothing. Grammar: "
        "docs/schemas-and-filters.md.",
        examples=[{"data.campaign_id": ["camp_spring_homes", "camp_fall"],
                   "data.qualification.score": {"$gte": 0.8}}],
    )
    signature: Scheme = Field(
        "standard-webhooks", description="Signature scheme: " + ", ".join(SCHEMES) + ".",
        examples=["hmac-sha256-timestamped"],
    )
    signature_header: SignatureHeader = Field(
        None, description="Header carrying hmac-* signatures (default Relay-Signature or "
        "X-Relay-Signature); an HTTP token, not one of the names `headers` may not use.",
        examples=["Athena-Signature"],
    )
    payload: Literal["envelope", "array"] = Field(
        "envelope", description='"array" wraps the envelope in a one-element JSON array.'
    )
    timeout: Duration | None = Field(None, description="Overrides delivery.timeout.",
                                     examples=["5s"])
    retry_schedule: list[Duration] | None = Field(
        None, description="Overrides delivery.retry_schedule.", examples=[["10s", "1m", "10m"]]
    )
    endpoint_concurrency: int | None = Field(
        None, gt=0, description="Overrides delivery.endpoint_concurrency.", examples=[4]
    )
    rate_limit: float | None = Field(
        None, gt=0, description="Most requests per second to this endpoint.", examples=[50]
    )
    enabled: bool = Field(True, description="false holds its deliveries until set back to true.")
    ordering: Ordering = Field(
        "none", description='"fifo": deliveries go out strictly in the order they were '
        "queued (the order the events were accepted), one request at a time; a delivery "
        "waiting for a retry blocks the ones behind it until it succeeds, fails for good or "
        "is cancelled. The trade-off: one slow receiver limits its own throughput to "
        "1/latency (endpoint_concurrency does not apply), and one failing event delays "
        'every later one by its retry schedule. "none": concurrent, each delivery on its '
        "own schedule. Details: docs/ordering.md.",
        examples=["fifo"],
    )


class Config(_Section):
    server: ServerConfig = Field(default_factory=ServerConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig)
    ui: UiConfig = Field(default_factory=UiConfig)
    tenants: list[TenantConfig] = Field(default_factory=list)
    api_keys: list[ApiKeyConfig] = Field(default_factory=list)
    event_types: list[EventTypeConfig] = Field(default_factory=list)
    operator: OperatorConfig = Field(default_factory=OperatorConfig)
    endpoints: list[EndpointConfig] = Field(default_factory=list)

    def tenant(self, tenant_id: str) -> TenantConfig | None:
        """The tenant's settings; `default` exists even when not declared."""
        for tenant in self.tenants:
            if tenant.id == tenant_id:
                return tenant
        return TenantConfig(id=DEFAULT_TENANT) if tenant_id == DEFAULT_TENANT else None


@dataclass(frozen=True)
class ApiKey:
    """An API key as relay holds it at run time: only its digest."""

    name: str
    sha256: str
    scopes: frozenset[str]
    tenant: str


@dataclass(frozen=True)
class Loaded:
    """A validated config plus the values it names in the environment."""

    config: Config
    source: Path | None
    api_keys: tuple[ApiKey, ...]
    endpoint_secrets: dict[str, str]  # endpoint id -> secret from `secret` or `secret_env`


def key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def sections() -> list[tuple[str, type[BaseModel], bool]]:
    """The config's sections in order: name, model, and whether it is an array of tables
    (`[[name]]`) rather than one table (`[name]`)."""
    out = []
    for name, field in Config.model_fields.items():
        args = get_args(field.annotation)
        model = args[0] if args else field.annotation
        assert isinstance(model, type) and issubclass(model, BaseModel), name
        out.append((name, model, bool(args)))
    return out


# Per table ("delivery", "endpoints[1]"), the keys that did not validate.
Invalid = Mapping[str, frozenset[str]]


@functools.cache
def _field_adapter(model: type[BaseModel], name: str) -> TypeAdapter[Any]:
    return TypeAdapter(model.model_fields[name].rebuild_annotation())


def _table(model: type[_S], raw: object, loc: tuple[int | str, ...], errors: list[str],
           context: dict[str, Any]) -> tuple[_S, frozenset[str]]:
    """Validate one table on its own; append one line per error to `errors`. Returns the
    model and the keys that did not validate. With some invalid, the model holds the valid
    keys' values (each validated alone: `allow_http = "no"` is False) and defaults for the
    rest, so the checks that read only valid keys still run on true values."""
    if not isinstance(raw, dict):
        errors.append(f"{key_path(loc)}: must be a table")
        return model.model_construct(), frozenset(model.model_fields)
    try:
        return model.model_validate(raw, context=context), frozenset()
    except ValidationError as exc:
        invalid = set()
        for err in exc.errors():
            path = tuple(p for p in err["loc"]
                         if not (isinstance(p, str) and p.startswith("function-")))
            message = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            errors.append(f"{key_path(loc + path)}: {message.removeprefix('Value error, ')}")
            invalid.add(str(path[0]))
    valid = {k: _field_adapter(model, k).validate_python(v) for k, v in raw.items()
             if k in model.model_fields and k not in invalid}
    return model.model_construct(**valid), frozenset(invalid)


def _in_section_order(lines: list[str]) -> list[str]:
    """Errors sorted by section, then by array index: the file's structure, top to bottom
    (lines of one table keep their order: its own keys first, then checks across keys)."""
    order = {name: i for i, name in enumerate(Config.model_fields)}

    def key(line: str) -> tuple[int, int]:
        match = re.match(r"(\w+)(?:\[(\d+)\])?", line)
        if match is None or match[1] not in order:
            return -1, -1  # unknown top-level keys first
        return order[match[1]], int(match[2] or -1)

    return sorted(lines, key=key)


def cross_check(cfg: Config, env: dict[str, str],
                invalid: Invalid | None = None) -> tuple[list[str], Loaded | None]:
    """Checks spanning keys (references, uniqueness, env vars, secrets, URLs).

    `invalid` names, per table, the keys that did not validate (`cfg` holds no real value
    for them): a check that reads one is skipped, as it could only report a consequence of
    an error already reported. Every other check runs."""
    from relay.delivery.netguard import check_url  # avoid import at module load
    from relay.errors import DestinationRefused

    bad = invalid or {}

    def ok(where: str, *keys: str) -> bool:
        return bad.get(where, frozenset()).isdisjoint(keys)

    errors: list[str] = []
    try:
        cfg.storage.database_url(env)
    except ConfigError as exc:
        errors += exc.details
    seen: set[str] = set()
    for i, tenant in enumerate(cfg.tenants):
        if ok(f"tenants[{i}]", "id"):
            if tenant.id in seen:
                errors.append(f"tenants[{i}].id: duplicate tenant {tenant.id!r}")
            seen.add(tenant.id)
    tenant_ids: set[str] | None = {DEFAULT_TENANT} | seen
    if not all(ok(where, "id") for where in ["tenants"] + [f"tenants[{i}]" for i in
                                                            range(len(cfg.tenants))]):
        tenant_ids = None  # an invalid tenant id: references to tenants go unchecked

    def check_tenant(where: str, tenant: str) -> None:
        if tenant_ids is not None and tenant not in tenant_ids:
            errors.append(f"{where}.tenant: unknown tenant {tenant!r}")

    if not cfg.api_keys and "api_keys" not in bad and ok("server", "listen") \
            and not cfg.server.is_loopback:
        errors.append(
            f"api_keys: required when listening beyond loopback ({cfg.server.listen}): "
            "without API keys every caller is an admin; add [[api_keys]], or listen on "
            "127.0.0.1")
    keys: list[ApiKey] = []
    for i, key in enumerate(cfg.api_keys):
        where = f"api_keys[{i}]"
        if ok(where, "tenant"):
            check_tenant(where, key.tenant)
        if not ok(where, "key_env", "key_sha256"):
            continue
        if key.key_sha256 is not None:
            digest = key.key_sha256
            if key.key_env is not None:
                errors.append(f"{where}: set exactly one of key_env or key_sha256")
                continue
        elif key.key_env is None:
            errors.append(f"{where}: set exactly one of key_env or key_sha256")
            continue
        else:
            value = env.get(key.key_env)
            if not value:
                errors.append(f"{where}.key_env: environment variable {key.key_env} is not set")
                continue
            digest = hashlib.sha256(value.encode()).hexdigest()
        if not bad.get(where):
            keys.append(ApiKey(key.name, digest, frozenset(key.scopes), key.tenant))

    seen = set()
    for i, event_type in enumerate(cfg.event_types):
        if ok(f"event_types[{i}]", "name"):
            if event_type.name in seen:
                errors.append(f"event_types[{i}].name: duplicate event type {event_type.name!r}")
            seen.add(event_type.name)

    secrets: dict[str, str] = {}
    seen = set()
    for i, ep in enumerate(cfg.endpoints):
        where = f"endpoints[{i}]"
        if ok(where, "id"):
            if ep.id in seen:
                errors.append(f"{where}.id: duplicate endpoint id {ep.id!r}")
            seen.add(ep.id)
        if ok(where, "tenant"):
            check_tenant(where, ep.tenant)
        if ok(where, "url") and ok("delivery", "allow_http"):
            try:
                check_url(ep.url, allow_http=cfg.delivery.allow_http, allow_private=True)
            except DestinationRefused as exc:
                errors.append(f"{where}.url: {exc.message}")
        secret = ep.secret if ok(where, "secret") else None
        if ok(where, "secret_env") and ep.secret_env is not None:
            if secret is not None:
                errors.append(f"{where}: set secret or secret_env, not both")
            secret = env.get(ep.secret_env)
            if not secret:
                errors.append(
                    f"{where}.secret_env: environment variable {ep.secret_env} is not set"
                )
        if secret and ok(where, "signature"):
            reason = check_secret(ep.signature, secret)
            source = "secret_env" if ep.secret_env else "secret"
            if reason:
                errors.append(f"{where}.{source}: {reason}")
            else:
                secrets[ep.id] = secret
        if (ep.signature_header is not None and ok(where, "signature_header", "signature")
                and ep.signature in ("standard-webhooks", "none")):
            errors.append(f"{where}.signature_header: only used by the hmac-* signatures")
        if ok(where, "headers", "signature_header"):
            errors += [f"{where}.headers.{name}: {why}"
                       for name, why in clashes(ep.headers, ep.signature_header)]
    if errors or bad:
        return errors, None
    return [], Loaded(cfg, None, tuple(keys), secrets)


def validate(data: dict[str, Any], env: dict[str, str] | None = None,
             config_dir: Path | None = None, listen: str | None = None) -> Loaded:
    """Validate parsed TOML; raise ConfigError listing every `key.path: reason`.
    `config_dir`: where relative paths in the file start (schema_file); default: here.
    `listen`: validate with this `server.listen` instead of the file's (a reload: relay
    stays bound where it is until a restart, and what depends on the address, such as
    whether API keys are required, is judged against that).

    Each table (a section, an item of an array section) is validated on its own, so an
    error in one hides nothing in another; the checks across keys then run on every value
    that validated (see cross_check)."""
    errors = [f"{key}: unknown key" for key in data if key not in Config.model_fields]
    if listen is not None and isinstance(data.get("server", {}), dict):
        data = {**data, "server": {**data.get("server", {}), "listen": listen}}
    context = {"config_dir": config_dir}
    invalid: dict[str, frozenset[str]] = {}
    parts: dict[str, Any] = {}
    for name, model, is_array in sections():
        if name not in data:
            continue  # the default
        raw = data[name]
        if not is_array:
            parts[name], invalid[name] = _table(model, raw, (name,), errors, context)
        elif not isinstance(raw, list):
            errors.append(f"{name}: must be an array of tables ([[{name}]])")
            invalid[name] = frozenset(model.model_fields)
        else:
            parts[name] = []
            for i, item in enumerate(raw):
                part, invalid[f"{name}[{i}]"] = _table(model, item, (name, i), errors,
                                                         context)
                parts[name].append(part)
    invalid = {where: keys for where, keys in invalid.items() if keys}
    cfg = Config.model_construct(**parts) if invalid else Config.model_validate(parts)
    cross_errors, loaded = cross_check(cfg, dict(os.environ) if env is None else env, invalid)
    errors += cross_errors
    if loaded is None or errors:
        raise ConfigError("invalid configuration", _in_section_order(errors))
    return loaded


def load(path: Path | None, env: dict[str, str] | None = None,
         listen: str | None = None) -> Loaded:
    """Read and validate a config file; `None` means the embedded defaults. `listen`: as
    for `validate`."""
    if path is None:
        return validate({}, env, listen=listen)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:  # TOML is UTF-8
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(f"{path}: not UTF-8 text: byte {raw[exc.start]:#04x} at line "
                          f"{line}, column {column}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        loaded = validate(data, env, path.parent, listen)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc.message}", exc.details) from None
    return Loaded(loaded.config, path, loaded.api_keys, loaded.endpoint_secrets)


def find_config(option: str | None) -> Path | None:
    """--config, then $RELAY_CONFIG, then ./relay.toml if it exists; else embedded defaults."""
    if option:
        return Path(option)
    if os.environ.get("RELAY_CONFIG"):
        return Path(os.environ["RELAY_CONFIG"])
    default = Path("relay.toml")
    return default if default.exists() else None


# --- rendering: `relay init` and config.example.toml -------------------------------------

_HEADER = """\
# relay configuration. Every key is shown with its default; durations are strings like
# "500ms", "10s", "5m", "2h", "7d". Edits apply without a restart (file watch or SIGHUP),
# except [server] listen and [storage] path. Validate with: relay check --config FILE
"""

SECTION_HELP = {
    "server": "The HTTP side: ingest endpoint and management API.",
    "storage": "The durable queue.",
    "delivery": "Defaults for every endpoint.",
    "ui": "The web console at /ui/ and the tenant portal.",
    "tenants": "Tenants beyond `default` (which always exists).",
    "api_keys": "API keys. Without any, relay serves unauthenticated on loopback only.",
    "event_types": "Declared event types. When any are declared, ingest refuses others (422).",
    "operator": "Operational events (relay.*): what relay reports about itself "
    "(docs/operational-events.md).",
    "endpoints": "Subscribers. Uncomment and edit to add one.",
}


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{_toml_key(k)} = {toml_value(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    raise TypeError(f"cannot render {value!r}")


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else toml_value(key)


def _field_lines(model: type[BaseModel], prefix: str, example: bool) -> list[str]:
    lines = []
    for key, field in model.model_fields.items():
        name = field.alias or key
        help_text = field.description or ""
        if field.is_required():
            value = field.examples[0] if field.examples else None
            help_text += " Required."
        else:
            default = field.get_default(call_default_factory=True)
            value = default
            if field.examples and example:
                value = field.examples[0]
                if default not in (None, {}, []) and value != default:
                    help_text += f" Default: {toml_value(default)}."
        for chunk in _wrap(help_text):
            lines.append(f"{prefix}# {chunk}" if example else f"# {chunk}")
        if value is None:
            lines.append(f"{prefix}# {name} =")
        else:
            lines.append(f"{prefix}{name} = {toml_value(value)}")
    return lines


def _wrap(text: str, width: int = 86) -> list[str]:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, line] if line else lines


def render_example() -> str:
    """The commented starter config: every key of every section, defaults shown.

    Table sections are live with their defaults; array-of-table sections are commented
    examples ("# " before each key; "# # " before its help) so the file runs as is.
    """
    out = [_HEADER]
    for name, model, is_array in sections():
        out.append(f"# {SECTION_HELP[name]}")
        if is_array:
            out.append(f"# [[{name}]]")
            out.extend(_field_lines(model, "# ", example=True))
        else:
            out.append(f"[{name}]")
            out.extend(_field_lines(model, "", example=False))
        out.append("")
    return "\n".join(out)


def describe(loaded: Loaded) -> list[str]:
    """What a valid config defines, for `relay check`."""
    cfg = loaded.config
    lines = [
        f"listen {cfg.server.listen}, database {cfg.storage.where}, "
        f"retention {format_duration(cfg.storage.retention)}",
        "tenants: " + ", ".join(sorted({DEFAULT_TENANT} | {t.id for t in cfg.tenants})),
        f"api keys: {len(cfg.api_keys)}"
        + ("" if cfg.api_keys else " (unauthenticated, loopback only)"),
        f"event types: {len(cfg.event_types)}",
    ]
    for event_type in cfg.event_types:
        if event_type.json_schema is not None:
            lines.append(f"  {event_type.name}: data checked against "
                         + (event_type.schema_file or "its schema"))
    lines.append(f"endpoints: {len(cfg.endpoints)}")
    for ep in cfg.endpoints:
        state = "" if ep.enabled else " (disabled)"
        order = ", fifo" if ep.ordering == "fifo" else ""
        lines.append(f"  {ep.id}: {ep.url} <- {', '.join(ep.events)} "
                     f"[{ep.signature}{order}]{state}")
    return lines

