"""Server-side rate limiting: a token bucket per API client, answering 429 with Retry-After.

It makes the SDK's client-side rate control (``AmiliClient(rate_limit=...)``) testable and
benchmarkable here. Clients are told apart by their ``Authorization`` header (one bearer token
per client), falling back to the peer address; the token endpoint is never limited.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from ._http import ADMIN_PREFIX, problem_response

__all__ = ["THROTTLE_KEY", "Throttle", "throttle_middleware"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Requests a client may send at once above the rate: a tenth of a second's worth (at least
# one), like an API gateway's burst allowance, so a well-paced client never sees a 429.
_BURST_SECONDS = 0.1
# Distinct clients remembered: far more than a test or benchmark uses; bounded so a flood of
# made-up tokens cannot grow the table without end.
_MAX_CLIENTS = 10_000


class Throttle:
    """Token buckets of ``rate`` requests per second, one per client."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not math.isfinite(rate) or rate <= 0:
            raise ValueError("rate_limit must be a positive number of requests per second")
        self.rate = rate
        self.capacity = max(1.0, rate * _BURST_SECONDS)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, stamp)
        self.allowed = 0
        self.refused = 0

    def admit(self, key: str) -> float:
        """0 when the request may proceed; else seconds until this client has a token."""
        now = self._clock()
        tokens, stamp = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - stamp) * self.rate)
        if tokens >= 1.0:
            if len(self._buckets) >= _MAX_CLIENTS and key not in self._buckets:
                self._buckets.clear()
            self._buckets[key] = (tokens - 1.0, now)
            self.allowed += 1
            return 0.0
        self._buckets[key] = (tokens, now)
        self.refused += 1
        return (1.0 - tokens) / self.rate


THROTTLE_KEY = web.AppKey("amili_throttle", list)
"""A one-element list holding the app's Throttle or None (swappable at runtime)."""


@web.middleware
async def throttle_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer 429 (Retry-After in whole seconds, rounded up) when the client is over its rate."""
    throttle: Throttle | None = request.app[THROTTLE_KEY][0]
    if throttle is None or request.path == "/token" or request.path.startswith(ADMIN_PREFIX):
        return await handler(request)
    key = request.headers.get("Authorization") or request.remote or ""
    wait = throttle.admit(key)
    if wait == 0.0:
        return await handler(request)
    return problem_response(
        request,
        429,
        f"Rate limit of {throttle.rate:g} requests per second exceeded.",
        headers={"Retry-After": str(max(1, math.ceil(wait)))},
    )
