"""Prometheus metrics, one registry per running relay (so tests can run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from relay.storage.base import STATES


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events = Counter(
            "relay_events_ingested", "Events accepted by ingest (not counting repeats).",
            registry=self.registry,
        )
        self.outcomes = Counter(
            "relay_delivery_attempts", "Delivery attempts by outcome: succeeded, retry, "
            "failed (retries exhausted), held (endpoint disabled or paused).",
            ["outcome"], registry=self.registry,
        )
        self.latency = Histogram(
            "relay_attempt_duration_seconds", "Time from request sent to response read.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.queue = Gauge(
            "relay_deliveries", "Deliveries in the database by state.", ["state"],
            registry=self.registry,
        )
        self._by_outcome: dict[str, Counter] = {}
        self.disabled = Gauge(
            "relay_endpoints_disabled", "Endpoints disabled by relay or paused.",
            registry=self.registry,
        )

    def attempt(self, outcome: str, seconds: float) -> None:
        """Count one recorded attempt. Its label's child is looked up once: labels() takes
        a lock and validates on every call, and this runs once per delivery."""
        child = self._by_outcome.get(outcome)
        if child is None:
            child = self._by_outcome[outcome] = self.outcomes.labels(outcome)
        child.inc()
        self.latency.observe(seconds)

    def render(self, counts: dict[str, int], disabled: int) -> bytes:
        for state in STATES:
            self.queue.labels(state).set(counts.get(state, 0))
        self.disabled.set(disabled)
        return generate_latest(self.registry)
