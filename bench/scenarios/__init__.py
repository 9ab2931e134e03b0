"""Importing this package registers every scenario (see bench.registry), in the issue's order:
1 ingest, 2 delivery, 3 latency, 4 backlog, 5 fanout, 6 noisy."""

from bench.scenarios import backlog, delivery, fanout, ingest, latency, noisy

__all__ = ["ingest", "delivery", "latency", "backlog", "fanout", "noisy"]
