"""`amili-async sandbox --log-requests`: one line per request, and the startup banner's faults.

A line holds the method, the path (never the query string: it can carry customer numbers), the
status and the injected fault, if any; never a body, a header or a token.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable, Callable
from typing import TextIO

from aiohttp import web

from ._faults import FAULT_KINDS, FAULT_NOTE, FaultConfig

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def request_log_middleware(
    stream: TextIO | None = None,
) -> Callable[..., Awaitable[web.StreamResponse]]:
    """A middleware writing `POST /collection/v1/orgs/.../invoices 202 12ms fault=503` lines."""

    @web.middleware
    async def log_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.monotonic()
        status: int | str = "-"
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as error:
            status = error.status
            raise
        except BaseException:
            status = "error"
            raise
        finally:
            fault = request.get(FAULT_NOTE)
            millis = (time.monotonic() - started) * 1000
            line = f"{request.method} {request.path} {status} {millis:.0f}ms"
            if fault:
                line += f" fault={fault}"
            print(line, file=stream or sys.stderr, flush=True)

    return log_requests


def describe_faults(faults: FaultConfig | None, rate_limit: float | None) -> str:
    """The banner's fault settings: `faults 429=0.05 latency=20ms seed=42; rate limit 50/s`."""
    parts = []
    if faults is not None:
        parts += [
            f"{key}={getattr(faults, attr):g}" for key, attr in FAULT_KINDS if getattr(faults, attr)
        ]
        for key in ("latency", "jitter"):
            if getattr(faults, key):
                parts.append(f"{key}={getattr(faults, key) * 1000:g}ms")
        parts += [f"seed={faults.seed}", f"retry_after={faults.retry_after}s"]
        if faults.include_token:
            parts.append("token=1")
    text = "faults " + (" ".join(parts) if parts else "none")
    return text + f"; rate limit {f'{rate_limit:g}/s' if rate_limit else 'none'}"
