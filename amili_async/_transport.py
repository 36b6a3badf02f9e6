"""Sends requests over one aiohttp session: auth, idempotency keys, retries, hooks, logging.

It returns the last answer whatever its status: turning a status into an exception is the
response pipeline's job (:mod:`amili_async._response`), every retry decision is
:mod:`amili_async._retry`'s and the token of each attempt, with the resend after a 401, is
:mod:`amili_async._auth`'s; this module only carries them out.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, Final, TypeVar
from urllib.parse import quote, urlencode
from urllib.request import getproxies

import aiohttp
import attrs
import msgspec
from yarl import URL

from amili_async import _telemetry
from amili_async._auth import Auth, BearerAuth
from amili_async._config import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_RESPONSE_SIZE,
    IDEMPOTENCY_KEY_HEADER,
    REQUEST_ID_HEADER,
    origin_of,
)
from amili_async._logging import (
    describe_error,
    describe_status,
    logger,
    path_of,
    redact_headers,
    retry_line,
    strip_query,
)
from amili_async._ratelimit import RateLimiter, StartTooLate
from amili_async._request import Request, check_header_value
from amili_async._response import Response
from amili_async._retry import Random, Retry, RetryBudget, RetryPolicy, RetryState
from amili_async.errors import (
    AmiliError,
    APIConnectionError,
    APITimeoutError,
    ClientClosedError,
    RateLimitWaitTimeoutError,
    ResponseTooLargeError,
)

# Media type of the token request body (OAuth 2.0 client credentials).
_FORM_CONTENT_TYPE: Final = "application/x-www-form-urlencoded"
# Bytes read at a time from a body of unknown length: large enough that a 1 MB listing page is
# a few dozen reads, small enough that the size limit is enforced within 64 KiB of it.
_READ_CHUNK: Final = 64 * 1024


@attrs.frozen
class RequestInfo:
    """What an ``on_request`` hook sees of an attempt: no body, credentials redacted."""

    method: str
    url: str
    """The request URL without its query string."""
    headers: Mapping[str, str]
    attempt: int
    """1 for the first try, 2 after one retry, ..."""


RequestHook = Callable[[RequestInfo], object]
"""Called before each attempt; may return an awaitable, which is awaited."""
ResponseHook = Callable[[Response], object]
"""Called after each attempt that got an answer; may return an awaitable, which is awaited."""
Sleep = Callable[[float], Awaitable[object]]
_T = TypeVar("_T")


class _Call(msgspec.Struct):
    """One call's wire details, fixed across its attempts (the token header aside); a
    msgspec Struct, as `Response` is: one per call, built in C."""

    method: str
    wire_url: URL
    url: str
    """Without the query: for responses, errors and hooks."""
    headers: dict[str, str]
    body: bytes | None
    timeout: aiohttp.ClientTimeout
    retry_posts: bool = True
    deadline: float | None = None
    """Seconds for the whole call (attempts, waits for a connection, retry waits), or None."""
    retry_for: float | None = None
    """Seconds from the call's start during which retries go on past max_retries, or None."""

    @property
    def path(self) -> str:
        """The path alone, for log lines and messages (worked out only when one is made)."""
        return path_of(self.url)


class _Slots(asyncio.Semaphore):
    """The attempts-on-the-wire gate: an asyncio.Semaphore whose free slot is taken without a
    coroutine (`take`), so a call that need not wait pays no `acquire` (which also scans its
    waiters on every call)."""

    def take(self) -> bool:
        """Take a slot now if one is free and nobody waits (exactly `acquire`'s own fast
        path); False: await `acquire` (FIFO, cancellation-safe)."""
        if self._value > 0 and not self._waiters:
            self._value -= 1
            return True
        return False


