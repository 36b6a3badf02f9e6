"""_transport.py (plus _config and _request helpers): wire shape, retries, auth, hooks, logs."""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
from collections.abc import AsyncIterator, Callable
from email.utils import formatdate
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aioresponses import CallbackResult, aioresponses
from yarl import URL

from amili_async._auth import ClientCredentialsAuth, StaticTokenAuth
from amili_async._config import ENVIRONMENTS, origin_of, resolve_environment
from amili_async._ratelimit import FixedRate
from amili_async._request import Request, RequestOptions, encode_multipart
from amili_async._response import Response
from amili_async._transport import RequestInfo, Transport
from amili_async.errors import (
    AmiliError,
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadGatewayError,
    InternalServerError,
    RateLimitError,
    ServiceUnavailableError,
)

from ._statuses import STATUS_CLASSES
from .conftest import BASE_URL, TOKEN_URL, SleepRecorder

MakeTransport = Callable[..., Transport]
INVOICES = f"{BASE_URL}/orgs/o1/invoices"
STATIC_TOKEN = "static-token-value"
SECRET = "client-secret-value"


@pytest.fixture
def mocked() -> Any:
    with aioresponses() as m:
        yield m


def calls(m: Any, method: str, url: str) -> list[Any]:
    return list(m.requests.get((method, URL(url)), []))


def get(path: str = "/orgs/o1/invoices", **kwargs: Any) -> Request:
    return Request("GET", path, **kwargs)


def post(body: bytes = b'{"invoices": []}', **kwargs: Any) -> Request:
    return Request("POST", "/orgs/o1/invoices", body=body, **kwargs)


def token_payload(token: str, expires_in: int = 3600) -> dict[str, Any]:
    return {"access_token": token, "token_type": "Bearer", "expires_in": expires_in}


# --- wire shape -------------------------------------------------------------------------------


async def test_get_builds_url_headers_and_response(
    mocked: Any, make_transport: MakeTransport
) -> None:
    mocked.get(
        INVOICES + "?Status=OPEN&From=2024-01-01T00%3A00%3A00%2B01%3A00",
        status=200,
        body=b'{"data": []}',
        headers={"X-Amili-Request-Id": "req-1"},
    )
    transport = make_transport()
    response = await transport.send(
        get(params={"Status": "OPEN", "From": "2024-01-01T00:00:00+01:00"})
    )
    assert response.status_code == 200
    assert response.content == b'{"data": []}'
    assert orjson.loads(response.content) == {"data": []}
    assert response.request_id == "req-1"
    assert response.url == INVOICES
    assert response.method == "GET"
    assert response.attempts == 1
    assert response.elapsed >= 0
    (call,) = mocked.requests[
        ("GET", URL(INVOICES + "?From=2024-01-01T00:00:00%2B01:00&Status=OPEN"))
    ]
    headers = call.kwargs["headers"]
    assert headers["Authorization"] == f"Bearer {STATIC_TOKEN}"
    assert headers["User-Agent"] == "amili-async-tests/0"
    assert headers["Accept"] == "application/json"
    assert "Content-Type" not in headers
    assert "IdempotencyKey" not in headers
    assert call.kwargs["allow_redirects"] is False


async def test_root_paths_resolve_against_the_origin(
    mocked: Any, make_transport: MakeTransport
) -> None:
    mocked.get("https://api.test.invalid/webapi/api/Ping", payload={"message": "pong"})
    response = await make_transport().send(Request("GET", "/webapi/api/Ping", root=True))
    assert orjson.loads(response.content) == {"message": "pong"}


async def test_post_sends_body_content_type_and_idempotency_key(
    mocked: Any, make_transport: MakeTransport
) -> None:
    mocked.post(INVOICES, status=202, payload={"data": {"batchId": "b1"}}, repeat=True)
    transport = make_transport()
    await transport.send(post())
    await transport.send(
        Request(
            "POST",
            "/orgs/o1/invoices",
            body=b"{}",
            content_type="application/json-patch+json",
            options=RequestOptions(extra_headers={"X-Trace": "t1", "Accept": "text/plain"}),
        )
    )
    first, second = calls(mocked, "POST", INVOICES)
    assert first.kwargs["data"] == b'{"invoices": []}'
    assert first.kwargs["headers"]["Content-Type"] == "application/json"
    assert second.kwargs["headers"]["Content-Type"] == "application/json-patch+json"
    assert second.kwargs["headers"]["X-Trace"] == "t1"
    assert second.kwargs["headers"]["Accept"] == "text/plain"
    keys = {first.kwargs["headers"]["IdempotencyKey"], second.kwargs["headers"]["IdempotencyKey"]}
    assert len(keys) == 2
    assert all(len(key) == 36 for key in keys)


