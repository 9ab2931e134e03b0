"""Operations routes: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from relay.app import Relay


async def healthz(request: Request) -> JSONResponse:
    """The process is up and serving HTTP."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Ready to take events: started, not stopping, and the last write succeeded."""
    relay: Relay = request.app.state.relay
    problems = []
    if not relay.started:
        problems.append("not started")
    if relay.stopping:
        problems.append("shutting down")
    if not relay.store.healthy:
        problems.append("the last database write failed")
    if relay.started and not relay.stopping and not relay.scheduler.running:
        problems.append("the delivery scheduler stopped; see the log")
    if problems:
        return JSONResponse({"status": "unavailable", "problems": problems}, status_code=503)
    return JSONResponse({"status": "ready"})


async def metrics(request: Request) -> Response:
    relay: Relay = request.app.state.relay
    counts = await relay.store.counts()
    disabled = sum(1 for ep in relay.endpoints.values() if not ep.accepting)
    return Response(relay.metrics.render(counts, disabled), media_type=CONTENT_TYPE_LATEST)
