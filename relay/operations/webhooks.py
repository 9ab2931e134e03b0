"""The management operations, scoped to one tenant: what the JSON API and the console do.

Both front ends build an `Operations` for the caller (an API key's tenant, a console
login, a portal session) and call the same methods, so each rule lives here once: which
fields a config-defined endpoint may change, what re-enabling resets, which endpoints a
replay may name, which event types a test may send. Another tenant's webhook, delivery or
event is a NotFound, as if it did not exist, and a list's `after` cursor is one relay
minted for that list in that tenant (relay.cursors) or a 400. `can_write` false (a
read-only portal session, a `webhooks:read` key) refuses every change with Forbidden.

Inputs are the validated pydantic models of relay.models; answers are its answer
models, so both front ends show the same thing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar, get_args

from relay import cursors
from relay.config import Config, EndpointConfig, TenantConfig
from relay.config.checks import cross_check
from relay.config.values import ID_RE
from relay.delivery import health
from relay.delivery.signing import check_secret
from relay.directory import Tenant
from relay.errors import Conflict, Forbidden, NotFound, Unprocessable
from relay.logs import log
from relay.models import (
    PATCH_SPEC_FIELDS,
    DeliveriesQuery,
    Delivery,
    DeliveryDetail,
    Envelope,
    Event,
    EventsQuery,
    EventType,
    Page,
    PageQuery,
    Recovered,
    Replayed,
    Rotated,
    Secret,
    SendTestResult,
    Webhook,
    WebhookCreated,
    attempt_of,
    delivery_of,
    event_of,
    event_type_of,
    time_of,
    webhook_of,
)
from relay.runtime import EventIn, Relay, timestamp
from relay.sessions import KEY_NAME, new_key, new_session, sign
from relay.storage.base import EndpointsAndReads, Reads
from relay.text import control_problem
from relay.types import DeliveryRow, EndpointRow, EndpointSpec, EventRow, Ingested, ListedAttempt

# What a test send carries when no event type is named.
PING: tuple[str, dict[str, Any]] = ("relay.ping", {})
_T = TypeVar("_T")


async def after_of(relay: Relay, scope: str, after: str | None) -> str | None:
    """The position an `after` cursor of the list `scope` resumes from (relay.cursors:
    400 for a cursor of another list or caller, an altered one, or a raw id)."""
    if after is None:
        return None
    return cursors.position(await relay.secret_key(cursors.KEY_NAME, new_key), scope, after)


async def page_of(relay: Relay, scope: str, rows: Sequence[_T], limit: int,
                  position: Callable[[_T], str]) -> tuple[list[_T], str | None]:
    """Rows were read with limit + 1: the extra one only says a next page exists, whose
    cursor resumes after this page's last row, in the list `scope` only."""
    page = list(rows[:limit])
    if len(rows) <= limit:
        return page, None
    key = await relay.secret_key(cursors.KEY_NAME, new_key)
    return page, cursors.mint(key, scope, position(page[-1]))


def delivery_number(ref: str) -> int:
    """`dlv_<n>` -> n; a malformed id is a 404, as an unknown one."""
    number = ref.removeprefix("dlv_")
    if ref.startswith("dlv_") and number.isascii() and number.isdigit() and len(number) < 19:
        return int(number)
    raise NotFound(f"no delivery {ref!r}")


WebhookState = Literal["active", "failing", "paused", "disabled"]
WEBHOOK_STATES: tuple[WebhookState, ...] = get_args(WebhookState)


def webhook_state(webhook: Webhook) -> WebhookState:
    """One word for the console: disabled (by relay or the file) beats paused beats
    failing (consecutive failures since the last success) beats active."""
    if not webhook.is_active:
        return "disabled"
    if webhook.is_paused:
        return "paused"
    return "failing" if webhook.consecutive_failures else "active"


def reads_of(relay: Relay) -> EndpointsAndReads:
    """The store as the operations read it; they change it only through `relay`."""
    return relay.store


async def with_counts(store: Reads, rows: list[EndpointRow]) -> list[Webhook]:
    """Webhooks with their queue counts (blocked ones asked only of ordered webhooks)."""
    pending = await store.pending_counts([row.id for row in rows])
    blocked = await store.blocked_counts(
        [row.id for row in rows if row.spec.ordering == "fifo"])
    return [webhook_of(row, pending[row.id], blocked.get(row.id, 0)) for row in rows]


