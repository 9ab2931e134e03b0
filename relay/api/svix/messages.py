"""/api/v1/app/{app_id}/msg...: Svix's messages are relay's events, and send-example.

A message is ingested by the operation /v1's ingest uses (Operations.send): its
`eventType` as the type, `payload` as the data, `eventId` as the idempotency key (so a
second message with it is a 409: docs/svix.md, A6) and its channels. Its type is never
refused nor its payload checked against a schema (A4): Svix checks neither, so what a
Svix user sends, relay takes; relay's own operational types (`relay.*`) excepted.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from relay.api.svix import applications, convert, pages
from relay.api.svix.calls import Call
from relay.api.svix.endpoints import answer
from relay.api.svix.errors import Invalid, problem
from relay.api.svix.models import ContentQuery, ExampleIn, MessageIn, MessageOut, MessagesQuery
from relay.delivery.operational import is_operational
from relay.errors import Conflict, NotFound
from relay.operations import Operations
from relay.runtime import EventIn, timestamp
from relay.types import EventRow, Ingested

PING = ("svix.ping", {"success": True})  # what Svix's own example type sends


def _sent(result: Ingested, data: dict[str, Any], given: MessageIn | None,
          with_content: bool) -> MessageOut:
    return MessageOut(
        id=result.id, event_type=result.type, payload=data if with_content else {},
        event_id=None if given is None else given.event_id,
        channels=None if given is None else given.channels,
        timestamp=timestamp(result.created_at))


def _refused(given: MessageIn) -> None:
    """What relay cannot do as asked: refused rather than done differently."""
    bad = []
    if is_operational(given.event_type):
        bad.append(problem("body", ["eventType"], f"{given.event_type!r}: types starting "
                           "with 'relay.' are relay's own operational events"))
    if given.deliver_at is not None:
        bad.append(problem("body", ["deliverAt"], "relay does not schedule messages: "
                           "send it when it is due"))
    if given.transformations_params and "rawPayload" in given.transformations_params:
        bad.append(problem("body", ["transformationsParams", "rawPayload"],
                           "relay sends JSON payloads only"))
    if bad:
        raise Invalid(bad)


async def create_message(call: Call) -> Response:
    """202; `application` creates {app_id} when it does not exist (as Svix)."""
    app_id = call.path("app_id")
    given = call.parse(MessageIn)
    with_content = call.query(ContentQuery).with_content
    _refused(given)
    await applications.ensure(call, app_id, given.application)
    operations = call.operations(app_id)
    result = await operations.send(EventIn(
        given.event_type, given.payload, operations.tenant.id, given.event_id,
        None if given.channels is None else tuple(given.channels)))
    if result.duplicate:
        raise Conflict(f"a message with eventId {given.event_id!r} exists: {result.id}")
    return answer(_sent(result, given.payload, given, with_content), 202)


async def _events(operations: Operations, query: MessagesQuery, types: list[str],
                  after: str | None, n: int) -> list[EventRow]:
    return await operations.store.list_events(
        operations.tenant.id, type=types[0] if len(types) == 1 else None, before=after,
        since=None if query.after is None else query.after.timestamp(),
        until=None if query.before is None else query.before.timestamp(), limit=n)


async def list_messages(call: Call) -> Response:
    """Newest first; `event_types` (comma-separated) and `channel` filter, `after` and
    `before` bound the times."""
    operations = call.operations(call.path("app_id"))
    query = call.query(MessagesQuery)
    types = [t for t in (query.event_types or "").split(",") if t]
    scope = f"svix messages {operations.tenant.id}"

    def keep(event: EventRow) -> bool:
        return (not types or event.type in types) and (
            query.channel is None or query.channel in (event.channels or ()))

    found, position, more = await pages.scan(
        lambda after, n: _events(operations, query, types, after, n), keep,
        lambda e: e.id, await pages.start(call.relay, scope, query.iterator), query.limit)
    data = [convert.message_out(e, query.with_content) for e in found]
    return answer(await pages.answer(call.relay, scope, data, position, more))


async def get_message(call: Call) -> Response:
    """By id, or by the eventId it was sent with."""
    operations = call.operations(call.path("app_id"))
    event = await operations.own_event(call.path("msg_id"))
    return answer(convert.message_out(event, call.query(ContentQuery).with_content))


async def send_example(call: Call) -> Response:
    """A real message of the type's sample, to this one endpoint (docs/svix.md, A11)."""
    operations = call.operations(call.path("app_id"))
    row = await operations.own_webhook(call.path("endpoint_id"))
    given = call.parse(ExampleIn)
    samples = dict([PING] + [(t.name, t.sample) for t in operations.event_types()])
    if given.event_type not in samples:
        raise NotFound(f"no event type {given.event_type!r}")
    data = samples[given.event_type]
    result = await operations.send(EventIn(given.event_type, data, operations.tenant.id,
                                           None, targets=(row.id,)))
    return answer(_sent(result, data, None, True), 202)
