"""The configuration: one pydantic model per TOML section is the key table.

Each key is defined once, in its section's model: its type, default and description
(`Field`) feed validation (`load`), `relay check`, `relay init` and `config.example.toml`
(`render_example`). Errors name their key path (`endpoints[1].url: ...`); all of them are
reported at once.

The modules, each importing only those listed after it: `example` (the starter file,
`describe`) and `loading` (find, read, validate); `checks` (across keys); `model` (Config,
Loaded); the sections: `sections` (server, storage, delivery, ui, operator, tenants,
api_keys), `event_types` (and their JSON Schemas), `endpoints`; `values` (durations,
sizes, ids, the section base). Below are the names the rest of relay uses most.
"""

from relay.config.endpoints import EndpointConfig
from relay.config.example import describe, render_example
from relay.config.loading import find_config, load, validate
from relay.config.model import Config, Loaded
from relay.config.sections import (
    SCOPES,
    DeliveryConfig,
    Scope,
    ServerConfig,
    StorageConfig,
    TenantConfig,
)
from relay.config.values import DEFAULT_TENANT, format_duration, parse_duration

__all__ = [
    "DEFAULT_TENANT",
    "SCOPES",
    "Config",
    "DeliveryConfig",
    "EndpointConfig",
    "Loaded",
    "Scope",
    "ServerConfig",
    "StorageConfig",
    "TenantConfig",
    "describe",
    "find_config",
    "format_duration",
    "load",
    "parse_duration",
    "render_example",
    "validate",
]