async def test_sdk_headers_win_over_extra_headers(
    mocked: Any, make_transport: MakeTransport
) -> None:
    mocked.post(INVOICES, status=202)
    extra = {"Authorization": "Bearer forged", "IdempotencyKey": "forged"}
    options = RequestOptions(idempotency_key="mine", extra_headers=extra)
    await make_transport().send(post(options=options))
    (call,) = calls(mocked, "POST", INVOICES)
    assert call.kwargs["headers"]["Authorization"] == f"Bearer {STATIC_TOKEN}"
    assert call.kwargs["headers"]["IdempotencyKey"] == "mine"


async def test_no_auth_sends_no_authorization(mocked: Any, make_transport: MakeTransport) -> None:
    mocked.get(INVOICES, payload={})
    await make_transport(auth=None).send(get())
    (call,) = calls(mocked, "GET", INVOICES)
    assert "Authorization" not in call.kwargs["headers"]


# --- status codes -----------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "cls"), STATUS_CLASSES)
async def test_error_status_raises_its_class(
    mocked: Any, make_transport: MakeTransport, status: int, cls: type[APIStatusError]
) -> None:
    detail = "No debtor with national id 01017012345"
    problem = {"title": "Problem title", "status": status, "detail": detail}
    mocked.get(
        INVOICES + "?CustomerNumber=12345",
        status=status,
        body=orjson.dumps(problem),
        content_type="application/problem+json",
        headers={"X-Amili-Request-Id": "req-7"},
        repeat=True,
    )
    with pytest.raises(cls) as caught:
        await make_transport().send(get(params={"CustomerNumber": "12345"}))
    error = caught.value
    assert type(error) is cls
    assert error.status_code == status
    assert error.request_id == "req-7"
    assert error.body == problem
    assert error.text == orjson.dumps(problem).decode()
    assert error.method == "GET"
    assert error.url == INVOICES
    assert "12345" not in str(error)  # neither the query nor the identity number
    assert str(error).endswith(
        "GET /collection/v1/orgs/o1/invoices (request id req-7): "
        "Problem title - No debtor with national id ***"
    )


async def test_html_bad_gateway(mocked: Any, make_transport: MakeTransport) -> None:
    page = "<html><body>502 Bad Gateway</body></html>"
    mocked.get(INVOICES, status=502, body=page, content_type="text/html", repeat=True)
    with pytest.raises(BadGatewayError) as caught:
        await make_transport().send(get())
    assert caught.value.body is None
    assert caught.value.text == page


async def test_unknown_status_is_api_status_error(
    mocked: Any, make_transport: MakeTransport
) -> None:
    mocked.get(INVOICES, status=418, body="teapot", content_type="text/plain")
    with pytest.raises(APIStatusError) as caught:
        await make_transport().send(get())
    assert type(caught.value) is APIStatusError
    assert caught.value.status_code == 418


async def test_redirect_is_returned_not_followed(
    mocked: Any, make_transport: MakeTransport
) -> None:
    mocked.get(INVOICES, status=302, headers={"Location": "https://elsewhere.invalid/"})
    response = await make_transport().send(get())
    assert response.status_code == 302


# --- retries ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
async def test_retryable_status_then_success(
    mocked: Any, make_transport: MakeTransport, sleeper: SleepRecorder, status: int
) -> None:
    mocked.get(INVOICES, status=status)
    mocked.get(INVOICES, payload={"data": []})
    response = await make_transport().send(get())
    assert response.status_code == 200
    assert response.attempts == 2
    assert sleeper.delays == [0.25]
    assert len(calls(mocked, "GET", INVOICES)) == 2


