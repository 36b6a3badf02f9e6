"""Client-side send-rate control, shared by every call of one client.

`FixedRate` is a token bucket at a rate the caller chose. `AdaptiveRate` starts unthrottled and,
once the server throttles (429, or 503 with Retry-After), sends at a rate that is cut by
``BETA`` on each congestion event and grows back along a CUBIC curve on success, as the AWS SDKs'
"adaptive" retry mode does (botocore's ``ClientRateLimiter``). Both also pause the whole
client while a server's Retry-After lasts (bounded by ``MAX_PAUSE``), not just the one call.

An attempt may be given a ``max_wait`` (what is left of its call's deadline or timeout): when
the time it would start at, at the current rate, passes it, it fails at once with
:class:`StartTooLate` instead of waiting, so a throttled client never holds a call past its
time limits.

Everything takes an injected clock and sleep, so tests run without waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Final, Protocol

from ._time import parse_retry_after

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[object]]

THROTTLE_STATUS: Final = 429
# How long one burst may run ahead of the rate: a tenth of a second of tokens (at least one)
# smooths an asyncio scheduler's jitter without letting a burst trip a server-side limit.
BURST_SECONDS: Final = 0.1
# Multiplicative decrease on a throttle. CUBIC (and AWS adaptive mode) use 0.7; an API quota is
# a fixed rate, not a link shared with unknown flows, so a gentler cut recovers sooner:
# against the sandbox at 200 req/s, goodput 0.91-0.95x the limit at 0.8 vs 0.88-0.92x at 0.7,
# with under 2% of attempts answered 429 either way.
BETA: Final = 0.8
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
# A Retry-After pauses the whole client for at most a quarter second: enough to stop a stampede
# of concurrent calls, short enough that one odd header cannot stall every caller.
MAX_PAUSE: Final = 0.25
# The caller at the head of the queue looks again at least this often, so a rate that grows
# (or a pause that ends) takes effect within 50 ms, not after a wait computed at the old rate.
_MAX_SLICE: Final = 0.05


class StartTooLate(Exception):
    """The limiter would let this attempt start only after its ``max_wait``: raised at once
    instead of waiting (the transport turns it into ``RateLimitWaitTimeoutError``)."""

    def __init__(self, wait: float, max_wait: float) -> None:
        super().__init__(f"it would wait about {wait:.3g} s, at most {max_wait:.3g} s are left")
        self.wait = wait
        self.max_wait = max_wait


class RateLimiter(Protocol):
    """Consulted before every attempt and told about every answer.

    ``before_attempt`` returns the (monotonic) time the attempt may start at; that time comes
    back as ``sent_at`` with its answer. With ``max_wait`` (seconds) it raises
    :class:`StartTooLate` rather than let the attempt start later than that.
    """

    async def before_attempt(self, max_wait: float | None = None) -> float: ...
    def after_response(self, status: int, headers: Mapping[str, str], sent_at: float) -> None: ...


class _Bucket:
    """A token bucket whose rate may change while callers wait for it."""

    def __init__(self, rate: float, clock: Clock) -> None:
        self._clock = clock
        self._stamp = clock()
        self.rate = rate
        self.tokens = self.capacity

    @property
    def capacity(self) -> float:
        return max(1.0, self.rate * BURST_SECONDS)

    def take(self) -> float:
        """Take a token and answer 0, or answer the seconds until one is there (none taken)."""
        wait = self.peek()
        if wait == 0.0:
            self.tokens = max(0.0, self.tokens - 1.0)
        return wait

    def peek(self) -> float:
        """Seconds until a token is there (0: one is), taking none."""
        now = self._clock()
        self.tokens = min(self.capacity, self.tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        # A hair below a whole token counts as one: a wait shorter than the clock's resolution
        # would otherwise never make the token appear.
        if self.tokens >= 1.0 - 1e-9:
            return 0.0
        return (1.0 - self.tokens) / self.rate


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


class _Waiter:
    """A caller in the gate's queue: its time limit, and the future the head before it sets."""

    __slots__ = ("deadline", "max_wait", "woken")

    def __init__(self, max_wait: float | None, now: float) -> None:
        self.max_wait = max_wait
        self.deadline = None if max_wait is None else now + max_wait
        # Set by the previous head when it leaves (None: go on as head), or to the
        # StartTooLate this caller must raise (a result, not an exception, so a cancelled
        # waiter leaves no "exception never retrieved" behind).
        self.woken: asyncio.Future[StartTooLate | None] = asyncio.get_running_loop().create_future()


