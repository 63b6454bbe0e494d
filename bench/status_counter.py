"""A bare webhook receiver for the lifecycle baseline: counts `read` statuses, checks nothing.

uvicorn bench.status_counter:app
"""

from __future__ import annotations

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

_reads: set[str] = set()


async def receive(request: Request) -> Response:
    body = orjson.loads(await request.body())
    for entry in body.get("entry", []):
        for change in entry.get("changes", []):
            for status in change.get("value", {}).get("statuses", []):
                if status.get("status") == "read":
                    _reads.add(status["id"])
    return Response(b'{"received":true}', media_type="application/json")


async def count(_: Request) -> Response:
    return JSONResponse({"read": len(_reads)})


async def health(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[Route("/hook", receive, methods=["POST"]), Route("/count", count), Route("/health", health)])
