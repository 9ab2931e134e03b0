"""The probes a load balancer and Prometheus call: liveness, readiness, metrics."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from relay.runtime import Relay
from relay.storage.base import Lifecycle, Reads


async def healthz(request: Request) -> JSONResponse:
    """The process is up and serving HTTP."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Ready to take events: started, not stopping, and the last write succeeded. Little
    free space for the database is a warning, not a 503: the node still takes writes,
    and the one node of a SQLite deployment taken out of its load balancer would refuse
    them all the sooner; a full disk fails writes, and that is a 503."""
    relay: Relay = request.app.state.relay
    store: Lifecycle = relay.store
    problems = []
    if not relay.started:
        problems.append("not started")
    if relay.stopping:
        problems.append("shutting down")
    if not store.healthy:
        problems.append("the last database write failed")
    if relay.started and not relay.stopping and not relay.scheduler.running:
        problems.append("the delivery scheduler stopped; see the log")
    if problems:
        return JSONResponse({"status": "unavailable", "problems": problems}, status_code=503)
    if store.space_low:
        return JSONResponse({"status": "ready", "warnings": [
            f"{store.free_space} bytes free for the database, under [storage] "
            f"min_free_space ({relay.config.storage.min_free_space})"]})
    return JSONResponse({"status": "ready"})


async def metrics(request: Request) -> Response:
    relay: Relay = request.app.state.relay
    reads: Reads = relay.store
    running: Lifecycle = relay.store
    counts = await reads.counts()
    disabled = sum(1 for ep in relay.endpoints.values() if not ep.accepting)
    free = running.free_space
    where = None if free is None else (str(Path(relay.config.storage.path).absolute().parent), free)
    return Response(relay.metrics.render(counts, disabled, where),
                    media_type=CONTENT_TYPE_LATEST)
