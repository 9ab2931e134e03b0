"""/api/v1/app/{app_id}/attempt... and resend: relay's attempts as Svix's message
attempts, newest delivery first (Reads.list_attempts), with Svix's status numbers."""

from __future__ import annotations

from starlette.responses import Response

from relay.api.svix import convert, pages
from relay.api.svix.calls import Call
from relay.api.svix.endpoints import answer
from relay.api.svix.models import AttemptsQuery, ContentQuery, Empty
from relay.errors import NotFound
from relay.operations import Operations
from relay.types import ListedAttempt


def _url(operations: Operations, endpoint_id: str) -> str:
    """Where an attempt went: its endpoint's URL now ("" once deleted)."""
    endpoint = operations.relay.endpoints.get(endpoint_id)
    return "" if endpoint is None else endpoint.url


async def _list(call: Call, webhook: str | None, event: str | None) -> Response:
    operations = call.operations(call.path("app_id"))
    query = call.query(AttemptsQuery)
    if event is not None and query.endpoint_id is not None:
        webhook = query.endpoint_id
    scope = f"svix attempts {operations.tenant.id} {webhook} {event}"

    async def fetch(after: str | None, n: int) -> list[ListedAttempt]:
        return await operations.attempts(webhook, event, limit=n,
                                         before=None if after is None else int(after))

    def keep(attempt: ListedAttempt) -> bool:
        return query.status is None or convert.attempt_status(attempt) == query.status

    found, position, more = await pages.scan(
        fetch, keep, lambda a: str(a.id), await pages.start(call.relay, scope, query.iterator),
        query.limit)
    data = [convert.attempt_out(a, _url(operations, a.endpoint_id), query.with_content)
            for a in found]
    return answer(await pages.answer(call.relay, scope, data, position, more))


async def by_endpoint(call: Call) -> Response:
    return await _list(call, call.path("endpoint_id"), None)


async def by_message(call: Call) -> Response:
    return await _list(call, None, call.path("msg_id"))


async def get_attempt(call: Call) -> Response:
    operations = call.operations(call.path("app_id"))
    event = await operations.own_event(call.path("msg_id"))
    attempt = await operations.attempt(convert.attempt_number(call.path("attempt_id")))
    if attempt.event_id != event.id:
        raise NotFound(f"no attempt {call.path('attempt_id')!r} of this message")
    return answer(convert.attempt_out(attempt, _url(operations, attempt.endpoint_id),
                                      call.query(ContentQuery).with_content))


async def resend(call: Call) -> Response:
    """A new delivery of the message to the endpoint (same id, so same svix-id), sent
    whether it matches now or not, as Svix's manual attempt."""
    operations = call.operations(call.path("app_id"))
    event = await operations.own_event(call.path("msg_id"))
    row = await operations.own_webhook(call.path("endpoint_id"))
    await operations.replay(event.id, [row.id])
    return answer(Empty(), 202)