async def list_webhooks(relay: Relay, tenant: str | None, query: PageQuery,
                        state: WebhookState | None = None) -> Page[Webhook]:
    """A page of webhooks in creation order, of `tenant` or (None, the operator's list)
    of every tenant; with `state`, only those in it (read whole and filtered: endpoints
    are few and live in memory anyway, while deliveries, the long lists, are paged in the
    database). Only operator code passes None: Operations always passes its tenant."""
    store = reads_of(relay)
    scope = f"webhooks {tenant or '*'}"
    after = await after_of(relay, scope, query.after)
    if state is not None:
        # The store resumes after `after` in its own order, even once that webhook is
        # deleted (its row stays, marked): the rest of the list, then filtered.
        webhooks = await with_counts(store, await store.list_endpoints(tenant, after=after))
        matching = [w for w in webhooks if webhook_state(w) == state]
        data, cursor = await page_of(relay, scope, matching, query.limit, lambda w: w.id)
        return Page[Webhook](data=data, next=cursor)
    rows = await store.list_endpoints(tenant, after=after, limit=query.limit + 1)
    page, cursor = await page_of(relay, scope, rows, query.limit, lambda row: row.id)
    return Page[Webhook](data=await with_counts(store, page), next=cursor)


async def portal_link(relay: Relay, tenant: str, expires_in: float,
                      read_only: bool) -> tuple[str, str, str]:
    """A signed, expiring link opening `tenant`'s portal (an admin's: the caller checks):
    its URL (under public_url, never the request's Host), its token, when it expires."""
    session = new_session("p", tenant, relay.clock() + expires_in, read_only)
    token = sign(await relay.secret_key(KEY_NAME, new_key), session)
    return (f"{relay.config.server.base_url}/ui/portal?token={token}", token,
            timestamp(session.expires_at))


def _config_defined(row: EndpointRow, what: str) -> Conflict:
    return Conflict(f"webhook {row.id!r} is defined in the config file: {what}")


def _check_secret(scheme: str, secret: str) -> None:
    if problem := check_secret(scheme, secret):
        raise Unprocessable("the request has invalid fields",
                            [{"path": "secret", "message": problem}])


