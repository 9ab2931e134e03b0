"""Svix's pagination over relay's opaque cursors: `limit`, `iterator` and `order` in,
`data`, `iterator`, `prevIterator` and `done` out.

`iterator` is a relay cursor (relay.cursors) of the page's last item, minted even on the
last page, so a poller keeps it to resume later (as Svix's is); an empty page gives back
the iterator it was asked with. `done`: no further item now. `prevIterator` is null
(every SDK model has it optional). The scope a cursor is bound to names the list, its
tenant and its order, so one list's iterator is refused by every other.

A list filtered on what the database does not index (channels, several event types,
attempt statuses) reads along in batches, keeping what matches (`scan`), and stops after
`MAX_SCAN` rows: its page may then be short with `done` false, which Svix's clients
already handle (they page until `done`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Literal, TypeVar

from relay import cursors
from relay.api.svix.errors import Invalid, problem
from relay.api.svix.models import ListQuery, ListResponse
from relay.errors import InvalidCursor
from relay.runtime import Relay
from relay.sessions import new_key

_T = TypeVar("_T")
_O = TypeVar("_O")
MAX_SCAN = 5000  # rows a filtered page reads at most
Order = Literal["ascending", "descending"]


def order(query: ListQuery, default: Order) -> Order:
    return query.order or default


async def start(relay: Relay, scope: str, iterator: str | None) -> str | None:
    """Where a page resumes: the position the caller's iterator carries (422 for one
    relay did not hand out for this list)."""
    if iterator is None:
        return None
    try:
        return cursors.position(await relay.secret_key(cursors.KEY_NAME, new_key), scope,
                                iterator)
    except InvalidCursor:
        raise Invalid([problem("query", ["iterator"], "not an iterator relay handed out for "
                               "this list; pass the previous page's as it is")]) from None


async def scan(fetch: Callable[[str | None, int], Awaitable[Sequence[_T]]],
               keep: Callable[[_T], bool], position_of: Callable[[_T], str],
               after: str | None, limit: int) -> tuple[list[_T], str | None, bool]:
    """Up to `limit` rows `keep` takes, read with `fetch(after, n)` from `after` on:
    them, the position of the last row looked at, and whether rows are left there."""
    found: list[_T] = []
    position, looked = after, 0
    while True:
        batch = await fetch(position, limit + 1)
        for row in batch:
            if len(found) == limit:
                return found, position, True
            position, looked = position_of(row), looked + 1
            if keep(row):
                found.append(row)
        if len(batch) <= limit:
            return found, position, False
        if looked >= MAX_SCAN:
            return found, position, True


async def answer(relay: Relay, scope: str, data: list[_O], position: str | None,
                 more: bool) -> ListResponse[_O]:
    """A page: its items (as Svix shows them), and an iterator resuming after
    `position`, the last row looked at."""
    iterator = None
    if position is not None:
        key = await relay.secret_key(cursors.KEY_NAME, new_key)
        iterator = cursors.mint(key, scope, position)
    return ListResponse[_O](data=data, iterator=iterator, done=not more)


def in_memory(rows: Sequence[_T], position_of: Callable[[_T], str]
              ) -> Callable[[str | None, int], Awaitable[list[_T]]]:
    """`scan`'s fetch over a list read whole (endpoints, tenants, event types: few): the
    rows after the one at a position (none after a position no row has now)."""
    positions = [position_of(row) for row in rows]

    async def fetch(after: str | None, n: int) -> list[_T]:
        if after is None:
            return list(rows[:n])
        if after not in positions:
            return []
        first = positions.index(after) + 1
        return list(rows[first:first + n])

    return fetch