class _Gate:
    """Callers queue (FIFO) for the bucket; only the head waits on the clock, the rest on it.

    The head also sheds the callers that cannot start in time: the one at position ``i``
    starts about ``i / rate`` after the head, and leaves at once with :class:`StartTooLate`
    when that passes its deadline (the estimate holds at a constant rate; a rate that grows
    back only makes it cautious).
    """

    def __init__(self, pause: _Pause, sleep: Sleep, clock: Clock) -> None:
        self._pause = pause
        self._sleep = sleep
        self._clock = clock
        self._queue: deque[_Waiter] = deque()

    async def wait(self, bucket: Callable[[], _Bucket | None], max_wait: float | None) -> None:
        if not self._queue and self._ready(bucket()) == 0.0:
            return
        me = _Waiter(max_wait, self._clock())
        eta = self._eta(bucket(), len(self._queue))
        if me.deadline is not None and self._clock() + eta > me.deadline:
            raise StartTooLate(eta, me.max_wait or 0.0)
        self._queue.append(me)
        try:
            if self._queue[0] is not me:
                shed = await me.woken
                if shed is not None:
                    raise shed
            while (wait := self._ready(bucket())) > 0.0:
                self._shed(bucket(), wait)
                await self._sleep(min(wait, _MAX_SLICE))
        finally:
            self._leave(me)

    def _eta(self, bucket: _Bucket | None, position: int) -> float:
        """Seconds until the caller at ``position`` (0: the head) may start, at the current rate."""
        if bucket is None:
            return self._pause.remaining()
        return max(self._pause.remaining(), bucket.peek() + position / bucket.rate)

    def _shed(self, bucket: _Bucket | None, wait: float) -> None:
        """Fail every queued caller that cannot start before its deadline; the head (the
        caller running this) raises, the others are woken with their StartTooLate."""
        now = self._clock()
        interval = 0.0 if bucket is None else 1.0 / bucket.rate
        head = self._queue[0]
        kept: deque[_Waiter] = deque()
        late: StartTooLate | None = None
        for waiter in self._queue:
            eta = wait + len(kept) * interval
            if waiter.deadline is None or now + eta <= waiter.deadline:
                kept.append(waiter)
            elif waiter is head:
                late = StartTooLate(eta, waiter.max_wait or 0.0)
                kept.append(waiter)  # it leaves through wait()'s finally
            elif not waiter.woken.done():
                waiter.woken.set_result(StartTooLate(eta, waiter.max_wait or 0.0))
        self._queue = kept
        if late is not None:
            raise late

    def _leave(self, me: _Waiter) -> None:
        """Leave the queue; a head that leaves makes the next caller the head."""
        was_head = bool(self._queue) and self._queue[0] is me
        with contextlib.suppress(ValueError):
            self._queue.remove(me)
        if was_head and self._queue and not self._queue[0].woken.done():
            self._queue[0].woken.set_result(None)

    def _ready(self, bucket: _Bucket | None) -> float:
        """0 when the caller may go now (a token taken), else seconds to wait first."""
        paused = self._pause.remaining()
        if paused > 0.0:
            return paused
        return 0.0 if bucket is None else bucket.take()


