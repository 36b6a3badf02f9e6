"""Where bearer tokens come from (a fixed token, a caller's function, or client credentials),
and what a call does with them: the Authorization header of each attempt, and after a 401 the
one refresh and resend (:class:`BearerAuth`, like httpx's auth flow or azure-core's bearer
policy; the transport only carries it out, and :mod:`amili_async._retry` knows no tokens).

Tokens and secrets are credentials: no repr, message or log line in this module shows one.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Protocol

from amili_async import _response, models
from amili_async._config import MAX_TOKEN_LIFETIME, MIN_TOKEN_LIFETIME, TOKEN_REFRESH_MARGIN
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
# The API's answer to a token it does not accept. It is answered by one refresh and one resend
# per call: a second 401 with a fresh token means the credentials themselves are refused, and
# asking again would only hammer the token endpoint.
_REJECTED_TOKEN_STATUS: Final = 401
# The token answer's times, read leniently here (JSON numbers of any kind, numeric strings)
# rather than by the model's strict int-or-string check: a float `expires_in` (3600.0) must
# not break every call.
_TIME_FIELDS: Final = ("expires_in", "expires_on", "not_before")


class Auth(Protocol):
    """Supplies the bearer token for API requests."""

    async def token(self, fetch: TokenFetcher) -> str:
        """A token to send now; ``fetch`` reaches the token endpoint when one is needed."""
        ...

    def invalidate(self, token: str) -> None:
        """The API rejected ``token``: forget it, so the next :meth:`token` gets a fresh one."""
        ...


class BearerAuth:
    """Auth's part of every API call of one transport: see :meth:`start`.

    Keeps one ``"Bearer <token>"`` string per token, not one per attempt.
    """

    __slots__ = ("_auth", "_cached", "_fetch", "_header", "_token")

    def __init__(self, auth: Auth, fetch: TokenFetcher) -> None:
        self._auth = auth
        self._fetch = fetch
        # The SDK's auths also answer without a coroutine while their token is valid
        # (`cached`); a caller's own Auth needs only `token`.
        self._cached: Callable[[], str | None] | None = getattr(auth, "cached", None)
        self._token: str | None = None
        self._header = ""

    def start(self) -> BearerFlow:
        """The authentication of one call, attempt after attempt."""
        return BearerFlow(self)

    def _at_hand(self) -> str | None:
        """The token to send now if the auth holds a valid one, without awaiting."""
        return None if self._cached is None else self._cached()

    async def _fetched(self) -> str:
        return await self._auth.token(self._fetch)

    def _header_of(self, token: str) -> str:
        if token is not self._token:
            self._token, self._header = token, "Bearer " + token
        return self._header

    def __repr__(self) -> str:
        return f"BearerAuth({self._auth!r})"


class BearerFlow:
    """One call's tokens: the header for each attempt, and whether a 401 is worth a resend."""

    __slots__ = ("_policy", "_refreshed", "_sent")

    def __init__(self, policy: BearerAuth) -> None:
        self._policy = policy
        self._sent: str | None = None
        self._refreshed = False

    def ready(self) -> str | None:
        """The Authorization header of the next attempt when the token is at hand (the
        common case: no coroutine), else None: then await :meth:`authorization`."""
        token = self._policy._at_hand()
        if token is None:
            return None
        self._sent = token
        return self._policy._header_of(token)

    async def authorization(self) -> str:
        """The Authorization header of the next attempt (a token fetched if none is cached)."""
        token = self._sent = await self._policy._fetched()
        return self._policy._header_of(token)

    def rejected(self, status: int) -> bool:
        """Whether an answer with `status` may be worth a resend, without a coroutine: the
        call's first 401 after a token was sent (:meth:`resend` then decides)."""
        return status == _REJECTED_TOKEN_STATUS and not self._refreshed and self._sent is not None

    async def resend(self, status: int) -> bool:
        """After an answer: True to send the same request again, with a fresh token.

        Only when :meth:`rejected`, and only when the auth has a different token to try (a
        static token has none): the rejected one is invalidated first, so concurrent calls
        rejected with the same token share one refresh.
        """
        sent = self._sent
        if sent is None or not self.rejected(status):
            return False
        self._refreshed = True
        auth = self._policy._auth
        auth.invalidate(sent)
        return await auth.token(self._policy._fetch) != sent


