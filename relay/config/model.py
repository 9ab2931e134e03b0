"""The whole config, Config (its sections in file order), and what loading it yields:
Loaded, the validated config with the values it names in the environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import get_args

from pydantic import BaseModel, Field

from relay.config.endpoints import EndpointConfig
from relay.config.event_types import EventTypeConfig
from relay.config.sections import (
    ApiKeyConfig,
    DeliveryConfig,
    OperatorConfig,
    Scope,
    ServerConfig,
    StorageConfig,
    TenantConfig,
    UiConfig,
)
from relay.config.values import DEFAULT_TENANT, Section


class Config(Section):
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

    @classmethod
    def sections(cls) -> list[tuple[str, type[BaseModel], bool]]:
        """The config's sections in order: name, model, and whether it is an array of
        tables (`[[name]]`) rather than one table (`[name]`)."""
        out = []
        for name, field in cls.model_fields.items():
            args = get_args(field.annotation)
            model = args[0] if args else field.annotation
            assert isinstance(model, type) and issubclass(model, BaseModel), name
            out.append((name, model, bool(args)))
        return out


@dataclass(frozen=True)
class ApiKey:
    """An API key as relay holds it at run time: only its digest."""

    name: str
    sha256: str
    scopes: frozenset[Scope]
    tenant: str


@dataclass(frozen=True)
class Loaded:
    """A validated config plus the values it names in the environment."""

    config: Config
    source: Path | None
    api_keys: tuple[ApiKey, ...]
    endpoint_secrets: dict[str, str]  # endpoint id -> secret from `secret` or `secret_env`
