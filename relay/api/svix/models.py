"""Svix's request and answer shapes, with its camelCase names.

Requests ignore fields they do not know (Svix's server does, and newer SDKs add fields);
a field is validated as Svix validates it where relay's own rule differs (type names,
uids: A5 in docs/svix.md). Answers carry the fields the SDKs' models require.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel

from relay.api.ingest import finite
from relay.config.endpoints import Headers
from relay.config.values import CHANNEL_RE, MAX_CHANNELS, NoControls
from relay.directory_models import Metadata as TenantMetadata
from relay.models import Description, Name
from relay.text import control_problem

_T = TypeVar("_T")
MAX_LIMIT = 250  # Svix's largest page
# Svix's names: event types, uids, message ids.
NAME_RE = r"^[a-zA-Z0-9\-_.]+$"
TypeName = Annotated[str, StringConstraints(pattern=NAME_RE, max_length=256)]
Uid = Annotated[str, StringConstraints(pattern=NAME_RE, min_length=1, max_length=256)]
_NAME: TypeAdapter[str] = TypeAdapter(Uid)
Channel = Annotated[str, StringConstraints(pattern=CHANNEL_RE)]
Label = Annotated[str, NoControls]
Metadata = dict[Label, Label]


def is_name(value: str) -> bool:
    """Whether a path's value could be a uid or an event type's name (an upsert that
    creates takes it as one)."""
    try:
        _NAME.validate_python(value)
    except ValidationError:
        return False
    return True


def utc(value: datetime) -> datetime:
    """A time without a zone, as the Python SDK sends them, is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


Time = Annotated[datetime, AfterValidator(utc)]


