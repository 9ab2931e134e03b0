"""Pages of lists relay holds in memory (the directory's tenants, keys and event types),
over the cursors of relay.operations.webhooks."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TypeVar

from relay.models import PageQuery
from relay.operations.webhooks import after_of, page_of
from relay.runtime import Relay

_T = TypeVar("_T")
# (0: the file's, 1: data's, 2: relay's own; its place in the file or its creation; id)
Order = tuple[int, float, str]


async def sorted_page(relay: Relay, scope: str, items: Sequence[tuple[Order, _T]],
                      query: PageQuery) -> tuple[list[_T], str | None]:
    """A page of a list held in memory, in `Order`. Its cursor carries the last item's
    order, not its index, so a page resumes in place even after items before it (or
    the item itself) went away."""
    after = await after_of(relay, scope, query.after)
    start = None if after is None else tuple(json.loads(after))
    rows = [(order, item) for order, item in items if start is None or order > start]
    page, cursor = await page_of(relay, scope, rows[:query.limit + 1], query.limit,
                                 lambda row: json.dumps(row[0]))
    return [item for _, item in page], cursor
