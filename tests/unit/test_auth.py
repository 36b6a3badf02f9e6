"""_auth.py: token sources, caching, single-flight refresh, the 401 flow, token times and
secret hygiene."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Mapping
from typing import Any

import orjson
import pytest

from amili_async._auth import (
    BearerAuth,
    CallableTokenAuth,
    ClientCredentialsAuth,
    StaticTokenAuth,
)
from amili_async._config import MAX_TOKEN_LIFETIME, MIN_TOKEN_LIFETIME
from amili_async._response import Response
from amili_async.errors import (
    AuthenticationError,
    InternalServerError,
    NotFoundError,
    ResponseDecodeError,
)

TOKEN_URL = "https://auth.test.invalid/token"
SECRET = "s3cr3t-client-secret"
NOW = 1_700_000_000.0


class FakeClock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def token_response(status: int = 200, body: Any = None, content: bytes | None = None) -> Response:
    return Response(
        status_code=status,
        headers={"Content-Type": "application/json"},
        # The standard library's encoder: it writes integers of any size, orjson does not.
        content=content if content is not None else json.dumps(body).encode(),
        method="POST",
        url=TOKEN_URL,
        request_id=None,
        elapsed=0.001,
        attempts=1,
    )


class FakeTokenEndpoint:
    """A TokenFetcher handing out access tokens tok-1, tok-2, ...; optionally gated."""

    def __init__(self, extra: Mapping[str, Any] | None = None) -> None:
        self.calls: list[tuple[str, dict[str, str]]] = []
        self.extra = dict({"expires_on": str(int(NOW) + 3600)} if extra is None else extra)
        self.gate: asyncio.Event | None = None
        self.failures: list[Response] = []

    async def __call__(self, url: str, form: Mapping[str, str]) -> Response:
        self.calls.append((url, dict(form)))
        if self.gate is not None:
            await self.gate.wait()
        if self.failures:
            return self.failures.pop(0)
        return token_response(
            body={"access_token": f"tok-{len(self.calls)}", "token_type": "Bearer", **self.extra}
        )


def credentials(clock: FakeClock | None = None, margin: float = 60.0) -> ClientCredentialsAuth:
    return ClientCredentialsAuth(
        "client-1", SECRET, TOKEN_URL, margin=margin, clock=clock or FakeClock()
    )


async def test_static_token() -> None:
    auth = StaticTokenAuth("abc.def")
    endpoint = FakeTokenEndpoint()
    assert await auth.token(endpoint) == "abc.def"
    auth.invalidate("abc.def")
    assert await auth.token(endpoint) == "abc.def"
    assert endpoint.calls == []
    assert "abc" not in repr(auth)
    with pytest.raises(ValueError, match="non-empty"):
        StaticTokenAuth("")


async def test_callable_sync_is_cached_until_invalidated() -> None:
    tokens = iter(["one", "two"])
    calls = 0

    def provide() -> str:
        nonlocal calls
        calls += 1
        return next(tokens)

    auth = CallableTokenAuth(provide)
    endpoint = FakeTokenEndpoint()
    assert await auth.token(endpoint) == "one"
    assert await auth.token(endpoint) == "one"
    assert calls == 1
    auth.invalidate("not-the-cached-one")
    assert await auth.token(endpoint) == "one"
    auth.invalidate("one")
    assert await auth.token(endpoint) == "two"
    assert calls == 2


async def test_callable_async_single_flight() -> None:
    calls = 0

    async def provide() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        return "async-token"

    auth = CallableTokenAuth(provide)
    tokens = await asyncio.gather(*(auth.token(FakeTokenEndpoint()) for _ in range(50)))
    assert set(tokens) == {"async-token"}
    assert calls == 1


async def test_callable_must_return_a_string() -> None:
    auth = CallableTokenAuth(lambda: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match="non-empty string"):
        await auth.token(FakeTokenEndpoint())


def test_callable_repr_hides_partial_arguments() -> None:
    def fetch(secret: str) -> str:
        return secret

    auth = CallableTokenAuth(functools.partial(fetch, "hidden-secret"))
    assert "hidden-secret" not in repr(auth)
    assert repr(CallableTokenAuth(fetch)).startswith("CallableTokenAuth(")


async def test_client_credentials_posts_the_form() -> None:
    endpoint = FakeTokenEndpoint()
    assert await credentials().token(endpoint) == "tok-1"
    assert endpoint.calls == [
        (
            TOKEN_URL,
            {"grant_type": "client_credentials", "client_id": "client-1", "client_secret": SECRET},
        )
    ]


async def test_cached_until_expires_on_minus_margin() -> None:
    clock = FakeClock()
    auth = credentials(clock)
    endpoint = FakeTokenEndpoint({"expires_on": int(NOW) + 3600, "expires_in": "3600"})
    assert await auth.token(endpoint) == "tok-1"
    clock.now = NOW + 3600 - 60 - 0.001
    assert await auth.token(endpoint) == "tok-1"
    clock.now = NOW + 3600 - 60
    assert await auth.token(endpoint) == "tok-2"
    assert len(endpoint.calls) == 2


async def test_expires_in_is_the_fallback() -> None:
    clock = FakeClock()
    auth = credentials(clock)
    endpoint = FakeTokenEndpoint({"expires_in": 600, "expires_on": "soon"})
    await auth.token(endpoint)
    clock.now = NOW + 539
    assert await auth.token(endpoint) == "tok-1"
    clock.now = NOW + 540
    assert await auth.token(endpoint) == "tok-2"


async def test_short_lived_token_refreshes_at_half_life() -> None:
    clock = FakeClock()
    auth = credentials(clock)
    endpoint = FakeTokenEndpoint({"expires_in": 30})
    await auth.token(endpoint)
    clock.now = NOW + 14
    assert await auth.token(endpoint) == "tok-1"
    clock.now = NOW + 15
    assert await auth.token(endpoint) == "tok-2"


async def test_no_expiry_keeps_the_token_until_invalidated() -> None:
    clock = FakeClock()
    auth = credentials(clock)
    endpoint = FakeTokenEndpoint({})
    await auth.token(endpoint)
    clock.now = NOW + 10**9
    assert await auth.token(endpoint) == "tok-1"
    auth.invalidate("tok-1")
    assert await auth.token(endpoint) == "tok-2"


async def test_single_flight_on_a_cold_cache() -> None:
    auth = credentials()
    endpoint = FakeTokenEndpoint()
    endpoint.gate = asyncio.Event()
    waiters = [asyncio.create_task(auth.token(endpoint)) for _ in range(1000)]
    await asyncio.sleep(0)
    endpoint.gate.set()
    assert set(await asyncio.gather(*waiters)) == {"tok-1"}
    assert len(endpoint.calls) == 1


async def test_failed_refresh_reaches_every_waiter_and_the_next_call_retries() -> None:
    auth = credentials()
    endpoint = FakeTokenEndpoint()
    endpoint.gate = asyncio.Event()
    endpoint.failures = [token_response(500, {"title": "Down"})]
    waiters = [asyncio.create_task(auth.token(endpoint)) for _ in range(20)]
    await asyncio.sleep(0)
    endpoint.gate.set()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(result, InternalServerError) for result in results)
    assert len(endpoint.calls) == 1
    assert await auth.token(endpoint) == "tok-2"


async def test_cancelled_waiter_does_not_cancel_the_shared_refresh() -> None:
    auth = credentials()
    endpoint = FakeTokenEndpoint()
    endpoint.gate = asyncio.Event()
    first = asyncio.create_task(auth.token(endpoint))
    second = asyncio.create_task(auth.token(endpoint))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    endpoint.gate.set()
    assert await second == "tok-1"
    assert first.cancelled()
    assert len(endpoint.calls) == 1


async def test_many_invalidations_of_one_token_cause_one_refresh() -> None:
    auth = credentials()
    endpoint = FakeTokenEndpoint()
    stale = await auth.token(endpoint)
    for _ in range(100):
        auth.invalidate(stale)
    tokens = await asyncio.gather(*(auth.token(endpoint) for _ in range(100)))
    for _ in range(100):
        auth.invalidate(stale)
    assert set(tokens) == {"tok-2"}
    assert await auth.token(endpoint) == "tok-2"
    assert len(endpoint.calls) == 2


@pytest.mark.parametrize(
    ("status", "phrase"), [(400, "Bad Request"), (401, "Unauthorized"), (403, "Forbidden")]
)
async def test_rejected_credentials_raise_authentication_error_without_the_secret(
    status: int, phrase: str
) -> None:
    auth = credentials()
    endpoint = FakeTokenEndpoint()
    # A careless server echoing the secret must not make us repeat it.
    endpoint.failures = [
        token_response(
            status, {"error": "invalid_client", "error_description": f"bad secret {SECRET}"}
        )
    ]
    with pytest.raises(AuthenticationError) as caught:
        await auth.token(endpoint)
    error = caught.value
    assert error.status_code == status
    assert str(error) == f"{status} {phrase}: POST /token: invalid_client - bad secret <redacted>"
    for text in (str(error), repr(error), error.text, orjson.dumps(error.body).decode()):
        assert SECRET not in text
    assert "client_secret" not in str(error)


async def test_other_token_endpoint_errors_keep_their_class() -> None:
    auth = credentials()
    endpoint = FakeTokenEndpoint()
    endpoint.failures = [token_response(404, {"title": "Not Found"})]
    with pytest.raises(NotFoundError):
        await auth.token(endpoint)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"<html>oops</html>", "not valid JSON"),
        (b"[1, 2]", "does not match TokenResponse"),
        (b'{"token_type": "Bearer"}', r"\$\.access_token: required field missing"),
        (b'{"access_token": ""}', "no access_token"),
    ],
)
async def test_malformed_token_response(content: bytes, reason: str) -> None:
    auth = credentials()
    endpoint = FakeTokenEndpoint()
    endpoint.failures = [token_response(200, content=content)]
    with pytest.raises(ResponseDecodeError, match=reason) as caught:
        await auth.token(endpoint)
    assert caught.value.body_snippet == ""


def test_client_credentials_repr_hides_the_secret() -> None:
    text = repr(credentials())
    assert SECRET not in text
    assert "client-1" in text
    with pytest.raises(ValueError, match="non-empty"):
        ClientCredentialsAuth("client-1", "", TOKEN_URL)


# --- the 401 flow: auth decides whether a rejected token is refreshed and the request resent


async def test_a_first_401_is_resent_once_with_a_fresh_token() -> None:
    endpoint = FakeTokenEndpoint()
    flow = BearerAuth(credentials(), endpoint).start()
    assert await flow.authorization() == "Bearer tok-1"
    assert await flow.resend(200) is False
    assert await flow.resend(401) is True
    assert await flow.authorization() == "Bearer tok-2"
    assert await flow.resend(401) is False  # a second 401: the credentials are refused
    assert len(endpoint.calls) == 2


async def test_a_401_to_a_static_token_is_not_resent() -> None:
    flow = BearerAuth(StaticTokenAuth("abc"), FakeTokenEndpoint()).start()
    assert await flow.authorization() == "Bearer abc"
    assert await flow.resend(401) is False


async def test_no_resend_before_a_token_was_sent() -> None:
    endpoint = FakeTokenEndpoint()
    flow = BearerAuth(credentials(), endpoint).start()
    assert await flow.resend(401) is False
    assert endpoint.calls == []


async def test_concurrent_401s_of_one_token_share_one_refresh() -> None:
    endpoint = FakeTokenEndpoint()
    policy = BearerAuth(credentials(), endpoint)
    flows = [policy.start() for _ in range(50)]
    for flow in flows:
        await flow.authorization()
    assert await asyncio.gather(*(flow.resend(401) for flow in flows)) == [True] * 50
    assert {await flow.authorization() for flow in flows} == {"Bearer tok-2"}
    assert len(endpoint.calls) == 2


async def test_a_valid_token_is_at_hand_without_a_coroutine_until_its_refresh_time() -> None:
    clock = FakeClock()
    endpoint = FakeTokenEndpoint()
    policy = BearerAuth(credentials(clock, margin=60.0), endpoint)
    assert policy.start().ready() is None  # no token yet: the caller awaits authorization()
    assert await policy.start().authorization() == "Bearer tok-1"
    flow = policy.start()
    assert flow.ready() == "Bearer tok-1"
    assert flow.rejected(401)  # the token ready() handed out is the one a 401 invalidates
    assert await flow.resend(401) is True
    assert policy.start().ready() == "Bearer tok-2"
    clock.now = NOW + 3600 - 60  # its refresh time: no longer at hand
    assert policy.start().ready() is None
    assert await policy.start().authorization() == "Bearer tok-3"
    assert len(endpoint.calls) == 3


async def test_an_auth_of_ones_own_needs_only_token() -> None:
    class OwnAuth:
        async def token(self, fetch: Any) -> str:
            return "own"

        def invalidate(self, token: str) -> None:
            pass

    flow = BearerAuth(OwnAuth(), FakeTokenEndpoint()).start()
    assert flow.ready() is None
    assert await flow.authorization() == "Bearer own"
    assert BearerAuth(StaticTokenAuth("abc"), FakeTokenEndpoint()).start().ready() == "Bearer abc"


def test_only_the_first_401_after_a_sent_token_is_rejected() -> None:
    flow = BearerAuth(StaticTokenAuth("abc"), FakeTokenEndpoint()).start()
    assert not flow.rejected(401)  # nothing sent yet
    assert flow.ready() == "Bearer abc"
    assert [flow.rejected(s) for s in (200, 400, 401, 403)] == [False, False, True, False]


async def test_one_header_string_per_token() -> None:
    policy = BearerAuth(StaticTokenAuth("abc"), FakeTokenEndpoint())
    first, second = policy.start(), policy.start()
    assert await first.authorization() is await second.authorization()
    assert "abc" not in repr(policy)


# --- the token answer's times: any JSON number or numeric string, clamped, never a crash


@pytest.mark.parametrize(
    ("expires_in", "lifetime"),
    [
        (3600, 3600.0),
        (3600.0, 3600.0),
        ("3600", 3600.0),
        (" 3600.5 ", 3600.5),
        (1e300, MAX_TOKEN_LIFETIME),
        ("1e400", MAX_TOKEN_LIFETIME),
        ("inf", MAX_TOKEN_LIFETIME),
        (10**400, MAX_TOKEN_LIFETIME),
        (0, MIN_TOKEN_LIFETIME),
        (-5, MIN_TOKEN_LIFETIME),
        (-(10**400), MIN_TOKEN_LIFETIME),
    ],
    ids=lambda value: repr(value)[:12],
)
async def test_expires_in_of_any_numeric_form_is_clamped(expires_in: Any, lifetime: float) -> None:
    clock = FakeClock()
    auth = credentials(clock)
    endpoint = FakeTokenEndpoint({"expires_in": expires_in})
    assert await auth.token(endpoint) == "tok-1"
    refresh_in = lifetime - min(60.0, lifetime / 2)  # the margin, at most half the lifetime
    clock.now = NOW + refresh_in - 0.001
    assert await auth.token(endpoint) == "tok-1"
    clock.now = NOW + refresh_in
    assert await auth.token(endpoint) == "tok-2"


async def test_a_json_number_beyond_a_double_is_read() -> None:
    """1e400 in the JSON itself (parsed as a Decimal) is a very long lifetime, clamped."""
    clock = FakeClock()
    auth = credentials(clock)
    endpoint = FakeTokenEndpoint()
    endpoint.failures = [token_response(content=b'{"access_token": "big", "expires_in": 1e400}')]
    assert await auth.token(endpoint) == "big"
    clock.now = NOW + MAX_TOKEN_LIFETIME - 60 - 0.001
    assert await auth.token(endpoint) == "big"


@pytest.mark.parametrize("garbage", ["soon", "nan", "", True, [3600], {"s": 1}])
async def test_an_unreadable_expiry_counts_as_none(garbage: Any) -> None:
    """Not a number: as if not given (kept until a 401), never an error that breaks calls."""
    clock = FakeClock()
    auth = credentials(clock)
    endpoint = FakeTokenEndpoint({"expires_in": garbage, "expires_on": garbage})
    assert await auth.token(endpoint) == "tok-1"
    clock.now = NOW + 10**9
    assert await auth.token(endpoint) == "tok-1"


async def test_expires_in_wins_over_a_skewed_expires_on() -> None:
    clock = FakeClock()
    auth = credentials(clock)
    # expires_on is in the past by our (skewed) clock; expires_in is relative, so it is used.
    endpoint = FakeTokenEndpoint({"expires_in": 600, "expires_on": int(NOW) - 7200})
    await auth.token(endpoint)
    clock.now = NOW + 539
    assert await auth.token(endpoint) == "tok-1"


async def test_a_float_expires_on_and_not_before_are_accepted() -> None:
    clock = FakeClock()
    auth = credentials(clock)
    endpoint = FakeTokenEndpoint({"expires_on": NOW + 3600.5, "not_before": NOW - 0.5})
    assert await auth.token(endpoint) == "tok-1"
    clock.now = NOW + 3540
    assert await auth.token(endpoint) == "tok-1"
    clock.now = NOW + 3540.5
    assert await auth.token(endpoint) == "tok-2"