class In(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True,
                              extra="ignore", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _field_names(cls, data: Any) -> Any:
        """Unknown fields are ignored, but not one whose name holds a control character:
        no SDK sends that, and relay refuses control characters everywhere (relay.text)."""
        if isinstance(data, dict):
            for key in data:
                if isinstance(key, str) and (problem := control_problem(key)):
                    raise ValueError(f"the field name {key!r}: {problem}")
        return data


class Query(BaseModel):
    """Query parameters: by their own (snake_case) names, as the SDKs send them."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


class Out(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True,
                              serialize_by_alias=True)


# --- requests ----------------------------------------------------------------------------


class ListQuery(Query):
    limit: int = Field(50, ge=1, le=MAX_LIMIT)
    iterator: Label | None = None
    order: Literal["ascending", "descending"] | None = None


class ContentQuery(Query):
    with_content: bool = True


class EndpointFields(In):
    """What an endpoint is given on create and on update (PUT)."""

    url: Label
    description: Label = ""
    uid: Uid | None = None
    throttle_rate: int | None = Field(None, ge=1, le=65535, validation_alias=AliasChoices(
        "throttleRate", "rateLimit", "throttle_rate"))
    disabled: bool = False
    event_types: Annotated[list[TypeName], Field(min_length=1)] | None = Field(
        None, validation_alias=AliasChoices("eventTypes", "filterTypes", "event_types"))
    channels: Annotated[list[Channel], Field(min_length=1, max_length=MAX_CHANNELS)] | None = None
    metadata: Metadata | None = None
    headers: Headers | None = None
    secret: Label | None = None


class EndpointPatch(In):
    """Only the fields sent change; `null` clears uid, throttleRate, eventTypes, channels."""

    url: Label | None = None
    description: Label | None = None
    uid: Uid | None = None
    throttle_rate: int | None = Field(None, ge=1, le=65535, validation_alias=AliasChoices(
        "throttleRate", "rateLimit", "throttle_rate"))
    disabled: bool | None = None
    event_types: Annotated[list[TypeName], Field(min_length=1)] | None = Field(
        None, validation_alias=AliasChoices("eventTypes", "filterTypes", "event_types"))
    channels: Annotated[list[Channel], Field(min_length=1, max_length=MAX_CHANNELS)] | None = None
    metadata: Metadata | None = None


class HeadersIn(In):
    headers: dict[str, str]


class HeadersPatch(In):
    headers: dict[str, str | None]
    delete_headers: list[Label] = Field(default_factory=list)


class RotateIn(In):
    key: Label | None = None
    grace_period_seconds: int = Field(86400, ge=0, le=604800)


class RecoverIn(In):
    since: Time
    until: Time | None = None


class ExampleIn(In):
    event_type: TypeName
    example_index: int = Field(0, ge=0)


class MessageIn(In):
    event_type: TypeName
    payload: Annotated[dict[str, Any], AfterValidator(finite)] = Field(
        validation_alias=AliasChoices("payload", "data"))
    event_id: Uid | None = None
    channels: Annotated[list[Channel], Field(min_length=1, max_length=5)] | None = None
    application: ApplicationIn | None = None  # creates {app_id} when it does not exist
    deliver_at: Time | None = None
    transformations_params: dict[str, Any] | None = None


class EventTypesQuery(ListQuery):
    with_content: bool = False  # Svix's lists leave schemas out unless asked
    include_archived: bool = False


class EventTypeQuery(ContentQuery):
    include_archived: bool = False


class ExpungeQuery(Query):
    expunge: bool = False  # false: Svix's delete archives


class CreateQuery(Query):
    get_if_exists: bool = False


class MessagesQuery(ListQuery, ContentQuery):
    channel: Channel | None = None
    before: Time | None = None
    after: Time | None = None
    event_types: str | None = None  # comma-separated


class AttemptsQuery(ListQuery, ContentQuery):
    status: Literal[0, 1, 2, 3, 4] | None = None
    endpoint_id: Label | None = None


class PortalIn(In):
    application: ApplicationIn | None = None  # creates {app_id} when it does not exist
    read_only: bool = False
    capabilities: list[Label] | None = None
    expiry: int = Field(7 * 86400, ge=3600, le=7 * 86400)


ThrottleRate = Annotated[int, Field(ge=1, le=65535)]
_THROTTLE = AliasChoices("throttleRate", "rateLimit", "throttle_rate")


class ApplicationIn(In):
    """Create, and PUT (every field replaced; the uid kept when none is sent). Name and
    metadata follow relay's tenant rules (/v1/tenants)."""

    name: Name
    uid: Uid | None = None
    throttle_rate: ThrottleRate | None = Field(None, validation_alias=_THROTTLE)
    metadata: TenantMetadata | None = None


class ApplicationPatch(In):
    """Only the fields sent change; `null` clears uid and throttleRate."""

    name: Name | None = None
    uid: Uid | None = None
    throttle_rate: ThrottleRate | None = Field(None, validation_alias=_THROTTLE)
    metadata: TenantMetadata | None = None


# Svix's versioned schemas: relay keeps one, version "1".
Schemas = dict[Literal["1"], Annotated[dict[str, Any], AfterValidator(finite)]]


class EventTypeUpsert(In):
    """PUT (every field replaced), and the body of a create beside its name."""

    description: Description
    archived: bool = False
    deprecated: bool = False
    schemas: Schemas | None = None


class EventTypeIn(EventTypeUpsert):
    name: TypeName


class EventTypePatch(In):
    """Only the fields sent change; `null` schemas clears the schema."""

    description: Description | None = None
    archived: bool | None = None
    deprecated: bool | None = None
    schemas: Schemas | None = None


# --- answers -----------------------------------------------------------------------------


class ListResponse(Out, Generic[_T]):
    data: list[_T]
    iterator: str | None
    prev_iterator: str | None = None
    done: bool


class ApplicationOut(Out):
    id: str
    uid: str | None
    name: str
    metadata: dict[str, str]
    throttle_rate: int | None = None
    created_at: str
    updated_at: str


class EventTypeOut(Out):
    name: str
    description: str
    deprecated: bool = False
    archived: bool = False
    schemas: dict[str, Any] | None
    created_at: str
    updated_at: str


class EndpointOut(Out):
    id: str
    uid: str | None
    url: str
    description: str
    metadata: dict[str, str]
    throttle_rate: int | None
    disabled: bool
    event_types: list[str] | None
    channels: list[str] | None
    version: int = 1
    created_at: str
    updated_at: str


class SecretOut(Out):
    key: str


class HeadersOut(Out):
    headers: dict[str, str]
    sensitive: list[str]


class RecoverOut(Out):
    id: str
    status: Literal["running", "finished", "failed"]
    task: Literal["endpoint.recover"] = "endpoint.recover"
    updated_at: str


class MessageOut(Out):
    id: str
    event_type: str
    payload: dict[str, Any]
    event_id: str | None
    channels: list[str] | None
    timestamp: str


class AttemptOut(Out):
    id: str
    msg_id: str
    endpoint_id: str
    url: str
    response: str
    response_status_code: int
    response_duration_ms: int
    status: int
    status_text: str
    trigger_type: int
    timestamp: str


class PortalOut(Out):
    url: str
    token: str


class Empty(Out):
    """resend's answer: `{}` (the Python SDK parses it as JSON)."""
