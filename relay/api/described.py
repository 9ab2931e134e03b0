"""What /openapi.json says of one operation (a method on a path): `Op`. The tables of
relay's own routes (relay.api.openapi) and of Svix's (relay.api.svix.openapi) are made
of these; relay.api.openapi builds the document from both."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from relay.config import Scope

Answer = tuple[str, type[BaseModel] | None]  # description, schema (None: no body)


@dataclass(frozen=True)
class Op:
    """One operation in OpenAPI's sense: what /openapi.json says of it. `dialect`: whose
    error answers it gives (relay's, or Svix's on /api/v1)."""

    method: str
    path: str
    summary: str
    answers: dict[int, Answer]
    scope: Scope | None = None  # None: no API key needed
    body: type[BaseModel] | None = None
    body_required: bool = True
    query: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()  # beyond those implied by auth, path, body and query
    media_type: str = "application/json"
    tags: tuple[str, ...] = ()
    dialect: Literal["relay", "svix"] = "relay"
