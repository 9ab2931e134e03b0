"""The config file's plain sections: one pydantic model per table ([server], [storage],
[delivery], [ui], [operator]) and per item of [[tenants]] and [[api_keys]].

Each key is defined once, here: its type, default and description (`Field`) feed
validation, `relay check`, `relay init`, config.example.toml and docs/configuration.md.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Mapping
from typing import Annotated, Literal, get_args
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, model_validator

from relay import hosts
from relay.config.values import DEFAULT_TENANT, ID_RE, Duration, Section, Size, invalid_at
from relay.errors import ConfigError

# What an API key may do (relay.auth checks them; `admin` may do everything).
Scope = Literal["events:write", "webhooks:read", "webhooks:write", "admin"]
SCOPES: tuple[Scope, ...] = get_args(Scope)
DEFAULT_RETRY_SCHEDULE = ["5s", "5m", "30m", "2h", "5h", "8h", "8h"]


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


class ServerConfig(Section):
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


class StorageConfig(Section):
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


class DeliveryConfig(Section):
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


class UiConfig(Section):
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


class OperatorConfig(Section):
    failing_after: int = Field(
        5, gt=0,
        description="Consecutive failed attempts after which an endpoint is reported "
        "failing (`relay.endpoint.failing`, once per failure streak).",
    )


class TenantConfig(Section):
    id: str = Field(pattern=ID_RE, description="Tenant id.", examples=["acme"])
    webhooks_enabled: bool = Field(
        True, description="When false, ingest and webhook routes answer 403 for this tenant."
    )
    max_webhooks: int | None = Field(
        None, ge=0, description="Most endpoints this tenant may create through the API.",
        examples=[50],
    )


class ApiKeyConfig(Section):
    name: str = Field(description="A label for logs and errors.", examples=["billing-service"])
    key_env: str | None = Field(
        None, description="Name of the environment variable holding the key.",
        examples=["RELAY_BILLING_KEY"],
    )
    key_sha256: str | None = Field(
        None, pattern=r"^[0-9a-f]{64}$",
        description="Hex SHA-256 of the key (`printf %s KEY | sha256sum`); use instead of key_env.",
    )
    scopes: list[Scope] = Field(
        min_length=1, description="What the key may do.", examples=[["events:write"]]
    )
    tenant: str = Field(DEFAULT_TENANT, description="The tenant the key acts in.")