class StaticTokenAuth:
    """A token the caller obtained elsewhere; it is never refreshed."""

    __slots__ = ("_token",)

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("token must be a non-empty string")
        self._token = _bearer(token)

    async def token(self, fetch: TokenFetcher) -> str:
        return self._token

    def cached(self) -> str:
        """The token, without a coroutine (see :class:`BearerAuth`)."""
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

    def cached(self) -> str | None:
        """The token while it is valid (not due for refresh), else None."""
        token = self._token
        return token if token is not None and self._clock() < self._refresh_at else None

    async def get(self, refresh: Callable[[], Awaitable[tuple[str, float]]]) -> str:
        """The cached token, or the result of the refresh in flight (started if none is)."""
        token = self.cached()
        if token is not None:
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

    def cached(self) -> str | None:
        """The token while one is kept, without a coroutine (see :class:`BearerAuth`)."""
        return self._cache.cached()

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

    def cached(self) -> str | None:
        """The token until it is due for refresh, without a coroutine (see :class:`BearerAuth`)."""
        return self._cache.cached()

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
        data = _response.parse_json(response, sensitive=True)
        times: dict[str, Any] = {}
        if isinstance(data, dict):
            times = {name: data[name] for name in _TIME_FIELDS if name in data}
            data = {name: value for name, value in data.items() if name not in times}
        answer = _response.structure(response, data, models.TokenResponse, sensitive=True)
        if not answer.access_token:
            raise _response.decode_error(
                response, "token response has no access_token", sensitive=True
            )
        refresh_at = self._refresh_time(
            times.get("expires_in"), times.get("expires_on"), self._clock()
        )
        return _bearer(answer.access_token), refresh_at

    def _refresh_time(self, expires_in: Any, expires_on: Any, now: float) -> float:
        """``margin`` before expiry (at most half the lifetime); never, if no expiry is given.

        ``expires_in`` (RFC 6749's, relative, so immune to clock skew) wins over Azure's
        ``expires_on`` (a unix time). Either may be any JSON number or a numeric string; one
        that is not a number (text, NaN) counts as not given. The lifetime is clamped to
        [MIN_TOKEN_LIFETIME, MAX_TOKEN_LIFETIME] (1 s to 24 h, see `_config`), so 1e400,
        "inf", 0 or a negative value still give a usable token and a sane refresh time.
        """
        lifetime = _seconds(expires_in)
        if lifetime is None:
            expires_at = _seconds(expires_on)
            if expires_at is None:
                # No expiry given: keep the token until the API answers 401.
                return math.inf
            lifetime = expires_at - now
        lifetime = min(max(lifetime, MIN_TOKEN_LIFETIME), MAX_TOKEN_LIFETIME)
        return now + lifetime - min(self._margin, lifetime / 2)

    def __repr__(self) -> str:
        return (
            f"ClientCredentialsAuth(client_id={self.client_id!r}, token_url={self.token_url!r}, "
            "client_secret=<redacted>)"
        )


def _bearer(token: str) -> str:
    """A token that can travel in the Authorization header (no CR or LF), else ValueError."""
    return check_header_value("Authorization", token)


def _seconds(value: Any) -> float | None:
    """A JSON number (int or float of any size, Decimal) or a numeric string ("3600",
    "3600.0", "1e400"; Azure AD sends ``expires_on`` as "1700000000") as a float, possibly
    infinite; None for anything else (other text, NaN, a boolean)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = Decimal(value.strip())
        except InvalidOperation:
            return None
    if not isinstance(value, int | float | Decimal):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int beyond a double's range
        number = math.inf if value > 0 else -math.inf
    return None if math.isnan(number) else number
