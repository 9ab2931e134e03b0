"""[[endpoints]]: where deliveries go, which events, signed how, and the value types of
its keys (extra headers, the signature header, the filter grammar).

relay.models takes the API's webhook fields from EndpointConfig, so the config file and
the API accept the same settings with the same checks.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, Field, PlainValidator, RootModel
from typing_extensions import TypedDict

from relay.config.values import (
    CHANNEL_RE,
    DEFAULT_TENANT,
    ID_RE,
    MAX_CHANNELS,
    PATTERN_RE,
    Duration,
    Section,
    invalid_at,
)
from relay.delivery.headers import header_problems, name_problem
from relay.delivery.matching import FilterError, Loc, compile_filter
from relay.delivery.signing import SCHEMES
from relay.text import control_problem
from relay.types import EndpointSpec, Ordering, Payload, Scheme


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


class EndpointConfig(Section):
    """An endpoint of the file: its id, tenant and secret, and its EndpointSpec (every
    other key, whose defaults are EndpointSpec's)."""

    id: str = Field(pattern=ID_RE, description="Endpoint id (letters, digits, _ and -).",
                    examples=["crm"])
    url: str = Field(description="Where deliveries are POSTed, in canonical form: ASCII "
                     "(an international host as xn--...), no whitespace, control characters, "
                     "backslashes, user:password@ or #fragment; a DNS name, dotted-decimal IPv4 "
                     "or [IPv6] host.",
                     examples=["https://crm.example.com/hooks/relay"])
    events: list[Annotated[str, Field(pattern=PATTERN_RE)]] = (
        Field(list(EndpointSpec.events), min_length=1,
              description='Event types to deliver: exact names, "prefix.*" or "*".',
              examples=[["lead.*", "conversation.completed"]])
    )
    channels: list[Annotated[str, Field(pattern=CHANNEL_RE)]] | None = Field(
        None, min_length=1, max_length=MAX_CHANNELS,
        description="Only events sent on at least one of these channels are delivered "
        "(Svix's channels; events sent through /api/v1 carry them); unset: every event.",
        examples=[["project-42"]])
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
        "Keep-Alive, Proxy-*, Content-Type, User-Agent, webhook-*, svix-* or a signature "
        "header: "
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
        EndpointSpec.signature, description="Signature scheme: " + ", ".join(SCHEMES) + ".",
        examples=["hmac-sha256-timestamped"],
    )
    signature_header: SignatureHeader = Field(
        None, description="Header carrying hmac-* signatures (default Relay-Signature or "
        "X-Relay-Signature); an HTTP token, not one of the names `headers` may not use.",
        examples=["Athena-Signature"],
    )
    payload: Payload = Field(
        EndpointSpec.payload, description='"array" wraps the envelope in a one-element JSON '
        'array; "data" sends its `data` alone, as Svix does.'
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
    enabled: bool = Field(EndpointSpec.enabled,
                          description="false holds its deliveries until set back to true.")
    ordering: Ordering = Field(
        EndpointSpec.ordering,
        description='"fifo": deliveries go out strictly in the order they were '
        "queued (the order the events were accepted), one request at a time; a delivery "
        "waiting for a retry blocks the ones behind it until it succeeds, fails for good or "
        "is cancelled. The trade-off: one slow receiver limits its own throughput to "
        "1/latency (endpoint_concurrency does not apply), and one failing event delays "
        'every later one by its retry schedule. "none": concurrent, each delivery on its '
        "own schedule. Details: docs/ordering.md.",
        examples=["fifo"],
    )

    @property
    def spec(self) -> EndpointSpec:
        """This endpoint's delivery settings, as the store keeps them."""
        return EndpointSpec.from_dict(self.model_dump(exclude={"id", "tenant", "secret",
                                                               "secret_env"}))
