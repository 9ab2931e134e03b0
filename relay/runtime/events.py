"""Events as relay stores and sends them: the envelope receivers get, and the `NewEvent`
(with one delivery per matching endpoint) that an ingested event or an operational
notice becomes."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from relay.delivery.endpoints import Endpoint
from relay.delivery.matching import channels_match, type_matches
from relay.ids import event_id
from relay.types import EndpointRow, NewEvent, Notice


@dataclass(frozen=True, slots=True)
class EventIn:
    """A validated event from ingest, before it has an id. `targets`: the endpoints it
    goes to, matched or not (an example sent to one endpoint); None: those it matches."""

    type: str
    data: dict[str, Any]
    tenant: str
    idem_key: str | None
    channels: tuple[str, ...] | None = None
    targets: tuple[str, ...] | None = None


def timestamp(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def envelope(eid: str, event_type: str, tenant: str, data: dict[str, Any],
             now: float) -> tuple[dict[str, Any], bytes]:
    """An event as receivers get it, and its bytes (serialised once, sent as is)."""
    env = {"id": eid, "type": event_type, "timestamp": timestamp(now), "tenant_id": tenant,
           "data": data}
    try:  # orjson: the stdlib encoder was 4% of the loop's time at 500 events/s
        return env, orjson.dumps(env)
    except orjson.JSONEncodeError:  # integers past 64 bits, which JSON itself allows
        return env, json.dumps(env, separators=(",", ":"), ensure_ascii=False).encode()


def matching(endpoints: Iterable[Endpoint], tenant: str, envelope: dict[str, Any],
             channels: tuple[str, ...] | None = None) -> list[Endpoint]:
    """The endpoints an event goes to: the tenant's, by event type, channels and filter."""
    return [
        ep for ep in endpoints
        if ep.tenant == tenant and type_matches(ep.events, envelope["type"])
        and channels_match(ep.channels, channels) and ep.filter(envelope)
    ]


def ingested(ev: EventIn, now: float,
             endpoints: Iterable[Endpoint]) -> tuple[NewEvent, list[Endpoint]]:
    """An ingested event as it is stored, and the endpoints it matched."""
    env, payload = envelope(event_id(now), ev.type, ev.tenant, ev.data, now)
    if ev.targets is None:
        targets = matching(endpoints, ev.tenant, env, ev.channels)
    else:
        targets = [ep for ep in endpoints if ep.id in ev.targets]
    # Only a reused idempotency key compares content: no digest without one.
    digest = "" if ev.idem_key is None else hashlib.sha256(
        json.dumps([ev.tenant, ev.type, ev.data], sort_keys=True).encode()
    ).hexdigest()
    return NewEvent(
        id=env["id"], tenant=ev.tenant, type=ev.type, idem_key=ev.idem_key,
        digest=digest, created_at=now, payload=payload,
        deliveries=tuple((t.id, t.new_state) for t in targets), channels=ev.channels,
    ), targets


def from_notices(notices: list[Notice], now: float, endpoints: Mapping[str, Endpoint],
                 about: EndpointRow | None = None) -> list[NewEvent]:
    """Notices as events with their deliveries, matched like ingested events. Also
    called on the store's writer thread (Store.record): it only reads `endpoints`, and
    draws its ids' randomness from os.urandom, not the loop's pool."""
    out = []
    for notice in notices:
        data = {"endpoint": _summary(endpoints, notice.endpoint_id, about), **notice.data}
        env, payload = envelope(event_id(now, random=os.urandom(10)), notice.type,
                                notice.tenant, data, now)
        targets = matching(endpoints.values(), notice.tenant, env)
        if not targets:
            continue  # no subscriber: nothing to deliver, nothing to store
        out.append(NewEvent(
            id=env["id"], tenant=notice.tenant, type=notice.type, idem_key=None,
            digest="", created_at=now, payload=payload,
            deliveries=tuple((t.id, t.new_state) for t in targets),
        ))
    return out


def _summary(endpoints: Mapping[str, Endpoint], endpoint_id: str,
             row: EndpointRow | None) -> dict[str, Any]:
    """Who an operational event is about: id, name, url, events."""
    endpoint = endpoints.get(endpoint_id)
    if row is None and endpoint is not None:
        row = endpoint.row
    if row is None:  # gone from memory already
        return {"id": endpoint_id}
    return {"id": row.id, "name": row.name, "url": row.spec.url,
            "events": list(row.spec.events)}
