"""Sends requests over one aiohttp session: auth, idempotency keys, retries, hooks, logging.

It returns the last answer whatever its status: turning a status into an exception is the
response pipeline's job (:mod:`amili_async._response`), and every retry decision is
:mod:`amili_async._retry`'s; this module only carries them out.
"""

from __future__ import annotations

import asyncio
import inspect
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Final, TypeVar
from urllib.parse import quote, urlencode, urlsplit

import aiohttp
import attrs
from yarl import URL

from amili_async._auth import Auth
from amili_async._config import (
    DEFAULT_CONNECT_TIMEOUT,
    IDEMPOTENCY_KEY_HEADER,
    REQUEST_ID_HEADER,
    origin_of,
)
from amili_async._logging import logger, path_of, redact_headers, strip_query
from amili_async._request import Request
from amili_async._response import Response
from amili_async._retry import REFRESH, Random, Retry, RetryPolicy
from amili_async.errors import AmiliError, APIConnectionError, APITimeoutError

# Media type of the token request body (OAuth 2.0 client credentials).
_FORM_CONTENT_TYPE: Final = "application/x-www-form-urlencoded"


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


@attrs.define(slots=True)
class _Call:
    """One call's wire details, fixed across its attempts (the token header aside)."""

    method: str
    wire_url: URL
    url: str
    """Without the query: for responses, errors and hooks."""
    path: str
    """The path alone: for log lines."""
    headers: dict[str, str]
    body: bytes | None
    timeout: aiohttp.ClientTimeout


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
        session: aiohttp.ClientSession | None = None,
        on_request: RequestHook | None = None,
        on_response: ResponseHook | None = None,
        trace_configs: Sequence[aiohttp.TraceConfig] | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: Random = random.random,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._origin = origin_of(self._base_url)
        self._base_path = urlsplit(self._base_url).path
        self._auth = auth
        self._timeout = (
            timeout
            if isinstance(timeout, aiohttp.ClientTimeout)
            # sock_connect, not connect: the latter also counts time queued for a pool slot,
            # which under a burst of concurrent calls is not a sign of a dead server.
            else aiohttp.ClientTimeout(total=timeout, sock_connect=DEFAULT_CONNECT_TIMEOUT)
        )
        self._retry = retry
        self._max_connections = max_connections
        self._base_headers = {"User-Agent": user_agent, "Accept": "application/json"}
        self._session = session
        self._owns_session = session is None
        self._closed = False
        self._on_request = on_request
        self._on_response = on_response
        self._trace_configs = list(trace_configs) if trace_configs else None
        self._sleep = sleep
        self._rng = rng
        self._clock = clock

    @property
    def closed(self) -> bool:
        return self._closed

    async def aclose(self) -> None:
        """Close the session if we created it; a caller's session stays open. Idempotent."""
        if self._closed:
            return
        self._closed = True
        session, self._session = self._session, None
        if self._owns_session and session is not None:
            await session.close()

    async def send(self, request: Request) -> Response:
        """Send ``request``, retrying per policy; the last answer, whatever its status."""
        options = request.options
        url = (self._origin if request.root else self._base_url) + request.path
        display_path = request.path if request.root else self._base_path + request.path
        wire_url = URL(
            url + "?" + urlencode(request.params, quote_via=quote) if request.params else url,
            encoded=True,
        )
        headers = dict(self._base_headers)
        if options.extra_headers:
            headers.update(options.extra_headers)
        if request.body is not None:
            headers["Content-Type"] = request.content_type or "application/json"
        if request.method == "POST":
            # Generated once per call, so every retry of this POST carries the same key.
            headers[IDEMPOTENCY_KEY_HEADER] = options.idempotency_key or str(uuid.uuid4())
        timeout = (
            self._timeout
            if options.timeout is None
            else attrs.evolve(self._timeout, total=options.timeout)
        )
        return await self._execute(
            _Call(request.method, wire_url, url, display_path, headers, request.body, timeout),
            options.max_retries,
            authenticate=True,
        )

    async def _fetch_token(self, url: str, form: Mapping[str, str]) -> Response:
        """The :data:`~amili_async._auth.TokenFetcher` given to auth: same session, same retries."""
        headers = dict(self._base_headers)
        headers["Content-Type"] = _FORM_CONTENT_TYPE
        plain_url = strip_query(url)
        call = _Call(
            "POST",
            URL(url),
            plain_url,
            path_of(plain_url),
            headers,
            urlencode(form).encode(),
            self._timeout,
        )
        return await self._execute(call, None, authenticate=False)

    def _live_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise AmiliError("client is closed")
        session = self._session
        if session is None:
            # Created on first use so it binds to the running event loop.
            session = self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                timeout=self._timeout,
                raise_for_status=False,
                trace_configs=self._trace_configs,
            )
        return session

    async def _execute(
        self, call: _Call, max_retries: int | None, *, authenticate: bool
    ) -> Response:
        """The attempt loop; returns the last answer, whatever its status.

        Hooks run only for API calls (``authenticate``): a token response body is a credential.
        """
        auth = self._auth if authenticate else None
        decisions = self._retry.start(self._rng, self._clock, max_retries)
        attempt = 0
        while True:
            attempt += 1
            session = self._live_session()
            token = None
            if auth is not None:
                token = await auth.token(self._fetch_token)
                call.headers["Authorization"] = "Bearer " + token
            if authenticate and self._on_request is not None:
                info = RequestInfo(call.method, call.url, redact_headers(call.headers), attempt)
                await _run_hook(self._on_request, info)
            started = time.perf_counter()
            try:
                response = await self._attempt(session, call, attempt)
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
                await self._pause(call, retry)
                continue
            if authenticate and self._on_response is not None:
                await _run_hook(self._on_response, response)
            decision = decisions.after_response(
                response.status_code, response.headers, can_refresh=token is not None
            )
            if isinstance(decision, Retry):
                await self._pause(call, decision)
                continue
            if decision is REFRESH and auth is not None and token is not None:
                auth.invalidate(token)
                # Retry only when there is a different token to try (not for a static one).
                if await auth.token(self._fetch_token) != token:
                    logger.info("retrying %s %s with a fresh token (401)", call.method, call.path)
                    continue
            return response

    async def _attempt(self, session: aiohttp.ClientSession, call: _Call, attempt: int) -> Response:
        """One try on the wire, body read in full (a truncated body raises here, retryably)."""
        started = time.perf_counter()
        async with session.request(
            call.method,
            call.wire_url,
            headers=call.headers,
            data=call.body,
            timeout=call.timeout,
            # A redirect would resend the body and token elsewhere; the API has none.
            allow_redirects=False,
        ) as raw:
            content = await raw.read()
        response = Response(
            status_code=raw.status,
            headers=raw.headers,
            content=content,
            method=call.method,
            url=call.url,
            request_id=raw.headers.get(REQUEST_ID_HEADER),
            elapsed=time.perf_counter() - started,
            attempts=attempt,
        )
        logger.debug(
            "%s %s -> %d in %.1f ms (request id %s, attempt %d)",
            call.method,
            call.path,
            response.status_code,
            response.elapsed * 1000,
            response.request_id,
            attempt,
        )
        return response

    async def _pause(self, call: _Call, retry: Retry) -> None:
        """Log the coming retry and wait its delay."""
        logger.info(
            "retrying %s %s after %.2f s (%s)", call.method, call.path, retry.delay, retry.reason
        )
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
