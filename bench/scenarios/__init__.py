"""Importing this package registers every scenario (see bench.registry). ORDER is the issue's
numbering, the order `python -m bench` runs them in (registration order follows imports)."""

from bench.scenarios import (
    backlog,
    cluster,
    console,
    delivery,
    fanout,
    ingest,
    latency,
    noisy,
    rules,
)

__all__ = ["backlog", "cluster", "console", "delivery", "fanout", "ingest", "latency", "noisy",
           "rules"]
ORDER = ("ingest", "delivery", "latency", "backlog", "fanout", "noisy", "console", "schema",
         "filters")