@pytest.mark.parametrize(
    "exception",
    [
        aiohttp.ClientConnectionError("refused"),
        aiohttp.ServerDisconnectedError(),
        aiohttp.ClientOSError(104, "reset"),
        aiohttp.ClientPayloadError("Response payload is not completed"),
        TimeoutError(),
    ],
    ids=["connection", "disconnected", "oserror", "truncated-body", "timeout"],
)
async def test_transient_exception_then_success(
    mocked: Any, make_transport: MakeTransport, sleeper: SleepRecorder, exception: Exception
) -> None:
    mocked.get(INVOICES, exception=exception)
    mocked.get(INVOICES, exception=exception)
    mocked.get(INVOICES, payload={"data": []})
    response = await make_transport().send(get())
    assert response.attempts == 3
    assert sleeper.delays == [0.25, 0.5]


async def test_status_retries_exhausted(
    mocked: Any, make_transport: MakeTransport, sleeper: SleepRecorder
) -> None:
    mocked.get(INVOICES, status=503, repeat=True)
    with pytest.raises(ServiceUnavailableError):
        await make_transport().send(get())
    assert len(calls(mocked, "GET", INVOICES)) == 3
    assert sleeper.delays == [0.25, 0.5]


async def test_connection_retries_exhausted(mocked: Any, make_transport: MakeTransport) -> None:
    mocked.get(
        INVOICES + "?SearchTerm=Ola", exception=aiohttp.ServerDisconnectedError(), repeat=True
    )
    with pytest.raises(APIConnectionError) as caught:
        await make_transport().send(get(params={"SearchTerm": "Ola"}))
    error = caught.value
    assert type(error) is APIConnectionError
    assert isinstance(error.__cause__, aiohttp.ServerDisconnectedError)
    assert error.method == "GET"
    assert error.url == INVOICES
    assert str(error) == (
        "GET /collection/v1/orgs/o1/invoices failed after 3 attempts: ServerDisconnectedError"
    )


async def test_timeouts_exhausted(mocked: Any, make_transport: MakeTransport) -> None:
    mocked.get(INVOICES, timeout=True, repeat=True)
    with pytest.raises(APITimeoutError) as caught:
        await make_transport().send(get())
    assert isinstance(caught.value.__cause__, TimeoutError)
    assert len(calls(mocked, "GET", INVOICES)) == 3


async def test_certificate_errors_are_not_retried(
    mocked: Any, make_transport: MakeTransport
) -> None:
    mocked.get(INVOICES, exception=aiohttp.ServerFingerprintMismatch(b"a", b"b", "h", 443))
    with pytest.raises(APIConnectionError):
        await make_transport().send(get())
    assert len(calls(mocked, "GET", INVOICES)) == 1


async def test_non_transient_client_errors_are_wrapped(
    mocked: Any, make_transport: MakeTransport
) -> None:
    mocked.get(INVOICES, exception=aiohttp.InvalidURL("bad"))
    with pytest.raises(APIConnectionError) as caught:
        await make_transport().send(get())
    assert isinstance(caught.value.__cause__, aiohttp.InvalidURL)
    assert len(calls(mocked, "GET", INVOICES)) == 1


@pytest.mark.parametrize("status", [400, 404, 409, 422])
async def test_client_errors_are_not_retried(
    mocked: Any, make_transport: MakeTransport, sleeper: SleepRecorder, status: int
) -> None:
    mocked.get(INVOICES, status=status, repeat=True)
    with pytest.raises(APIStatusError):
        await make_transport().send(get())
    assert len(calls(mocked, "GET", INVOICES)) == 1
    assert sleeper.delays == []


async def test_per_call_max_retries(mocked: Any, make_transport: MakeTransport) -> None:
    mocked.get(INVOICES, status=500, repeat=True)
    with pytest.raises(InternalServerError):
        await make_transport().send(get(options=RequestOptions(max_retries=0)))
    assert len(calls(mocked, "GET", INVOICES)) == 1
    with pytest.raises(InternalServerError):
        await make_transport().send(get(options=RequestOptions(max_retries=4)))
    assert len(calls(mocked, "GET", INVOICES)) == 1 + 5


