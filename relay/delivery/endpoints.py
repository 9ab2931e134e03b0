"""An endpoint as the scheduler sees it: stored row + delivery defaults, resolved."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from relay.config import DeliveryConfig, Loaded
from relay.delivery import health
from relay.delivery.headers import Sendable, sendable
from relay.delivery.matching import Filter, compile_filter
from relay.logs import log
from relay.types import ConfigEndpoint, EndpointRow, Payload, Scheme, State


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: str
    tenant: str
    url: str
    events: tuple[str, ...]
    channels: frozenset[str] | None  # None: every event (matching.channels_match)
    filter: Filter  # compiled once here; checked when the config or API took it
    headers: dict[str, str]
    signature: Scheme
    signature_header: str | None
    payload: Payload
    timeout: float
    schedule: tuple[float, ...]
    concurrency: int  # 1 when ordered
    rate_limit: float | None
    ordered: bool  # ordering = "fifo": one at a time, the head first (docs/ordering.md)
    allow_http: bool
    allow_private: bool
    secrets: tuple[str, ...]  # the current secret, then the previous one during its grace
    accepting: bool  # active, not paused, enabled: new deliveries are pending, not held
    row: EndpointRow

    @property
    def new_state(self) -> State:
        """The state a delivery to this endpoint starts in (new, retried, replayed)."""
        return health.waiting_state(self.accepting)


def _sendable(row: EndpointRow) -> Sendable:
    """The stored headers minus what may not be sent (headers.sendable), each left out
    with a warning: at every load of the endpoint, not at every delivery."""
    out = sendable(row.spec.headers, row.spec.signature_header)
    for what in out.skipped:
        log("endpoint_header_skipped", logging.WARNING, endpoint=row.id, problem=what)
    return out


def resolve(row: EndpointRow, defaults: DeliveryConfig, now: float) -> Endpoint:
    spec = row.spec
    headers = _sendable(row)
    secrets = [row.secret]
    if row.prev_secret and row.prev_secret_until and row.prev_secret_until > now:
        secrets.append(row.prev_secret)
    ordered = spec.ordering == "fifo"
    return Endpoint(
        id=row.id,
        tenant=row.tenant,
        url=spec.url,
        events=spec.events,
        channels=None if spec.channels is None else frozenset(spec.channels),
        filter=compile_filter(spec.filter),
        headers=headers.headers,
        signature=spec.signature,
        signature_header=headers.signature_header,
        payload=spec.payload,
        timeout=spec.timeout or defaults.timeout,
        schedule=tuple(defaults.retry_schedule if spec.retry_schedule is None
                       else spec.retry_schedule),
        concurrency=1 if ordered else spec.endpoint_concurrency or defaults.endpoint_concurrency,
        rate_limit=spec.rate_limit,
        ordered=ordered,
        allow_http=defaults.allow_http,
        allow_private=defaults.allow_private_networks,
        secrets=tuple(secrets),
        accepting=health.accepting(row),
        row=row,
    )


def config_endpoints(loaded: Loaded) -> list[ConfigEndpoint]:
    """The config file's endpoints in their stored form, with the secrets it names (None:
    keep the stored one, or generate one)."""
    return [ConfigEndpoint(ep.id, ep.tenant, ep.spec, loaded.endpoint_secrets.get(ep.id))
            for ep in loaded.config.endpoints]
