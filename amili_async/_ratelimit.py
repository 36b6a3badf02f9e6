"""Client-side send-rate control, shared by every call of one client.

`FixedRate` is a token bucket at a rate the caller chose. `AdaptiveRate` starts unthrottled and,
once the server throttles (429, or 503 with Retry-After), sends at a rate that is cut by
``BETA`` on each throttle and grows back along a CUBIC curve on success, as the AWS SDKs'
"adaptive" retry mode does (botocore's ``ClientRateLimiter``). Both also pause the whole
client while a server's Retry-After lasts (bounded by ``MAX_PAUSE``), not just the one call.

Everything takes an injected clock and sleep, so tests run without waiting.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Final, Protocol

from ._retry import parse_retry_after

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[object]]

THROTTLE_STATUS: Final = 429
# How long one burst may run ahead of the rate: a tenth of a second of tokens (at least one)
# smooths an asyncio scheduler's jitter without letting a burst trip a server-side limit.
BURST_SECONDS: Final = 0.1
# Multiplicative decrease on a throttle: CUBIC's (and AWS adaptive mode's) 0.7.
BETA: Final = 0.7
# CUBIC's scale constant: how fast the rate grows back towards (and past) the last maximum.
SCALE: Final = 0.4
# Measured send rate: smoothed over half-second buckets with weight 0.8 on the newest, the
# values botocore's RateClocker uses; the limit never grows past twice what was really sent.
_MEASURE_BUCKET: Final = 0.5
_SMOOTHING: Final = 0.8
_MAX_GROWTH: Final = 2.0
# The lowest adaptive rate: even a server that throttles everything gets half a request a
# second, enough to notice that it recovered.
MIN_RATE: Final = 0.5
# A Retry-After pauses the whole client for at most this long: long enough to stop a stampede
# of concurrent calls, short enough that one odd header cannot stall every caller.
MAX_PAUSE: Final = 1.0


class RateLimiter(Protocol):
    """Consulted before every attempt and told about every answer."""

    async def before_attempt(self) -> None: ...
    def after_response(self, status: int, headers: Mapping[str, str]) -> None: ...


class _Bucket:
    """A token bucket; reserving may go into debt, the debt is the wait."""

    def __init__(self, rate: float, clock: Clock) -> None:
        self._clock = clock
        self._stamp = clock()
        self.rate = rate
        self.tokens = self.capacity

    @property
    def capacity(self) -> float:
        return max(1.0, self.rate * BURST_SECONDS)

    def reserve(self) -> float:
        """Take one token; seconds to wait before using it (0 when one was there)."""
        now = self._clock()
        self.tokens = min(self.capacity, self.tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        self.tokens -= 1.0
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


class _Pause:
    """The whole client waits out a server's Retry-After (bounded)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.until = 0.0

    def extend(self, headers: Mapping[str, str]) -> None:
        seconds = parse_retry_after(headers.get("Retry-After"), time.time())
        if seconds:
            self.until = max(self.until, self._clock() + min(seconds, MAX_PAUSE))

    def remaining(self) -> float:
        return max(0.0, self.until - self._clock())


class FixedRate:
    """At most ``rate`` requests per second from this client (a token bucket)."""

    def __init__(self, rate: float, *, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep):
        if not math.isfinite(rate) or rate <= 0:
            raise ValueError("rate_limit must be a positive number of requests per second")
        self._bucket = _Bucket(rate, clock)
        self._pause = _Pause(clock)
        self._sleep = sleep

    @property
    def rate(self) -> float:
        return self._bucket.rate

    async def before_attempt(self) -> None:
        wait = self._pause.remaining() + self._bucket.reserve()
        if wait > 0:
            await self._sleep(wait)

    def after_response(self, status: int, headers: Mapping[str, str]) -> None:
        if _throttled(status, headers):
            self._pause.extend(headers)


class AdaptiveRate:
    """Unthrottled until the server throttles; then CUBIC: cut on throttles, regrow on success."""

    def __init__(self, *, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep) -> None:
        self._clock = clock
        self._sleep = sleep
        self._pause = _Pause(clock)
        self._bucket: _Bucket | None = None  # None: not throttled yet, no limit
        self._measured = 0.0
        self._bucket_start = math.floor(clock() / _MEASURE_BUCKET) * _MEASURE_BUCKET
        self._count = 0
        self._max_rate = 0.0
        self._last_throttle = clock()
        self._k = 0.0

    @property
    def rate(self) -> float | None:
        """The current send limit in requests per second, None while unthrottled."""
        return None if self._bucket is None else self._bucket.rate

    async def before_attempt(self) -> None:
        wait = self._pause.remaining()
        if self._bucket is not None:
            wait += self._bucket.reserve()
        if wait > 0:
            await self._sleep(wait)

    def after_response(self, status: int, headers: Mapping[str, str]) -> None:
        now = self._clock()
        measured = self._measure(now)
        if _throttled(status, headers):
            self._pause.extend(headers)
            current = measured if self._bucket is None else min(measured, self._bucket.rate)
            self._max_rate = max(current, MIN_RATE)
            self._k = (self._max_rate * (1 - BETA) / SCALE) ** (1 / 3)
            self._last_throttle = now
            rate = self._max_rate * BETA
        elif self._bucket is None:
            return
        else:
            rate = SCALE * (now - self._last_throttle - self._k) ** 3 + self._max_rate
        rate = max(MIN_RATE, min(rate, _MAX_GROWTH * max(measured, MIN_RATE)))
        if self._bucket is None:
            self._bucket = _Bucket(rate, self._clock)
        else:
            self._bucket.rate = rate

    def _measure(self, now: float) -> float:
        """The smoothed rate of answers per second (one answer per sent request)."""
        self._count += 1
        bucket = math.floor(now / _MEASURE_BUCKET) * _MEASURE_BUCKET
        if bucket > self._bucket_start:
            current = self._count / (bucket - self._bucket_start)
            self._measured = current * _SMOOTHING + self._measured * (1 - _SMOOTHING)
            self._count = 0
            self._bucket_start = bucket
        return self._measured


def _throttled(status: int, headers: Mapping[str, str]) -> bool:
    """A 429, or a 503 that says when to come back: the server asks us to slow down."""
    return status == THROTTLE_STATUS or (status == 503 and "Retry-After" in headers)


def limiter_for(
    rate_limit: float | str | None, *, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep
) -> RateLimiter | None:
    """The limiter for ``AmiliClient(rate_limit=...)``: None, a number, or "adaptive"."""
    if rate_limit is None:
        return None
    if rate_limit == "adaptive":
        return AdaptiveRate(clock=clock, sleep=sleep)
    if isinstance(rate_limit, str | bool):
        raise ValueError('rate_limit must be None, a number of requests per second or "adaptive"')
    return FixedRate(float(rate_limit), clock=clock, sleep=sleep)