class FixedRate:
    """At most ``rate`` requests per second from this client (a token bucket)."""

    def __init__(self, rate: float, *, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep):
        if not math.isfinite(rate) or rate <= 0:
            raise ValueError("rate_limit must be a positive number of requests per second")
        self._clock = clock
        self._bucket = _Bucket(rate, clock)
        self._pause = _Pause(clock)
        self._gate = _Gate(self._pause, sleep, clock)

    @property
    def rate(self) -> float:
        return self._bucket.rate

    async def before_attempt(self, max_wait: float | None = None) -> float:
        await self._gate.wait(lambda: self._bucket, max_wait)
        return self._clock()

    def after_response(self, status: int, headers: Mapping[str, str], sent_at: float) -> None:
        if _throttled(status, headers):
            self._pause.extend(headers)


class AdaptiveRate:
    """Unthrottled until the server throttles; then CUBIC: cut on throttles, regrow on success."""

    def __init__(self, *, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep) -> None:
        self._clock = clock
        self._pause = _Pause(clock)
        self._gate = _Gate(self._pause, sleep, clock)
        self._bucket: _Bucket | None = None  # None: not throttled yet, no limit
        self._measured = 0.0
        self._bucket_start = math.floor(clock() / _MEASURE_BUCKET) * _MEASURE_BUCKET
        self._count = 0
        self._started: float | None = None  # the first send: the rate is measured from there
        self._max_rate = 0.0
        self._last_throttle = -math.inf
        self._k = 0.0

    @property
    def rate(self) -> float | None:
        """The current send limit in requests per second, None while unthrottled."""
        return None if self._bucket is None else self._bucket.rate

    async def before_attempt(self, max_wait: float | None = None) -> float:
        await self._gate.wait(lambda: self._bucket, max_wait)
        now = self._clock()
        if self._started is None:
            self._started = now
        return now

    def after_response(self, status: int, headers: Mapping[str, str], sent_at: float) -> None:
        now = self._clock()
        measured = self._measure(now)
        if _throttled(status, headers):
            self._pause.extend(headers)
            if sent_at < self._last_throttle:
                # Sent before the last cut, at the old rate: that cut already answered it
                # (one cut per congestion event, as TCP's CUBIC does, not one per 429).
                return
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
        """The smoothed rate of answers per second (one answer per sent request).

        Before the first half-second bucket is complete, the rate so far is the estimate.
        """
        self._count += 1
        bucket = math.floor(now / _MEASURE_BUCKET) * _MEASURE_BUCKET
        if bucket > self._bucket_start:
            current = self._count / (bucket - self._bucket_start)
            self._measured = current * _SMOOTHING + self._measured * (1 - _SMOOTHING)
            self._count = 0
            self._bucket_start = bucket
        if self._measured == 0.0:
            started = now if self._started is None else self._started
            return self._count / max(now - started, _MEASURE_BUCKET / 100)
        return self._measured


def _throttled(status: int, headers: Mapping[str, str]) -> bool:
    """A 429, or a 503 that says when to come back: the server asks us to slow down."""
    return status == THROTTLE_STATUS or (status == 503 and "Retry-After" in headers)


def limiter_for(
    rate_limit: float | str | RateLimiter | None,
    *,
    clock: Clock = time.monotonic,
    sleep: Sleep = asyncio.sleep,
) -> RateLimiter | None:
    """The limiter for ``AmiliClient(rate_limit=...)``: None, a number, "adaptive", or a limiter
    built by the caller (one `FixedRate` shared by several clients of one API client, or one
    on an injected clock), used as it is."""
    if rate_limit is None:
        return None
    if rate_limit == "adaptive":
        return AdaptiveRate(clock=clock, sleep=sleep)
    if isinstance(rate_limit, str | bool):
        raise ValueError('rate_limit must be None, a number of requests per second or "adaptive"')
    if isinstance(rate_limit, int | float):
        return FixedRate(float(rate_limit), clock=clock, sleep=sleep)
    if callable(getattr(rate_limit, "before_attempt", None)) and callable(
        getattr(rate_limit, "after_response", None)
    ):
        return rate_limit
    raise TypeError('rate_limit must be None, a number, "adaptive" or a rate limiter')
