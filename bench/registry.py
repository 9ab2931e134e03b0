"""The scenario registry: a scenario is a function from a Context to result rows.

New scenarios live in bench/scenarios/<name>.py, decorate their entry point with
`@scenario(...)`, and are listed in bench/scenarios/__init__.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench.harness import Context, Row

Run = Callable[[Context], list[Row]]


@dataclass(frozen=True)
class Scenario:
    name: str
    run: Run
    help: str
    events: int  # work items of a full run
    quick_events: int  # work items with --quick


SCENARIOS: dict[str, Scenario] = {}


def scenario(name: str, *, help: str, events: int, quick_events: int) -> Callable[[Run], Run]:
    def register(run: Run) -> Run:
        if name in SCENARIOS:
            raise ValueError(f"scenario {name!r} registered twice")
        SCENARIOS[name] = Scenario(name, run, help, events, quick_events)
        return run

    return register
