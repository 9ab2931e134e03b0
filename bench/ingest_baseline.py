"""The ingest baseline: `python -m bench.ingest_baseline --port N`.

The same HTTP stack as `relay serve` (Starlette on uvicorn, httptools, uvloop, one process)
and the same request handling up to storage: relay's own `read_body` (content type, size
limit) and `parse(EventBody, ...)` (pydantic), then a 202 with the answer relay gives. No
database, no endpoint matching, no auth. So the ingest scenario's ratio is the share of the
framework-only rate that relay keeps once it stores each event and its delivery.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import uvicorn
import uvloop
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from relay.api.ingest import EventBody, parse, read_body
from relay.ids import event_id
from relay.runtime import timestamp

MAX_BODY = 262144  # relay's default server.max_body_bytes


async def post_event(request: Request) -> JSONResponse:
    body = parse(EventBody, await read_body(request, MAX_BODY))
    return JSONResponse({"id": event_id(), "type": body.type, "timestamp": timestamp(time.time()),
                         "deliveries": 0}, status_code=202)


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[Route("/v1/events", post_event, methods=["POST"]),
                        Route("/healthz", healthz, methods=["GET"])])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest_baseline", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    config = uvicorn.Config(app, host="127.0.0.1", port=args.port, lifespan="off",
                            log_config=None, access_log=False, http="httptools")
    # As `relay serve` does: uvicorn's Server inside an asyncio.Runner on uvloop.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(uvicorn.Server(config).serve())


if __name__ == "__main__":
    main()
