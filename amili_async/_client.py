"""AmiliClient: configuration, the shared transport, and one attribute per resource."""

from __future__ import annotations

import contextvars
import inspect
import os
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from types import TracebackType
from typing import Any, Generic, Literal, TypeVar

import aiohttp
import attrs
import msgspec

from ._auth import Auth, CallableTokenAuth, ClientCredentialsAuth, StaticTokenAuth
from ._config import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_RESPONSE_SIZE,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    resolve_environment,
)
from ._pagination import DEFAULT_PREFETCH
from ._ratelimit import RateLimiter, limiter_for
from ._request import DEFAULT_OPTIONS, Request, RequestOptions
from ._response import Response
from ._retry import RetryBudget, RetryPolicy
from ._transport import RequestHook, ResponseHook, Transport
from ._version import __version__
from .errors import AmiliError
from .resources import Batches, Collections, Corrections, Invoices, Legacy, Payments, Settlements

T = TypeVar("T")


@attrs.define
class _Capture:
    """The responses one `with_raw_response` call saw: how many, and the last (bodies of the
    earlier ones are not kept: a long poll must not grow memory)."""

    count: int = 0
    last: Response | None = None


_captured: contextvars.ContextVar[_Capture | None] = contextvars.ContextVar(
    "amili_async_captured_responses", default=None
)


class RawResponseUnavailableError(AmiliError, TypeError):
    """`with_raw_response` was given a call it cannot cover: a listing (a pager) or
    `create_many` (an iterator) streams many responses, not one; nothing was sent."""


@attrs.frozen
class RawResponse(Generic[T]):
    """A call's result together with the HTTP response it came from."""

    data: T
    response: Response
    """The last response the call received: its only one for a single-request call."""
    requests: int = 1
    """How many requests the call sent (more than 1: `batches.wait` polls, `pager.collect()`
    pages; `response` is then the last of them)."""

    @property
    def status_code(self) -> int:
        return self.response.status_code

    @property
    def headers(self) -> Mapping[str, str]:
        return self.response.headers

    @property
    def request_id(self) -> str | None:
        return self.response.request_id