async def test_retry_after_seconds_is_honoured(
    mocked: Any, make_transport: MakeTransport, sleeper: SleepRecorder
) -> None:
    mocked.get(INVOICES, status=429, headers={"Retry-After": "7"})
    mocked.get(INVOICES, status=200)
    await make_transport().send(get())
    assert sleeper.delays == [7.0]


async def test_retry_after_http_date_is_honoured(
    mocked: Any, make_transport: MakeTransport, sleeper: SleepRecorder
) -> None:
    now = 1_700_000_000.0
    mocked.get(INVOICES, status=503, headers={"Retry-After": formatdate(now + 12, usegmt=True)})
    mocked.get(INVOICES, status=200)
    await make_transport(clock=lambda: now).send(get())
    assert sleeper.delays == [12.0]


async def test_retry_after_beyond_the_bound_is_not_waited_for(
    mocked: Any, make_transport: MakeTransport, sleeper: SleepRecorder
) -> None:
    mocked.get(INVOICES, status=429, headers={"Retry-After": "120"}, repeat=True)
    with pytest.raises(RateLimitError) as caught:
        await make_transport().send(get())
    assert caught.value.retry_after == 120.0
    assert sleeper.delays == []
    assert len(calls(mocked, "GET", INVOICES)) == 1


async def test_retried_post_keeps_its_idempotency_key(
    mocked: Any, make_transport: MakeTransport
) -> None:
    mocked.post(INVOICES, status=503)
    mocked.post(INVOICES, exception=aiohttp.ServerDisconnectedError())
    mocked.post(INVOICES, status=202)
    mocked.post(INVOICES, status=202)
    transport = make_transport()
    await transport.send(post())
    await transport.send(post())
    keys = [call.kwargs["headers"]["IdempotencyKey"] for call in calls(mocked, "POST", INVOICES)]
    assert len(keys) == 4
    assert keys[0] == keys[1] == keys[2]
    assert keys[3] != keys[0]


async def test_given_idempotency_key_is_used_on_every_try(
    mocked: Any, make_transport: MakeTransport
) -> None:
    mocked.post(INVOICES, status=500)
    mocked.post(INVOICES, status=202)
    await make_transport().send(post(options=RequestOptions(idempotency_key="batch-2024-01")))
    keys = [call.kwargs["headers"]["IdempotencyKey"] for call in calls(mocked, "POST", INVOICES)]
    assert keys == ["batch-2024-01", "batch-2024-01"]


async def test_per_call_timeout_overrides_the_total(
    mocked: Any, make_transport: MakeTransport
) -> None:
    mocked.get(INVOICES, status=200, repeat=True)
    transport = make_transport(timeout=aiohttp.ClientTimeout(total=30, sock_connect=3))
    await transport.send(get())
    await transport.send(get(options=RequestOptions(timeout=0.5)))
    default, override = calls(mocked, "GET", INVOICES)
    assert default.kwargs["timeout"] == aiohttp.ClientTimeout(total=30, sock_connect=3)
    assert override.kwargs["timeout"] == aiohttp.ClientTimeout(total=0.5, sock_connect=3)


# --- auth -------------------------------------------------------------------------------------


def credentials(clock: Callable[[], float] | None = None) -> ClientCredentialsAuth:
    return ClientCredentialsAuth(
        "client-1", SECRET, TOKEN_URL, **({"clock": clock} if clock else {})
    )