class Operations:
    """Every management operation, in one tenant, for one caller."""

    def __init__(self, relay: Relay, tenant: Tenant, *, can_write: bool) -> None:
        self.relay = relay
        self.store = reads_of(relay)
        self.tenant = tenant
        self.can_write = can_write

    def require_write(self) -> None:
        """Forbidden for a read-only caller: every change checks this first."""
        if not self.can_write:
            raise Forbidden("this session is read-only: it may look but not change anything")

    # --- lookups -------------------------------------------------------------------------

    async def own_webhook(self, webhook_id: str) -> EndpointRow:
        """The tenant's webhook of that id, or else of that uid; a reference no webhook
        can have (a control character, from a path) is a 404 without asking the
        database, as a malformed delivery id is."""
        row = (await self.store.get_endpoint(webhook_id)
               if re.fullmatch(ID_RE, webhook_id) else None)
        if (row is None or row.tenant != self.tenant.id) and not control_problem(webhook_id):
            row = await self.store.find_endpoint(self.tenant.id, webhook_id)
        if row is None or row.tenant != self.tenant.id:
            raise NotFound(f"no webhook {webhook_id!r}")
        return row

    async def own_delivery(self, ref: str) -> DeliveryRow:
        row = await self.store.get_delivery(delivery_number(ref), self.tenant.id)
        if row is None:
            raise NotFound(f"no delivery {ref!r}")
        return row

    async def own_event(self, event_id: str) -> EventRow:
        """The tenant's event of that id, or else ingested with that idempotency key."""
        if control_problem(event_id):  # from a console path: as own_webhook
            raise NotFound(f"no event {event_id!r}")
        row = (await self.store.get_event(event_id, self.tenant.id)
               or await self.store.event_by_key(self.tenant.id, event_id))
        if row is None:
            raise NotFound(f"no event {event_id!r}")
        return row

    async def _answer(self, row: EndpointRow) -> Webhook:
        [webhook] = await with_counts(self.store, [row])
        return webhook

    def _checked_spec(self, row_id: str, fields: dict[str, Any]) -> EndpointSpec:
        """The stored spec of an endpoint with these settings, after the checks a config
        file's endpoint gets (URL scheme, signature header); 422 naming each bad field."""
        config = self.relay.config
        endpoint = EndpointConfig.model_construct(
            id=row_id, tenant=self.tenant.id, **{k: v for k, v in fields.items() if v is not None}
        )
        errors, _ = cross_check(Config.model_construct(
            delivery=config.delivery, tenants=[TenantConfig.model_construct(id=self.tenant.id)],
            endpoints=[endpoint]), {})
        if errors:
            details = []
            for line in errors:
                path, _, message = line.removeprefix("endpoints[0].").partition(": ")
                details.append({"path": path, "message": message})
            raise Unprocessable("the request has invalid fields", details)
        return endpoint.spec

    # --- webhooks ------------------------------------------------------------------------

    async def webhooks(self, query: PageQuery, state: WebhookState | None = None
                       ) -> Page[Webhook]:
        """A page of the tenant's webhooks in creation order (see `list_webhooks`)."""
        return await list_webhooks(self.relay, self.tenant.id, query, state)

    async def webhook(self, webhook_id: str) -> Webhook:
        return await self._answer(await self.own_webhook(webhook_id))

    async def create(self, name: str, fields: dict[str, Any], *, secret: str | None = None,
                     uid: str | None = None, metadata: dict[str, str] | None = None
                     ) -> WebhookCreated:
        """A new API endpoint, with `secret` (None: a generated one, in this answer only)."""
        self.require_write()
        spec = self._checked_spec("new", fields)
        if secret is not None:
            _check_secret(spec.signature, secret)
        row = await self.relay.create_endpoint(self.tenant.id, name, spec,
                                               self.tenant.max_webhooks, secret=secret,
                                               uid=uid, metadata=metadata)
        return WebhookCreated(**webhook_of(row, 0).model_dump(), secret=row.secret)

    async def change(self, webhook_id: str, given: dict[str, Any]) -> Webhook:
        """Apply the fields given (a WebhookPatch's set fields). Config-defined webhooks
        take only is_active/is_paused: the file stays the truth."""
        self.require_write()
        row = await self.own_webhook(webhook_id)
        if row.source == "config" and (fixed := sorted(set(given) - {"is_active", "is_paused"})):
            raise _config_defined(
                row, f"{', '.join(fixed)} cannot be changed through the API (only is_active "
                "and is_paused); edit the config file instead")
        changes: dict[str, Any] = {k: given[k] for k in ("name", "uid", "metadata")
                                   if k in given}
        if settings := {k: v for k, v in given.items() if k in PATCH_SPEC_FIELDS}:
            changes["spec"] = self._checked_spec(row.id, {**row.spec.to_dict(), **settings})
        if "is_paused" in given:
            changes["is_paused"] = given["is_paused"]
        if "is_active" in given:
            changes.update(health.set_active(given["is_active"], was_active=row.is_active))
        return await self._answer(await self.relay.change_endpoint(row.id, changes))

    async def delete(self, webhook_id: str) -> None:
        self.require_write()
        row = await self.own_webhook(webhook_id)
        if row.source == "config":
            raise _config_defined(row, "remove it from the config file instead")
        await self.relay.delete_endpoint(row.id)

    async def rotate(self, webhook_id: str, grace: float | None,
                     secret: str | None = None) -> Rotated:
        """A new secret (`secret`, or a generated one shown in this answer only); the old
        one signs too for `grace`."""
        self.require_write()
        row = await self.own_webhook(webhook_id)
        if row.id in self.relay.loaded.endpoint_secrets:
            raise _config_defined(
                row, "its secret is set there (secret or secret_env); rotate it in the file")
        if secret is not None:
            _check_secret(row.spec.signature, secret)
        row = await self.relay.rotate_secret(row.id, grace or 0.0, secret)
        return Rotated(secret=row.secret, previous_expires_at=time_of(row.prev_secret_until))

    async def secret(self, webhook_id: str) -> Secret:
        """The signing secret, shown again (as Svix and Stripe do) to a caller that may
        change the webhook; logged, since it lets its reader sign deliveries."""
        self.require_write()
        row = await self.own_webhook(webhook_id)
        log("secret_revealed", endpoint=row.id, tenant=row.tenant)
        return Secret(secret=row.secret)

    async def send_test(self, webhook_id: str, event_type: str | None) -> SendTestResult:
        """Send the type's sample (default relay.ping) now and answer the attempt."""
        self.require_write()
        row = await self.own_webhook(webhook_id)
        name, data = PING
        if event_type is not None:
            known = {t.name: t.sample for t in self.event_types()}
            if event_type not in known:
                raise NotFound(f"no event type {event_type!r}; known: " + ", ".join(known))
            name, data = event_type, known[event_type]
        envelope, outcome = await self.relay.test_send(row.id, name, data)
        return SendTestResult(
            success=outcome.ok, status=outcome.status, duration_ms=outcome.duration_ms,
            response_body=outcome.body.decode("utf-8", errors="replace"), error=outcome.error,
            event=Envelope(**envelope),
        )

    async def recover(self, webhook_id: str, since: float,
                      until: float | None = None) -> Recovered:
        self.require_write()
        row = await self.own_webhook(webhook_id)
        return Recovered(requeued=await self.relay.recover(row.id, since, until))

    # --- deliveries ----------------------------------------------------------------------

    async def deliveries(self, webhook_id: str, query: DeliveriesQuery) -> Page[Delivery]:
        row = await self.own_webhook(webhook_id)
        scope = f"deliveries {self.tenant.id} {row.id}"
        after = await after_of(self.relay, scope, query.after)
        rows = await self.store.list_deliveries(
            row.id, state=query.status, before=None if after is None else int(after),
            limit=query.limit + 1)
        page, cursor = await page_of(self.relay, scope, rows, query.limit, lambda d: str(d.id))
        return Page[Delivery](data=[delivery_of(d) for d in page], next=cursor)

    async def delivery(self, ref: str) -> DeliveryDetail:
        row = await self.own_delivery(ref)
        attempts = await self.store.attempts_of(row.id)
        return DeliveryDetail(**{**delivery_of(row).model_dump(),
                                 "attempts": [attempt_of(a) for a in attempts]})

    async def retry(self, ref: str) -> Delivery:
        self.require_write()
        row = await self.own_delivery(ref)
        return delivery_of(await self.relay.retry_delivery(row))

    async def cancel(self, ref: str) -> Delivery:
        self.require_write()
        row = await self.own_delivery(ref)
        return delivery_of(await self.relay.cancel_delivery(row))

    async def attempts(self, webhook_id: str | None, event_id: str | None, *,
                       before: int | None, limit: int) -> list[ListedAttempt]:
        """Attempts to one of the tenant's webhooks and/or of one of its events, newest
        delivery first (Reads.list_attempts), after the attempt `before`."""
        endpoint = None if webhook_id is None else (await self.own_webhook(webhook_id)).id
        event = None if event_id is None else (await self.own_event(event_id)).id
        return await self.store.list_attempts(endpoint_id=endpoint, event_id=event,
                                              before=before, limit=limit)

    async def attempt(self, number: int) -> ListedAttempt:
        """One attempt to one of the tenant's webhooks."""
        row = await self.store.get_attempt(number)
        if row is None or await self.store.get_event(row.event_id, self.tenant.id) is None:
            raise NotFound(f"no attempt {number}")
        return row

    # --- events --------------------------------------------------------------------------

    async def send(self, event: EventIn) -> Ingested:
        """Ingest one event in the tenant as given (the caller checked its type and data,
        and may send events): to `event.targets` only when named, each this tenant's."""
        if event.targets is not None:
            for target in event.targets:
                await self.own_webhook(target)
        [result] = await self.relay.ingest([event])
        return result

    async def events(self, query: EventsQuery) -> Page[Event]:
        scope = f"events {self.tenant.id}"
        rows = await self.store.list_events(
            self.tenant.id, type=query.type,
            before=await after_of(self.relay, scope, query.after),
            since=None if query.since is None else query.since.timestamp(),
            until=None if query.until is None else query.until.timestamp(),
            limit=query.limit + 1,
        )
        page, cursor = await page_of(self.relay, scope, rows, query.limit, lambda e: e.id)
        return Page[Event](data=[event_of(e) for e in page], next=cursor)

    async def event(self, event_id: str) -> Event:
        return event_of(await self.own_event(event_id))

    async def event_deliveries(self, event_id: str) -> list[Delivery]:
        """Every delivery of one of the tenant's events, replays included."""
        event = await self.own_event(event_id)
        return [delivery_of(d) for d in await self.store.deliveries_of(event.id)]

    async def replay(self, event_id: str, endpoints: list[str] | None) -> Replayed:
        """New deliveries of the event: to the webhooks named (each once, in the order
        given; every one must be this tenant's), else to every webhook matching it now."""
        self.require_write()
        event = await self.own_event(event_id)
        targets = None
        if endpoints is not None:
            targets = list(dict.fromkeys(endpoints))
            unknown = [
                {"path": f"endpoints[{i}]", "message": f"no webhook {eid!r} in this tenant"}
                for i, eid in enumerate(endpoints)
                if (ep := self.relay.endpoints.get(eid)) is None or ep.tenant != self.tenant.id
            ]
            if unknown:
                raise Unprocessable("the request has invalid fields", unknown)
        rows = await self.relay.replay(event, targets)
        return Replayed(deliveries=[delivery_of(d) for d in rows])

    # --- event types ---------------------------------------------------------------------

    def event_types(self) -> list[EventType]:
        """The catalog (relay.operations.event_types): the file's types, those made
        through the API, then relay's own operational events (relay.*)."""
        return [event_type_of(t) for t in self.relay.directory.catalog()]