class AmiliClient:
    """Async client for the Amili AutoCollect API.

    Authenticate with exactly one of: `client_id` + `client_secret` (Identiverse
    client-credentials flow, tokens cached and refreshed), `token` (a static bearer token) or
    `token_provider` (a callable returning a token, sync or async). Pick the hosts with
    `environment` ("staging" or "production") or `base_url` (+ `token_url`; plain http only
    to loopback unless `allow_insecure_http=True`). Use it as `async with AmiliClient(...) as
    client:` or call `await client.aclose()`; one client per event loop.

    Time limits: `timeout` bounds each attempt from the moment it has one of the
    `max_connections` slots (waiting for a slot is not counted); `deadline` (None: none)
    bounds the whole call, every attempt, wait for a slot and retry wait included. Retries:
    `max_retries` per call, and past it for up to `retry_for` seconds from the call's start
    (None: no time budget), for a long export that must ride out an outage. POSTs are retried
    with their idempotency key unless `retry_posts=False`.
    """

    invoices: Invoices
    batches: Batches
    payments: Payments
    corrections: Corrections
    collections: Collections
    settlements: Settlements
    legacy: Legacy

    def __init__(
        self,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        token: str | None = None,
        token_provider: Callable[[], str | Awaitable[str]] | None = None,
        environment: Literal["staging", "production"] | None = None,
        base_url: str | None = None,
        token_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        deadline: float | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        retry_for: float | None = None,
        retry_posts: bool = True,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE,
        prefetch: int = DEFAULT_PREFETCH,
        rate_limit: float | Literal["adaptive"] | RateLimiter | None = None,
        retry_budget: bool | RetryBudget = True,
        allow_insecure_http: bool = False,
        session: aiohttp.ClientSession | None = None,
        on_request: RequestHook | None = None,
        on_response: ResponseHook | None = None,
        trace_configs: Sequence[aiohttp.TraceConfig] | None = None,
    ) -> None:
        if environment is None and base_url is None:
            base_url = os.environ.get("AMILI_BASE_URL") or None
            environment = _environment_from_env()
        if environment is None and base_url is None:
            raise ValueError(
                "choose the hosts: environment='staging' or 'production', or base_url=..."
            )
        hosts = resolve_environment(
            environment or "production",
            base_url,
            token_url,
            allow_insecure_http=allow_insecure_http,
        )
        auth = _choose_auth(client_id, client_secret, token, token_provider, hosts.token_url)
        limiter = limiter_for(rate_limit)
        budget = (
            retry_budget
            if isinstance(retry_budget, RetryBudget)
            else (RetryBudget() if retry_budget else None)
        )
        transport = Transport(
            base_url=hosts.api_base_url,
            auth=auth,
            timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=connect_timeout),
            retry=RetryPolicy(max_retries=max_retries),
            max_connections=max_connections,
            max_response_size=max_response_size,
            retry_posts=retry_posts,
            deadline=deadline,
            retry_for=retry_for,
            rate_limiter=limiter,
            retry_budget=budget,
            session=session,
            on_request=on_request,
            on_response=on_response,
            trace_configs=trace_configs,
            user_agent=f"amili-async/{__version__}",
        )
        state = _ClientState(hosts.api_base_url, auth, transport, limiter, budget)
        self._bind(state, _Channel(transport, DEFAULT_OPTIONS, prefetch))

    def _bind(self, state: _ClientState, channel: _Channel) -> None:
        """The one construction path (`__init__`, `with_options`): the shared state, and this
        client's channel (its defaults) given to every resource."""
        self._state = state
        self._channel = channel
        self.batches = Batches(channel)
        self.invoices = Invoices(channel)
        self.payments = Payments(channel)
        self.corrections = Corrections(channel)
        self.collections = Collections(channel)
        self.settlements = Settlements(channel)
        self.legacy = Legacy(channel)

    @property
    def base_url(self) -> str:
        """The API base URL every path is relative to."""
        return self._state.base_url

    @property
    def rate_limiter(self) -> RateLimiter | None:
        """The client-side send-rate limiter (None without `rate_limit`)."""
        return self._state.rate_limiter

    @property
    def retry_budget(self) -> RetryBudget | None:
        """The retry budget shared by every call (None when switched off): `.tokens` for metrics."""
        return self._state.retry_budget

    @property
    def _auth(self) -> Auth:
        return self._state.auth

    @property
    def _transport(self) -> Transport:
        return self._state.transport

    @property
    def prefetch(self) -> int:
        """Pages a listing fetches ahead of its consumer (``prefetch=`` of a listing wins)."""
        return self._channel.prefetch

    def with_options(
        self,
        *,
        timeout: float | None = None,
        deadline: float | None = None,
        max_retries: int | None = None,
        retry_for: float | None = None,
        retry_posts: bool | None = None,
        extra_headers: Mapping[str, str] | None = None,
        prefetch: int | None = None,
    ) -> AmiliClient:
        """A client for some calls with other settings, sharing this one's pool and token.

        `client.with_options(max_retries=5).invoices.get(org, inv)`; a `timeout=` given to a
        method still wins for that call. Closing either closes the shared pool.
        """
        if max_retries is not None and max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        options = RequestOptions(
            timeout=timeout,
            deadline=deadline,
            max_retries=max_retries,
            retry_for=retry_for,
            retry_posts=retry_posts,
            extra_headers=extra_headers,
        ).over(self._channel.defaults)
        derived = AmiliClient.__new__(AmiliClient)  # the state exists: only `_bind` is left
        depth = self.prefetch if prefetch is None else prefetch
        derived._bind(self._state, _Channel(self._transport, options, depth))
        return derived

    def __repr__(self) -> str:
        return f"AmiliClient(base_url={self.base_url!r}, auth={self._auth!r})"

    async def __aenter__(self) -> AmiliClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (a session passed in by the caller stays open)."""
        await self._transport.aclose()

    @property
    def closed(self) -> bool:
        return self._transport.closed

    async def with_raw_response(self, call: Awaitable[T]) -> RawResponse[T]:
        """Await one SDK call and return its result with its HTTP response.

        `raw = await client.with_raw_response(client.invoices.get(org, inv))` gives
        `raw.data`, `raw.status_code`, `raw.headers` and `raw.request_id`. Pass the coroutine
        itself (not a Task): the capture follows the awaiting task. It covers awaitable calls:
        one request (get, create, a case action) gives its response; a call of several
        (`batches.wait`, `pager.collect()`) gives its last, with `raw.requests` counting them.
        A listing (a pager) or `create_many` (an iterator) raises RawResponseUnavailableError
        before anything is sent: read each page's response with `on_response=` instead.
        """
        if not inspect.isawaitable(call):
            raise RawResponseUnavailableError(
                f"with_raw_response takes an awaitable call, got {type(call).__name__}: a "
                "listing or create_many streams many responses; use on_response= to see them"
            )
        capture = _Capture()
        reset = _captured.set(capture)
        try:
            data = await call
        finally:
            _captured.reset(reset)
        if capture.last is None:
            raise ValueError("the awaited call sent no request through this client")
        return RawResponse(data=data, response=capture.last, requests=capture.count)


@attrs.frozen
class _ClientState:
    """What a client and every client `with_options` derives from it share: the hosts, the
    credentials and token cache, the transport (its connection pool and session), the rate
    limiter and the retry budget. Settings per derived client live in its `_Channel`."""

    base_url: str
    auth: Auth
    transport: Transport
    rate_limiter: RateLimiter | None
    retry_budget: RetryBudget | None


@attrs.frozen
class _Channel:
    """What resources send through: the shared transport plus this client's defaults.

    It also records each response for :meth:`AmiliClient.with_raw_response`.
    """

    transport: Transport
    defaults: RequestOptions
    prefetch: int

    @property
    def retry_posts(self) -> bool:
        """Whether this client's POSTs may be sent again (with_options, else the client's)."""
        chosen = self.defaults.retry_posts
        return self.transport.retry_posts if chosen is None else chosen

    def send(self, request: Request) -> Coroutine[Any, Any, Response]:
        """Send with the client's defaults under the request's own options.

        Not a coroutine itself: outside `with_raw_response` it hands back the transport's
        own, one frame less on every call.
        """
        if self.defaults is not DEFAULT_OPTIONS:
            request = msgspec.structs.replace(request, options=request.options.over(self.defaults))
        sending = self.transport.send(request)
        captured = _captured.get()
        return sending if captured is None else _capture(sending, captured)


async def _capture(sending: Coroutine[Any, Any, Response], captured: _Capture) -> Response:
    """The response of `sending`, recorded for :meth:`AmiliClient.with_raw_response`."""
    response = await sending
    captured.count += 1
    captured.last = response
    return response


def _environment_from_env() -> Literal["staging", "production"] | None:
    value = os.environ.get("AMILI_ENVIRONMENT")
    if value in (None, ""):
        return None
    if value not in ("staging", "production"):
        raise ValueError("AMILI_ENVIRONMENT must be 'staging' or 'production'")
    return value  # type: ignore[return-value]


def _choose_auth(
    client_id: str | None,
    client_secret: str | None,
    token: str | None,
    token_provider: Callable[[], str | Awaitable[str]] | None,
    token_url: str,
) -> Auth:
    """Exactly one way to authenticate; credentials may also come from the environment."""
    chosen = [
        name
        for name, given in (
            ("client_id/client_secret", client_id is not None or client_secret is not None),
            ("token", token is not None),
            ("token_provider", token_provider is not None),
        )
        if given
    ]
    if len(chosen) > 1:
        raise ValueError(f"pass only one way to authenticate, got {' and '.join(chosen)}")
    if token is not None:
        return StaticTokenAuth(token)
    if token_provider is not None:
        return CallableTokenAuth(token_provider)
    client_id = client_id or os.environ.get("AMILI_CLIENT_ID")
    client_secret = client_secret or os.environ.get("AMILI_CLIENT_SECRET")
    if not client_id or not client_secret:
        raise ValueError(
            "credentials missing: pass client_id and client_secret (or set AMILI_CLIENT_ID and "
            "AMILI_CLIENT_SECRET), token=, or token_provider="
        )
    return ClientCredentialsAuth(client_id, client_secret, token_url)
