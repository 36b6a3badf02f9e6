"""Where bearer tokens come from: a fixed token, a caller's function, or client credentials.

Tokens and secrets are credentials: no repr, message or log line in this module shows one.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, Protocol

from amili_async import _response, models
from amili_async._config import TOKEN_REFRESH_MARGIN
from amili_async._request import check_header_value
from amili_async._response import Response
from amili_async.errors import AuthenticationError

TokenFetcher = Callable[[str, Mapping[str, str]], Awaitable[Response]]
"""POSTs a form to a token URL and returns the answer whatever its status (the transport)."""

Clock = Callable[[], float]
"""Current unix time in seconds, ``time.time`` outside tests."""

# Token endpoint statuses that mean "these credentials are wrong" (OAuth 2.0 answers
# invalid_client with 400 or 401; some servers use 403 for a disabled client).
_REJECTED_STATUS: Final = frozenset({400, 401, 403})


class Auth(Protocol):
    """Supplies the bearer token for API requests."""

    async def token(self, fetch: TokenFetcher) -> str:
        """A token to send now; ``fetch`` reaches the token endpoint when one is needed."""
        ...

    def invalidate(self, token: str) -> None:
        """The API rejected ``token``: forget it, so the next :meth:`token` gets a fresh one."""
        ...


class StaticTokenAuth:
    """A token the caller obtained elsewhere; it is never refreshed."""

    __slots__ = ("_token",)

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("token must be a non-empty string")
        self._token = _bearer(token)

    async def token(self, fetch: TokenFetcher) -> str:
        return self._token

    def invalidate(self, token: str) -> None:
        """Nothing to do: there is no other token to switch to."""

    def __repr__(self) -> str:
        return "StaticTokenAuth(token=<redacted>)"


class _SingleFlight:
    """Caches one token and runs at most one refresh at a time, shared by every waiter.

    A failed refresh reaches every waiter of that refresh; the next call starts a new one.
    """

    __slots__ = ("_clock", "_pending", "_refresh_at", "_token")

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._token: str | None = None
        self._refresh_at = 0.0
        self._pending: asyncio.Task[str] | None = None

    async def get(self, refresh: Callable[[], Awaitable[tuple[str, float]]]) -> str:
        """The cached token, or the result of the refresh in flight (started if none is)."""
        token = self._token
        if token is not None and self._clock() < self._refresh_at:
            return token
        pending = self._pending
        if pending is None:
            pending = asyncio.create_task(self._run(refresh), name="amili-token-refresh")
            # Retrieve the outcome even if every waiter was cancelled, so asyncio does not
            # report "exception never retrieved".
            pending.add_done_callback(_consume)
            self._pending = pending
        # shield: one waiter being cancelled must not cancel the refresh the others wait on.
        return await asyncio.shield(pending)

    async def _run(self, refresh: Callable[[], Awaitable[tuple[str, float]]]) -> str:
        try:
            self._token, self._refresh_at = await refresh()
            return self._token
        finally:
            self._pending = None

    def invalidate(self, token: str) -> None:
        """Drop the cache only if it still holds ``token``: many 401s, one refresh."""
        if self._token == token:
            self._token = None


def _consume(task: asyncio.Task[str]) -> None:
    if not task.cancelled():
        task.exception()


class CallableTokenAuth:
    """Tokens from the caller's function (sync or async), called again after a 401.

    The token is kept until the API rejects it; concurrent callers share one call of ``fn``.
    """

    __slots__ = ("_cache", "_fn")

    def __init__(self, fn: Callable[[], str | Awaitable[str]]) -> None:
        self._fn = fn
        self._cache = _SingleFlight(time.time)

    async def token(self, fetch: TokenFetcher) -> str:
        return await self._cache.get(self._call)

    def invalidate(self, token: str) -> None:
        self._cache.invalidate(token)

    async def _call(self) -> tuple[str, float]:
        result = self._fn()
        token = await result if inspect.isawaitable(result) else result
        if not isinstance(token, str) or not token:
            raise TypeError("the token function must return a non-empty string")
        return _bearer(token), math.inf

    def __repr__(self) -> str:
        # The qualified name only: a partial's repr would show its (possibly secret) args.
        return f"CallableTokenAuth({getattr(self._fn, '__qualname__', type(self._fn).__name__)})"


class ClientCredentialsAuth:
    """OAuth 2.0 client credentials against Amili's token endpoint, cached until near expiry."""

    __slots__ = ("_cache", "_client_secret", "_clock", "_margin", "client_id", "token_url")

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        token_url: str,
        *,
        margin: float = TOKEN_REFRESH_MARGIN,
        clock: Clock = time.time,
    ) -> None:
        if not client_id or not client_secret:
            raise ValueError("client_id and client_secret must be non-empty strings")
        self.client_id = client_id
        self._client_secret = client_secret
        self.token_url = token_url
        self._margin = margin
        self._clock = clock
        self._cache = _SingleFlight(clock)

    async def token(self, fetch: TokenFetcher) -> str:
        return await self._cache.get(lambda: self._request_token(fetch))

    def invalidate(self, token: str) -> None:
        self._cache.invalidate(token)

    async def _request_token(self, fetch: TokenFetcher) -> tuple[str, float]:
        """Ask the token endpoint; returns the token and the time to refresh it at."""
        response = await fetch(
            self.token_url,
            {
                "grant_type": "client_credentials",
                "client_id": self.client_id,
                "client_secret": self._client_secret,
            },
        )
        rejected = response.status_code in _REJECTED_STATUS
        _response.raise_for_status(
            response,
            error_class=AuthenticationError if rejected else None,
            secret=self._client_secret,
        )
        answer = _response.decode(response, models.TokenResponse, sensitive=True)
        if not answer.access_token:
            raise _response.decode_error(
                response, "token response has no access_token", sensitive=True
            )
        return _bearer(answer.access_token), self._refresh_time(answer, self._clock())

    def _refresh_time(self, answer: models.TokenResponse, now: float) -> float:
        """``margin`` before expiry (at most half the lifetime); never, if no expiry is given."""
        expires_at = _number(answer.expires_on)
        if expires_at is None:
            expires_in = _number(answer.expires_in)
            if expires_in is None:
                # No expiry given: keep the token until the API answers 401.
                return math.inf
            expires_at = now + expires_in
        lifetime = max(0.0, expires_at - now)
        return expires_at - min(self._margin, lifetime / 2)

    def __repr__(self) -> str:
        return (
            f"ClientCredentialsAuth(client_id={self.client_id!r}, token_url={self.token_url!r}, "
            "client_secret=<redacted>)"
        )


def _bearer(token: str) -> str:
    """A token that can travel in the Authorization header (no CR or LF), else ValueError."""
    return check_header_value("Authorization", token)


def _number(value: Any) -> float | None:
    """A JSON number or numeric string (Azure AD sends ``expires_on`` as "1700000000")."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None