class Transport:
    """Owns (or borrows) the aiohttp session and turns a :class:`Request` into a :class:`Response`.

    Retries what :mod:`amili_async._retry` says to retry; a request that got no answer at all
    raises :class:`~amili_async.errors.APIConnectionError` (or its timeout subclass).
    """

    def __init__(
        self,
        *,
        base_url: str,
        auth: Auth | None,
        timeout: aiohttp.ClientTimeout | float,
        retry: RetryPolicy,
        max_connections: int,
        user_agent: str,
        max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE,
        retry_posts: bool = True,
        deadline: float | None = None,
        retry_for: float | None = None,
        rate_limiter: RateLimiter | None = None,
        retry_budget: RetryBudget | None = None,
        session: aiohttp.ClientSession | None = None,
        on_request: RequestHook | None = None,
        on_response: ResponseHook | None = None,
        trace_configs: Sequence[aiohttp.TraceConfig] | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: Random = random.random,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_response_size < 1:
            raise ValueError("max_response_size must be >= 1")
        self._base_url = base_url.rstrip("/")
        self._origin = origin_of(self._base_url)
        self._bearer = None if auth is None else BearerAuth(auth, self._fetch_token)
        self._timeout = (
            timeout
            if isinstance(timeout, aiohttp.ClientTimeout)
            # sock_connect, not connect: the latter also counts time queued for a pool slot,
            # which under a burst of concurrent calls is not a sign of a dead server.
            else aiohttp.ClientTimeout(total=timeout, sock_connect=DEFAULT_CONNECT_TIMEOUT)
        )
        self._retry = retry
        self._max_connections = max_connections
        self._max_response_size = max_response_size
        self._retry_posts = retry_posts
        self._deadline = deadline
        self._retry_for = retry_for
        self._limiter = rate_limiter
        _telemetry.watch_rate(rate_limiter)
        self._budget = retry_budget
        self._base_headers = {"User-Agent": user_agent, "Accept": "application/json"}
        self._session = session
        self._owns_session = session is None
        # Attempts on the wire at once: calls queue here, before their attempt's timeout
        # starts, so time spent waiting for a free connection never times a healthy call out.
        self._gate: _Slots | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._on_request = on_request
        self._on_response = on_response
        self._trace_configs = list(trace_configs) if trace_configs else None
        self._sleep = sleep
        self._rng = rng
        self._clock = clock
        self._monotonic = monotonic

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def retry_posts(self) -> bool:
        """Whether POSTs are retried unless a call says otherwise."""
        return self._retry_posts

    async def aclose(self) -> None:
        """Close the session if we created it; a caller's session stays open. Idempotent."""
        if self._closed:
            return
        self._closed = True
        session, self._session = self._session, None
        if self._owns_session and session is not None:
            await session.close()

    def send(self, request: Request) -> Coroutine[Any, Any, Response]:
        """Send ``request``, retrying per policy; the last answer, whatever its status.

        Not a coroutine itself: it prepares the call and hands back the attempt loop's, one
        frame less for every resumption of a call that waits on the network.
        """
        options = request.options
        url = (self._origin if request.root else self._base_url) + request.path
        wire_url = URL(
            url + "?" + urlencode(request.params, quote_via=quote) if request.params else url,
            encoded=True,
        )
        headers = dict(self._base_headers)
        if options.extra_headers:
            for name, value in options.extra_headers.items():
                headers[name] = check_header_value(name, value)
        if request.body is not None:
            headers["Content-Type"] = request.content_type or "application/json"
        if request.method == "POST":
            # Generated once per call, so every retry of this POST carries the same key.
            key = options.idempotency_key or str(uuid.uuid4())
            headers[IDEMPOTENCY_KEY_HEADER] = check_header_value(IDEMPOTENCY_KEY_HEADER, key)
        timeout = (
            self._timeout
            if options.timeout is None
            else attrs.evolve(self._timeout, total=options.timeout)
        )
        call = _Call(
            request.method,
            wire_url,
            url,
            headers,
            request.body,
            timeout,
            self._retry_posts if options.retry_posts is None else options.retry_posts,
            self._deadline if options.deadline is None else options.deadline,
            self._retry_for if options.retry_for is None else options.retry_for,
        )
        return self._execute(call, options.max_retries, authenticate=True)

    async def _fetch_token(self, url: str, form: Mapping[str, str]) -> Response:
        """The :data:`~amili_async._auth.TokenFetcher` given to auth: same session, same retries."""
        headers = dict(self._base_headers)
        headers["Content-Type"] = _FORM_CONTENT_TYPE
        plain_url = strip_query(url)
        call = _Call(
            "POST",
            URL(url),
            plain_url,
            headers,
            urlencode(form).encode(),
            self._timeout,
        )
        return await self._execute(call, None, authenticate=False)

    def _live_session(self) -> aiohttp.ClientSession:
        """The session, created on first use so it binds to the running event loop."""
        if self._closed:
            raise ClientClosedError("client is closed")
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif loop is not self._loop:
            raise AmiliError(
                "this client belongs to another event loop (its connections live there): "
                "create one AmiliClient per event loop, inside it"
            )
        session = self._session
        if session is None:
            session = self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                timeout=self._timeout,
                raise_for_status=False,
                trace_configs=self._trace_configs,
                # An API client has no use for cookies: none is stored, none is sent back
                # (a cookie set by the token endpoint or an error page would ride along).
                cookie_jar=aiohttp.DummyCookieJar(),
                # HTTP(S)_PROXY / NO_PROXY as curl honours them; off (no per-request lookup) unset
                trust_env=bool(getproxies()),
            )
        return session

    def _slots(self) -> _Slots:
        if self._gate is None:
            self._gate = _Slots(self._max_connections)
        return self._gate

    async def _execute(
        self, call: _Call, max_retries: int | None, *, authenticate: bool
    ) -> Response:
        """The attempt loop; returns the last answer, whatever its status.

        Hooks run only for API calls (``authenticate``): a token response body is a credential.
        """
        flow = self._bearer.start() if authenticate and self._bearer is not None else None
        # The limiter and the budget govern API calls; the token endpoint is another server.
        limiter = self._limiter if authenticate else None
        deadline = None if call.deadline is None else self._monotonic() + call.deadline
        decisions = self._retry.start(  # positional: keywords cost a dict on every call
            self._rng,
            self._clock,
            max_retries,
            call.retry_posts or call.method != "POST",  # may_retry
            deadline,
            call.retry_for,
            self._monotonic,
            self._budget if authenticate else None,  # budget
        )
        attempt = 0
        while True:
            attempt += 1
            if self._closed or self._loop is not asyncio.get_running_loop():
                self._live_session()  # refuses a closed client, or one from another loop
            if flow is not None:
                call.headers["Authorization"] = flow.ready() or await flow.authorization()
            if authenticate and self._on_request is not None:
                info = RequestInfo(call.method, call.url, redact_headers(call.headers), attempt)
                await _run_hook(self._on_request, info)
            started = time.perf_counter()
            try:
                response, sent_at = await _telemetry.attempt(
                    self._attempt(call, attempt, decisions, limiter), call.method, call.url, attempt
                )
            except (aiohttp.ClientError, TimeoutError) as exc:
                logger.debug(
                    "%s %s failed after %.1f ms: %s (attempt %d)",
                    call.method,
                    call.path,
                    (time.perf_counter() - started) * 1000,
                    type(exc).__name__,
                    attempt,
                )
                retry = decisions.after_error(exc)
                if retry is None:
                    raise _connection_error(call, exc, attempt) from exc
                await self._pause(call, retry, decisions, attempt, describe_error(exc))
                continue
            if limiter is not None:
                limiter.after_response(response.status_code, response.headers, sent_at)
            if authenticate and self._on_response is not None:
                await _run_hook(self._on_response, response)
            if (
                flow is not None
                and flow.rejected(response.status_code)
                and await flow.resend(response.status_code)
            ):
                logger.info("retrying %s %s with a fresh token (401)", call.method, call.path)
                _telemetry.event("token_refresh")
                continue
            decision = decisions.after_response(response.status_code, response.headers)
            if decision is None:
                return response
            cause = describe_status(response.status_code, decision.retry_after)
            await self._pause(call, decision, decisions, attempt, cause)

    async def _attempt(
        self, call: _Call, attempt: int, decisions: RetryState, limiter: RateLimiter | None
    ) -> tuple[Response, float]:
        """One try on the wire, body read in full (a truncated body raises here, retryably).

        It first waits for one of ``max_connections`` slots (bounded by the call's deadline,
        not by the attempt's timeout), then for the rate limiter: holding a slot while rate
        limited keeps the attempts that passed the limiter few, so a throttled client learns
        before it has sent a whole queue. The attempt's timeout starts after the slot, so the
        limiter's wait counts against it (and against the deadline). Returns the answer and
        the limiter's send time.
        """
        slots = self._slots()
        if slots.take():
            pass
        elif decisions.deadline is None:
            await slots.acquire()
        else:
            try:
                async with asyncio.timeout(decisions.remaining()):
                    await slots.acquire()
            except TimeoutError:
                raise TimeoutError("no connection became free before the call's deadline") from None
        try:
            timeout = call.timeout
            sent_at = 0.0
            if limiter is not None:
                sent_at, timeout = await self._wait_for_limiter(call, attempt, decisions, limiter)
            # The loop check ran before this attempt (in _execute); only closing can have
            # happened while it waited for a slot or the limiter.
            session = self._session
            if self._closed or session is None:
                raise ClientClosedError("client is closed")
            remaining = decisions.remaining()
            if remaining is not None:
                if remaining <= 0:
                    raise TimeoutError("the call's deadline passed")
                if timeout.total is None or remaining < timeout.total:
                    timeout = attrs.evolve(timeout, total=remaining)
            started = time.perf_counter()
            async with session.request(
                call.method,
                call.wire_url,
                headers=call.headers,
                data=call.body,
                timeout=timeout,
                # A redirect would resend the body and token elsewhere; the API has none.
                allow_redirects=False,
            ) as raw:
                content = await self._read(raw, call)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._closed and task is not None and not task.cancelling():
                # aiohttp cancelled this attempt because aclose() closed the pool under it.
                raise ClientClosedError(
                    f"{call.method} {call.path}: the client was closed while the request was "
                    "in flight (its outcome is unknown)"
                ) from None
            raise
        finally:
            slots.release()
        response = Response(
            raw.status,
            raw.headers,
            content,
            call.method,
            call.url,
            raw.headers.get(REQUEST_ID_HEADER),  # request_id
            time.perf_counter() - started,  # elapsed
            attempt,
        )
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s -> %d in %.1f ms (request id %s, attempt %d)",
                call.method,
                call.path,
                response.status_code,
                response.elapsed * 1000,
                response.request_id,
                attempt,
            )
        return response, sent_at

    async def _wait_for_limiter(
        self, call: _Call, attempt: int, decisions: RetryState, limiter: RateLimiter
    ) -> tuple[float, aiohttp.ClientTimeout]:
        """Wait for the rate limiter; its send time, and the attempt's timeout less the wait.

        The wait counts against the call's deadline and the attempt's timeout: an attempt
        that cannot start within what is left of either fails at once, unsent, with
        RateLimitWaitTimeoutError (never retried: another try would queue again).
        """
        timeout = call.timeout
        limits = [t for t in (decisions.remaining(), timeout.total) if t is not None]
        max_wait = min(limits) if limits else None
        started = self._monotonic()
        try:
            sent_at = await limiter.before_attempt(max_wait)
            _telemetry.waited(self._monotonic() - started)
            left = None if timeout.total is None else timeout.total - (self._monotonic() - started)
            if left is not None and left <= 0:  # aiohttp reads a total <= 0 as "no timeout"
                raise StartTooLate(self._monotonic() - started, timeout.total or 0.0)
        except StartTooLate as late:
            raise RateLimitWaitTimeoutError(
                f"{call.method} {call.path}: the client's rate limit would not let attempt "
                f"{attempt} start within the {late.max_wait:.3g} s left of its deadline or "
                f"timeout ({late}); it was not sent",
                method=call.method,
                url=call.url,
            ) from None
        return sent_at, timeout if left is None else attrs.evolve(timeout, total=left)

    def _read(self, raw: aiohttp.ClientResponse, call: _Call) -> Awaitable[bytes]:
        """The whole body as decoded bytes, refused (ResponseTooLargeError) once it passes
        max_response_size, whatever the framing: Content-Length, chunked, gzip or deflate.

        An unencoded body's Content-Length is its size: one larger than the limit is refused
        before a byte is read, one within it read at once (aiohttp's own `read`, handed back
        as it is: no frame of ours per call). An encoded body's length says nothing of what
        it inflates to, so it is read (decoded) a chunk at a time and dropped at the limit: a
        500 KB gzip body never becomes 500 MB in memory.
        """
        limit = self._max_response_size
        length = raw.content_length
        if (
            length is not None
            and raw.headers.get("Content-Encoding", "identity").lower() == "identity"
        ):
            if length > limit:
                raise self._too_large(call, limit)
            return raw.read()
        return self._read_chunks(raw, call, limit)

    async def _read_chunks(self, raw: aiohttp.ClientResponse, call: _Call, limit: int) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in raw.content.iter_chunked(_READ_CHUNK):
            size += len(chunk)
            if size > limit:
                raise self._too_large(call, limit)
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self, call: _Call, limit: int) -> ResponseTooLargeError:
        return ResponseTooLargeError(
            f"{call.method} {call.path}: the response body is larger than max_response_size "
            f"({limit} bytes); nothing of it was kept",
            method=call.method,
            url=call.url,
            limit=limit,
        )

    async def _pause(
        self, call: _Call, retry: Retry, decisions: RetryState, attempt: int, cause: str
    ) -> None:
        """Log the coming retry (one line each, so a long retry never sits silent), record it
        (`_telemetry.retrying`) and wait its delay."""
        if logger.isEnabledFor(logging.INFO):
            ends = decisions.gives_up_at()
            wall = None if ends is None else self._clock() + (ends - self._monotonic())
            attempts = decisions.max_retries + 1
            line = retry_line(
                call.method, call.path, retry.delay, cause, attempt + 1, attempts, wall
            )
            logger.info("%s", line)
        _telemetry.retrying(retry.reason, retry.delay, retry.retry_after, attempt)
        await self._sleep(retry.delay)


def _connection_error(call: _Call, exc: BaseException, attempts: int) -> APIConnectionError:
    """The SDK error for a request that got no answer; the cause's text stays in ``__cause__``."""
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    if isinstance(exc, TimeoutError):
        return APITimeoutError(
            f"{call.method} {call.path} timed out{tries}", method=call.method, url=call.url
        )
    return APIConnectionError(
        f"{call.method} {call.path} failed{tries}: {type(exc).__name__}",
        method=call.method,
        url=call.url,
    )


async def _run_hook(hook: Callable[[_T], object], arg: _T) -> None:
    """Call a sync or async hook; its exceptions propagate to the caller of send()."""
    result = hook(arg)
    if inspect.isawaitable(result):
        await result
