"""The shapes of /v1/tenants and /v1/api-keys (SPEC §10): request bodies, queries and
answers, beside relay.models' (whose base classes and field types they use), so the
routes, /openapi.json and the operations agree on every field.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, BaseModel, Field, StringConstraints, create_model

from relay.config import Scope
from relay.config.values import ID_RE, NoControls, Text
from relay.directory import Key, Tenant
from relay.models import Name, PageQuery, StrictBody, Time, _omit_default, time_of
from relay.runtime import timestamp
from relay.types import Source

TenantId = Annotated[str, StringConstraints(pattern=ID_RE)]
# max_webhooks through the API: PostgreSQL's column is a 32-bit INTEGER.
MaxWebhooks = Annotated[int, Field(ge=0, le=2**31 - 1)]
Metadata = Annotated[
    dict[Annotated[str, StringConstraints(min_length=1, max_length=128), NoControls],
         Annotated[str, StringConstraints(max_length=1024), NoControls]],
    Field(max_length=50),
]


class TenantIn(StrictBody):
    id: TenantId = Field(description="The tenant's id: what keys, webhooks and events name.",
                         examples=["acme"])
    name: Name | None = Field(None, description="A label for people (default: the id).",
                              examples=["Acme Inc."])
    metadata: Metadata = Field(default_factory=dict,
                               description="Your own strings about the tenant, kept as given.",
                               examples=[{"plan": "pro"}])
    max_webhooks: MaxWebhooks | None = Field(
        None, description="Most webhooks it may create through the API (null: no limit).")
    webhooks_enabled: bool = Field(
        True, description="false: its ingest and webhook routes answer 403.")


# Absent fields stay as they are; the None defaults are never validated, so null is
# refused where it means nothing (only max_webhooks: null is "no limit").
TenantPatch = create_model(
    "TenantPatch", __base__=StrictBody,
    name=(Name, Field(None, json_schema_extra=_omit_default)),
    metadata=(Metadata, Field(None, json_schema_extra=_omit_default,
                              description="Replaces the metadata whole.")),
    max_webhooks=(MaxWebhooks | None, Field(None, description="null: no limit.")),
    webhooks_enabled=(bool, Field(None, json_schema_extra=_omit_default)),
)


class TenantOut(BaseModel):
    id: str
    name: str
    metadata: dict[str, str]
    max_webhooks: int | None
    webhooks_enabled: bool
    source: Source = Field(description='"config": defined in the config file, read-only here.')
    created_at: Time = Field(description="A config tenant's: when relay loaded it.")


class ApiKeyIn(StrictBody):
    name: Name = Field(description="A label for logs and errors.", examples=["billing-service"])
    scopes: list[Scope] = Field(min_length=1, description="What the key may do.",
                                examples=[["events:write"]])
    tenant: Text = Field("default", description="The tenant the key acts in.")
    expires_at: AwareDatetime | None = Field(
        None, description="After this the key answers 401 (default: never).")


class ApiKeysQuery(PageQuery):
    tenant: Text | None = Field(None, description="Only the keys of this tenant.")


class ApiKeyOut(BaseModel):
    id: str | None = Field(description="null: a key of the config file (manage it there).")
    name: str
    scopes: list[Scope]
    tenant: str
    expires_at: Time | None
    source: Source
    created_at: Time = Field(description="A config key's: when relay loaded it.")


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The key; shown only in this answer (relay keeps its "
                     "SHA-256 only). Send it as `Authorization: Bearer KEY`.")


def tenant_of(tenant: Tenant) -> TenantOut:
    return TenantOut(id=tenant.id, name=tenant.name, metadata=dict(tenant.metadata),
                     max_webhooks=tenant.max_webhooks, webhooks_enabled=tenant.webhooks_enabled,
                     source=tenant.source, created_at=timestamp(tenant.created_at))


def key_of(key: Key) -> ApiKeyOut:
    return ApiKeyOut(id=key.id, name=key.name, scopes=sorted(key.scopes), tenant=key.tenant,
                     expires_at=time_of(key.expires_at), source=key.source,
                     created_at=timestamp(key.created_at))
