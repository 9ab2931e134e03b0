"""Prometheus metrics, one registry per running relay (so tests can run several)."""

from __future__ import annotations

from typing import Literal, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from relay.types import STATES

# From a fast fsync (0.1-0.5 ms) to a disk that stalls (0.1-2.5 s): the commit time of
# a sync = "full" ingest is the disk's fsync, so these tell a slow disk from a slow relay.
_DISK_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                 0.25, 0.5, 1, 2.5)

# Why an authentication was refused: no key, no such key, a console sign-in with a key
# that is not admin, or refused unchecked (the address failed too often: relay.throttle).
AuthFailure = Literal["missing", "unknown", "expired", "not_admin", "throttled"]


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
        self.commits = Histogram(
            "relay_store_commit_seconds", "Time of the database writer's COMMIT, by kind: "
            "durable (ingest and API changes; with [storage] sync = \"full\" it includes "
            "the fsync) or other (claims, outcomes, housekeeping: never an fsync).",
            ["kind"], buckets=_DISK_BUCKETS, registry=self.registry,
        )
        self.checkpoints = Histogram(
            "relay_store_checkpoint_seconds", "Time of a WAL checkpoint (copy into the "
            "database file and two fsyncs) on the checkpointer thread, by mode: passive "
            "(never blocks commits) or restart (commits wait for it; only when the WAL is "
            "large).",
            ["mode"], buckets=_DISK_BUCKETS, registry=self.registry,
        )
        self._by_outcome: dict[str, Counter] = {}
        self._by_kind: dict[str, Histogram] = {}
        self._by_mode: dict[str, Histogram] = {}
        self.disabled = Gauge(
            "relay_endpoints_disabled", "Endpoints disabled by relay or paused.",
            registry=self.registry,
        )
        self.auth_failures = Counter(
            "relay_auth_failures", "Refused authentications (API and console sign-in) by "
            "reason: missing (no key), unknown (no such key), expired (a key past its "
            "expires_at), not_admin (a console sign-in "
            "with a key that is not admin), throttled (refused unchecked: the address "
            "failed too often, answered 429).",
            ["reason"], registry=self.registry,
        )
        for reason in get_args(AuthFailure):  # each at 0 from the start, for rate()
            self.auth_failures.labels(reason)
        self.free_space = Gauge(
            "relay_storage_free_bytes", "Free bytes on the filesystem of the SQLite "
            "database's folder (looked at every second; absent with PostgreSQL).",
            ["path"], registry=self.registry,
        )

    def attempt(self, outcome: str, seconds: float) -> None:
        """Count one recorded attempt. Its label's child is looked up once: labels() takes
        a lock and validates on every call, and this runs once per delivery."""
        child = self._by_outcome.get(outcome)
        if child is None:
            child = self._by_outcome[outcome] = self.outcomes.labels(outcome)
        child.inc()
        self.latency.observe(seconds)

    def commit(self, kind: str, seconds: float) -> None:
        """One writer commit (called on the writer thread: prometheus_client is thread-safe)."""
        child = self._by_kind.get(kind)
        if child is None:
            child = self._by_kind[kind] = self.commits.labels(kind)
        child.observe(seconds)

    def checkpoint(self, mode: str, seconds: float) -> None:
        """One WAL checkpoint (called on the checkpointer thread)."""
        child = self._by_mode.get(mode)
        if child is None:
            child = self._by_mode[mode] = self.checkpoints.labels(mode)
        child.observe(seconds)

    def auth_failure(self, reason: AuthFailure) -> None:
        self.auth_failures.labels(reason).inc()

    def render(self, counts: dict[str, int], disabled: int,
               free_space: tuple[str, int] | None = None) -> bytes:
        """The registry as text; `free_space` is (database folder, bytes free) on SQLite."""
        for state in STATES:
            self.queue.labels(state).set(counts.get(state, 0))
        self.disabled.set(disabled)
        if free_space is not None:
            self.free_space.labels(free_space[0]).set(free_space[1])
        return generate_latest(self.registry)