async def test_token_fetch_goes_through_the_transport(
    mocked: Any, make_transport: MakeTransport
) -> None:
    mocked.post(TOKEN_URL, exception=aiohttp.ServerDisconnectedError())
    mocked.post(TOKEN_URL, payload=token_payload("fresh-token"))
    mocked.get(INVOICES, status=200)
    await make_transport(auth=credentials()).send(get())
    _, second = calls(mocked, "POST", TOKEN_URL)
    assert second.kwargs["data"] == (
        b"grant_type=client_credentials&client_id=client-1&client_secret=" + SECRET.encode()
    )
    assert second.kwargs["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert "Authorization" not in second.kwargs["headers"]
    assert "IdempotencyKey" not in second.kwargs["headers"]
    (api_call,) = calls(mocked, "GET", INVOICES)
    assert api_call.kwargs["headers"]["Authorization"] == "Bearer fresh-token"


async def test_token_single_flight_over_a_thousand_sends(
    mocked: Any, make_transport: MakeTransport
) -> None:
    mocked.post(TOKEN_URL, payload=token_payload("shared-token"), repeat=True)
    mocked.get(INVOICES, payload={"data": []}, repeat=True)
    transport = make_transport(auth=credentials())
    responses = await asyncio.gather(*(transport.send(get()) for _ in range(1000)))
    assert len(responses) == 1000
    assert len(calls(mocked, "POST", TOKEN_URL)) == 1
    api_calls = calls(mocked, "GET", INVOICES)
    assert len(api_calls) == 1000
    assert {c.kwargs["headers"]["Authorization"] for c in api_calls} == {"Bearer shared-token"}


async def test_cached_token_is_reused_until_expiry(
    mocked: Any, make_transport: MakeTransport
) -> None:
    now = [1_700_000_000.0]
    mocked.post(TOKEN_URL, payload=token_payload("first", expires_in=3600))
    mocked.post(TOKEN_URL, payload=token_payload("second", expires_in=3600))
    mocked.get(INVOICES, status=200, repeat=True)
    transport = make_transport(auth=credentials(lambda: now[0]))
    await transport.send(get())
    now[0] += 3000
    await transport.send(get())
    now[0] += 600
    await transport.send(get())
    assert len(calls(mocked, "POST", TOKEN_URL)) == 2
    tokens = [c.kwargs["headers"]["Authorization"] for c in calls(mocked, "GET", INVOICES)]
    assert tokens == ["Bearer first", "Bearer first", "Bearer second"]


def answer_by_token(valid: str) -> Callable[..., CallbackResult]:
    """An API that accepts only ``valid`` and answers 401 to any other token."""

    def callback(url: URL, **kwargs: Any) -> CallbackResult:
        ok = kwargs["headers"]["Authorization"] == f"Bearer {valid}"
        return CallbackResult(status=200 if ok else 401, payload={"data": []})

    return callback


async def test_401_refreshes_the_token_and_retries_once(
    mocked: Any, make_transport: MakeTransport, sleeper: SleepRecorder
) -> None:
    mocked.post(TOKEN_URL, payload=token_payload("revoked"))
    mocked.post(TOKEN_URL, payload=token_payload("good"))
    mocked.get(INVOICES, callback=answer_by_token("good"), repeat=True)
    response = await make_transport(auth=credentials()).send(get())
    assert response.status_code == 200
    assert response.attempts == 2
    assert len(calls(mocked, "POST", TOKEN_URL)) == 2
    assert sleeper.delays == []


async def test_second_401_raises(mocked: Any, make_transport: MakeTransport) -> None:
    mocked.post(TOKEN_URL, payload=token_payload("one"))
    mocked.post(TOKEN_URL, payload=token_payload("two"))
    mocked.get(INVOICES, status=401, repeat=True)
    with pytest.raises(AuthenticationError):
        await make_transport(auth=credentials()).send(get(options=RequestOptions(max_retries=5)))
    assert len(calls(mocked, "GET", INVOICES)) == 2
    assert len(calls(mocked, "POST", TOKEN_URL)) == 2


async def test_401_with_a_static_token_is_not_retried(
    mocked: Any, make_transport: MakeTransport
) -> None:
    mocked.get(INVOICES, status=401, repeat=True)
    with pytest.raises(AuthenticationError):
        await make_transport(auth=StaticTokenAuth(STATIC_TOKEN)).send(get())
    assert len(calls(mocked, "GET", INVOICES)) == 1


async def test_concurrent_401s_cause_one_refresh(
    mocked: Any, make_transport: MakeTransport
) -> None:
    mocked.post(TOKEN_URL, payload=token_payload("revoked"))
    mocked.post(TOKEN_URL, payload=token_payload("good"))
    mocked.get(INVOICES, callback=answer_by_token("good"), repeat=True)
    transport = make_transport(auth=credentials())
    responses = await asyncio.gather(*(transport.send(get()) for _ in range(100)))
    assert {response.status_code for response in responses} == {200}
    assert len(calls(mocked, "POST", TOKEN_URL)) == 2


async def test_rejected_client_credentials(mocked: Any, make_transport: MakeTransport) -> None:
    mocked.post(
        TOKEN_URL,
        status=401,
        payload={"error": "invalid_client", "error_description": "bad client"},
    )
    with pytest.raises(AuthenticationError) as caught:
        await make_transport(auth=credentials()).send(get())
    error = caught.value
    assert str(error) == "401 Unauthorized: POST /token: invalid_client - bad client"
    assert SECRET not in str(error)
    assert SECRET not in repr(error)
    assert calls(mocked, "GET", INVOICES) == []


async def test_unreachable_token_endpoint(mocked: Any, make_transport: MakeTransport) -> None:
    mocked.post(TOKEN_URL, exception=aiohttp.ClientConnectionError("refused"), repeat=True)
    with pytest.raises(APIConnectionError) as caught:
        await make_transport(auth=credentials()).send(get())
    assert caught.value.url == TOKEN_URL
    assert len(calls(mocked, "POST", TOKEN_URL)) == 3


# --- the rate limiter's wait counts against the attempt's timeout ------------------------------


class SharedTime:
    """The limiter's and the transport's monotonic clock; it moves only when the head sleeps
    (after letting the others run, so every call arrives at 0)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)
        self.now += seconds


async def test_a_rate_limit_wait_counts_against_the_timeout(
    mocked: Any, make_transport: MakeTransport
) -> None:
    clock = SharedTime()
    mocked.get(INVOICES, status=200, repeat=True)
    transport = make_transport(
        timeout=2.5,
        rate_limiter=FixedRate(1.0, clock=clock, sleep=clock.sleep),
        monotonic=clock,
        sleep=clock.sleep,
    )
    results = await asyncio.gather(
        *(transport.send(get()) for _ in range(5)), return_exceptions=True
    )
    # One a second: the calls starting at 0, 1 and 2 s fit their 2.5 s; the others fail at once.
    assert [type(r).__name__ for r in results] == ["Response"] * 3 + [
        "RateLimitWaitTimeoutError"
    ] * 2
    assert isinstance(results[3], APITimeoutError)
    assert str(results[3]).startswith(
        "GET /collection/v1/orgs/o1/invoices: the client's rate limit"
    )
    # What an attempt waited is taken off its timeout.
    totals = [c.kwargs["timeout"].total for c in calls(mocked, "GET", INVOICES)]
    assert totals == pytest.approx([2.5, 1.5, 0.5])
    assert clock.now == pytest.approx(2.0)


# --- hooks and logging ------------------------------------------------------------------------


async def test_hooks_run_per_attempt(mocked: Any, make_transport: MakeTransport) -> None:
    mocked.post(TOKEN_URL, payload=token_payload("hook-token"))
    mocked.get(INVOICES + "?CustomerNumber=42", status=500)
    mocked.get(INVOICES + "?CustomerNumber=42", status=200)
    seen_requests: list[RequestInfo] = []
    seen_responses: list[Response] = []

    def on_request(info: RequestInfo) -> None:
        seen_requests.append(info)

    async def on_response(response: Response) -> None:
        seen_responses.append(response)

    transport = make_transport(auth=credentials(), on_request=on_request, on_response=on_response)
    await transport.send(get(params={"CustomerNumber": "42"}))
    # The token request is not shown to hooks: its response body is a credential.
    assert [info.attempt for info in seen_requests] == [1, 2]
    assert all(info.url == INVOICES and info.method == "GET" for info in seen_requests)
    assert seen_requests[0].headers["Authorization"] == "<redacted>"
    assert [response.status_code for response in seen_responses] == [500, 200]


async def test_hook_exceptions_propagate(mocked: Any, make_transport: MakeTransport) -> None:
    mocked.get(INVOICES, status=200)

    async def on_request(info: RequestInfo) -> None:
        raise RuntimeError("hook says no")

    with pytest.raises(RuntimeError, match="hook says no"):
        await make_transport(on_request=on_request).send(get())
    assert calls(mocked, "GET", INVOICES) == []


async def test_logs_carry_no_token_secret_body_or_query(
    mocked: Any, make_transport: MakeTransport, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="amili_async")
    cases = f"{BASE_URL}/orgs/o1/cases?CustomerNumber=98765432&SearchTerm=Nordmann"
    mocked.post(TOKEN_URL, payload=token_payload("tok-abc-123"))
    mocked.get(cases, status=503, body=b'{"title": "Kari Nordmann down"}')
    mocked.get(cases, payload={"data": [{"debtor": "Kari Nordmann"}]})
    mocked.post(INVOICES, status=202, payload={"data": {"batchId": "b1"}})
    transport = make_transport(auth=credentials())
    await transport.send(
        get("/orgs/o1/cases", params={"CustomerNumber": "98765432", "SearchTerm": "Nordmann"})
    )
    await transport.send(post(b'{"invoices": [{"debtor": "Ola Hansen"}]}'))
    text = caplog.text
    for forbidden in ("tok-abc-123", SECRET, "98765432", "Nordmann", "Hansen", "Bearer"):
        assert forbidden not in text
    assert "retrying GET /collection/v1/orgs/o1/cases in 0.25 s: 503 Service Unavailable" in text
    assert "GET /collection/v1/orgs/o1/cases -> 200" in text
    assert "POST /token -> 200" in text
    assert "POST /collection/v1/orgs/o1/invoices -> 202" in text


# --- lifecycle --------------------------------------------------------------------------------


async def test_closed_transport_raises(mocked: Any, make_transport: MakeTransport) -> None:
    mocked.get(INVOICES, status=200)
    transport = make_transport()
    await transport.send(get())
    await transport.aclose()
    await transport.aclose()
    assert transport.closed
    with pytest.raises(AmiliError, match="client is closed"):
        await transport.send(get())


async def test_closing_an_unused_transport(make_transport: MakeTransport) -> None:
    transport = make_transport()
    await transport.aclose()
    with pytest.raises(AmiliError, match="client is closed"):
        await transport.send(get())


async def test_callers_session_is_used_and_left_open(
    mocked: Any, make_transport: MakeTransport
) -> None:
    mocked.get(INVOICES, status=200)
    async with aiohttp.ClientSession() as session:
        transport = make_transport(session=session)
        await transport.send(get())
        await transport.aclose()
        assert not session.closed
    assert len(calls(mocked, "GET", INVOICES)) == 1


# --- against a real local server --------------------------------------------------------------


@pytest.fixture
async def server() -> AsyncIterator[tuple[TestServer, dict[str, Any]]]:
    state: dict[str, Any] = {"release": asyncio.Event(), "truncated": 0, "seen": []}

    async def echo(request: web.Request) -> web.Response:
        state["seen"].append((request.raw_path, dict(request.query)))
        return web.json_response({"ok": True}, headers={"X-Amili-Request-Id": "srv-1"})

    async def hang(request: web.Request) -> web.Response:
        await state["release"].wait()
        return web.json_response({})

    async def truncated(request: web.Request) -> web.StreamResponse:
        state["truncated"] += 1
        if state["truncated"] > 1:
            return web.json_response({"ok": True})
        response = web.StreamResponse(headers={"Content-Length": "100"})
        await response.prepare(request)
        await response.write(b'{"ok": ')
        assert request.transport is not None
        request.transport.close()
        return response

    app = web.Application()
    app.router.add_get("/collection/v1/orgs/{org}/echo", echo)
    app.router.add_get("/collection/v1/hang", hang)
    app.router.add_get("/collection/v1/truncated", truncated)
    test_server = TestServer(app)
    await test_server.start_server()
    try:
        yield test_server, state
    finally:
        state["release"].set()
        await test_server.close()


def base_url_of(test_server: TestServer) -> str:
    return str(test_server.make_url("/collection/v1"))


async def test_real_wire_quoting_and_traces(
    server: tuple[TestServer, dict[str, Any]], make_transport: MakeTransport
) -> None:
    test_server, state = server
    started: list[str] = []

    async def on_request_start(session: Any, context: Any, params: Any) -> None:
        started.append(params.method)

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_request_start)
    transport = make_transport(base_url=base_url_of(test_server), trace_configs=[trace])
    response = await transport.send(
        Request(
            "GET",
            "/orgs/a%2Fb/echo",
            params={"From": "2024-01-01T00:00:00+01:00", "SearchTerm": "Ø & ="},
        )
    )
    assert orjson.loads(response.content) == {"ok": True}
    assert response.request_id == "srv-1"
    ((raw_path, query),) = state["seen"]
    assert raw_path.startswith("/collection/v1/orgs/a%2Fb/echo?")
    assert query == {"From": "2024-01-01T00:00:00+01:00", "SearchTerm": "Ø & ="}
    assert started == ["GET"]


async def test_real_per_call_timeout(
    server: tuple[TestServer, dict[str, Any]], make_transport: MakeTransport
) -> None:
    test_server, _ = server
    transport = make_transport(base_url=base_url_of(test_server))
    with pytest.raises(APITimeoutError) as caught:
        await transport.send(
            Request("GET", "/hang", options=RequestOptions(timeout=0.05, max_retries=0))
        )
    assert str(caught.value) == "GET /collection/v1/hang timed out"


async def test_real_truncated_body_is_retried(
    server: tuple[TestServer, dict[str, Any]],
    make_transport: MakeTransport,
    sleeper: SleepRecorder,
) -> None:
    test_server, state = server
    transport = make_transport(base_url=base_url_of(test_server))
    response = await transport.send(Request("GET", "/truncated"))
    assert orjson.loads(response.content) == {"ok": True}
    assert response.attempts == 2
    assert state["truncated"] == 2
    assert sleeper.delays == [0.25]


# --- configuration and request helpers --------------------------------------------------------


def test_named_environments() -> None:
    assert resolve_environment("staging") == ENVIRONMENTS["staging"]
    production = resolve_environment()
    assert production.api_base_url == "https://api.amili.no/collection/v1"
    assert production.token_url == "https://auth.amili.no/token"
    assert origin_of(production.api_base_url) == "https://api.amili.no"


def test_custom_base_url() -> None:
    env = resolve_environment("production", "http://127.0.0.1:8123/collection/v1/")
    assert env.api_base_url == "http://127.0.0.1:8123/collection/v1"
    assert env.token_url == "http://127.0.0.1:8123/token"
    assert origin_of(env.api_base_url) == "http://127.0.0.1:8123"
    explicit = resolve_environment("staging", "https://proxy.example/v1", "https://idp.example/t")
    assert explicit.token_url == "https://idp.example/t"


@pytest.mark.parametrize(
    ("environment", "base_url", "token_url", "message"),
    [
        ("qa", None, None, "unknown environment 'qa'"),
        ("production", "ftp://x/collection/v1", None, "base_url must be an absolute"),
        ("production", "/collection/v1", None, "base_url must be an absolute"),
        ("production", "https://x/v1?a=1", None, "must not carry a query"),
        ("production", None, "auth.example/token", "token_url must be an absolute"),
    ],
)
def test_invalid_environment_settings(
    environment: str, base_url: str | None, token_url: str | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_environment(environment, base_url, token_url)


def test_encode_multipart_round_trips() -> None:
    body, content_type = encode_multipart(
        {"senderid": "s1", 'we"ird': "v"},
        {"file": ('report "final".pdf', b"%PDF-1.4\r\n\x00\xff", "application/pdf")},
    )
    assert content_type.startswith("multipart/form-data; boundary=")
    message = email.message_from_bytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body, policy=email.policy.HTTP
    )
    parts = list(message.iter_parts())
    assert [part.get_param("name", header="content-disposition") for part in parts] == [
        "senderid",
        "we%22ird",
        "file",
    ]
    assert parts[0].get_content() == "s1"
    assert parts[2].get_filename() == "report %22final%22.pdf"
    assert parts[2].get_content_type() == "application/pdf"
    assert parts[2].get_payload(decode=True) == b"%PDF-1.4\r\n\x00\xff"


def test_encode_multipart_boundaries_differ() -> None:
    assert encode_multipart({}, {})[1] != encode_multipart({}, {})[1]


async def test_a_free_connection_slot_is_taken_without_jumping_the_queue() -> None:
    from amili_async._transport import _Slots

    slots = _Slots(1)
    assert slots.take()  # free and nobody waits: taken at once, no coroutine
    assert not slots.take()  # none left
    waiter = asyncio.ensure_future(slots.acquire())
    await asyncio.sleep(0)  # the waiter queues
    slots.release()  # the slot is the waiter's now (FIFO), not for a newcomer's take()
    assert not slots.take()
    assert await waiter is True
    slots.release()
    assert slots.take()
