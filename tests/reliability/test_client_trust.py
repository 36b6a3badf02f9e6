"""The client against servers that try to make it misbehave (issue 20, items 11 to 14).

- 20.11 `max_response_size` bounds the decoded body whatever the framing: a small gzip or
  deflate body (true Content-Length) that inflates past the limit is refused while it is read,
  never inflated in memory;
- 20.12 with `rate_limit="adaptive"` against a server answering 429 forever, the limiter's
  wait counts against the call's deadline: no call outlives it, and a call that cannot start
  in time fails at once with RateLimitWaitTimeoutError (an injected clock: no wall-clock
  margin anywhere);
- 20.13 cookies set by the token endpoint and by API answers (errors included) are never sent
  back;
- 20.14 a token answer's `expires_in` of any numeric form (3600.0, "3600", 1e400, 10**400,
  "inf", -5) or an unreadable one ("soon") never breaks a call.
"""

from __future__ import annotations

import asyncio
import gzip
import tracemalloc
import zlib
from collections.abc import Callable

import orjson
import pytest
from aiohttp import web

from amili_async import AmiliClient, RateLimitError, ResponseTooLargeError
from amili_async._auth import StaticTokenAuth
from amili_async._ratelimit import AdaptiveRate
from amili_async._request import Request
from amili_async._response import raise_for_status
from amili_async._retry import RetryPolicy
from amili_async._transport import Transport
from amili_async.errors import AmiliError, RateLimitWaitTimeoutError

from .conftest import local_server

ORG = "org-1"
INVOICE_PATH = "/collection/v1/orgs/{org}/invoices/{id}"
LIMIT = 1024 * 1024


def _invoice_body(size: int) -> bytes:
    """An InvoiceEnvelope padded with trailing whitespace to exactly `size` bytes."""
    body = orjson.dumps({"data": {"id": "inv-1", "currency": "NOK"}})
    return body + b" " * (size - len(body))


def _deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


ENCODERS: dict[str, Callable[[bytes], bytes]] = {"gzip": gzip.compress, "deflate": _deflate}


def _encoded_app(encoding: str, *, chunked: bool) -> web.Application:
    """Invoice `{id}` is a body of `{id}` decoded bytes, sent compressed."""
    app = web.Application()

    async def handler(request: web.Request) -> web.StreamResponse:
        encoded = ENCODERS[encoding](_invoice_body(int(request.match_info["id"])))
        response = web.StreamResponse(
            headers={"Content-Type": "application/json", "Content-Encoding": encoding}
        )
        if chunked:
            response.enable_chunked_encoding()
        else:
            response.content_length = len(encoded)  # the true, compressed length
        await response.prepare(request)
        await response.write(encoded)
        await response.write_eof()
        return response

    app.router.add_get(INVOICE_PATH, handler)
    return app


FRAMINGS = [("gzip", False), ("deflate", False), ("gzip", True), ("deflate", True)]
FRAMING_IDS = ["gzip-content-length", "deflate-content-length", "gzip-chunked", "deflate-chunked"]


@pytest.mark.parametrize(("encoding", "chunked"), FRAMINGS, ids=FRAMING_IDS)
async def test_a_compressed_body_is_limited_by_its_decoded_size(
    encoding: str, chunked: bool
) -> None:
    async with (
        local_server(_encoded_app(encoding, chunked=chunked)) as server,
        server.client(max_response_size=LIMIT, max_retries=3) as client,
    ):
        assert (await client.invoices.get(ORG, str(LIMIT))).id == "inv-1"  # exactly the limit
        with pytest.raises(ResponseTooLargeError) as caught:
            await client.invoices.get(ORG, str(LIMIT + 1))
    assert caught.value.limit == LIMIT
    assert "max_response_size" in str(caught.value)


async def test_a_gzip_bomb_is_dropped_while_it_inflates() -> None:
    """64 MiB of JSON whitespace gzip to ~64 KB (compressed before the measurement, so only
    the client allocates while it is measured): it stops near the 1 MiB limit."""
    inflated = 64 * LIMIT
    bomb = gzip.compress(_invoice_body(inflated))
    app = web.Application()

    async def handler(request: web.Request) -> web.Response:
        return web.Response(
            body=bomb, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}
        )

    app.router.add_get(INVOICE_PATH, handler)
    async with local_server(app) as server, server.client(max_response_size=LIMIT) as client:
        tracemalloc.start()
        try:
            with pytest.raises(ResponseTooLargeError):
                await client.invoices.get(ORG, "bomb")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 8 * LIMIT, f"the client held {peak:,} bytes at its peak"


# --------------------------------------------------------------------------- 20.12


class VirtualTime:
    """The limiter's and the transport's monotonic clock: it moves only when they sleep.

    Backoff is zero (rng 0) and the server sends no Retry-After, so the only sleeper is the
    limiter's head: the clock moves exactly as far as queued calls really had to wait.
    """

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


async def test_adaptive_rate_limit_waits_count_against_the_deadline() -> None:
    deadline = 3.0
    requests = 0
    app = web.Application()

    async def throttled(request: web.Request) -> web.Response:
        nonlocal requests
        requests += 1
        return web.json_response({"title": "Too Many Requests"}, status=429)

    app.router.add_get(INVOICE_PATH, throttled)
    clock = VirtualTime()
    async with local_server(app) as server:
        transport = Transport(
            base_url=server.base_url,
            auth=StaticTokenAuth("static-test-token"),
            timeout=60.0,
            retry=RetryPolicy(max_retries=10_000),  # only the deadline ends the retries
            max_connections=100,
            user_agent="amili-async-tests/0",
            deadline=deadline,
            rate_limiter=AdaptiveRate(clock=clock, sleep=clock.sleep),
            sleep=clock.sleep,
            rng=lambda: 0.0,
            monotonic=clock,
        )

        async def call(n: int) -> tuple[float, float, AmiliError]:
            started = clock()
            try:
                raise_for_status(await transport.send(Request("GET", f"/orgs/{ORG}/invoices/{n}")))
            except AmiliError as error:
                return started, clock(), error
            raise AssertionError("a server answering 429 forever cannot succeed")

        try:
            outcomes = await asyncio.gather(*(call(n) for n in range(30)))
        finally:
            await transport.aclose()

    for started, ended, error in outcomes:
        assert ended - started <= deadline, (ended - started, repr(error))
        assert isinstance(error, RateLimitWaitTimeoutError | RateLimitError), repr(error)
    late = [error for _, _, error in outcomes if isinstance(error, RateLimitWaitTimeoutError)]
    assert late, "some calls must have been refused a start"
    assert "rate limit" in str(late[0])
    assert "it was not sent" in str(late[0])
    # One unthrottled burst (30) before the first 429, then only a few more (32 measured):
    # not one request per retry the calls' max_retries would allow.
    assert requests <= 2 * 30


# --------------------------------------------------------------------------- 20.13


async def test_cookies_from_token_and_api_answers_are_never_sent_back() -> None:
    cookies_seen: list[str] = []
    app = web.Application()

    async def token(request: web.Request) -> web.Response:
        cookies_seen.append(request.headers.get("Cookie", ""))
        response = web.json_response({"access_token": "tok", "expires_in": 3600})
        response.set_cookie("token_session", "secret-from-token-endpoint")
        return response

    async def invoice(request: web.Request) -> web.Response:
        cookies_seen.append(request.headers.get("Cookie", ""))
        fail = request.match_info["id"] == "fail"
        response = web.json_response(
            {"title": "Oops"} if fail else {"data": {"id": "inv-1", "currency": "NOK"}},
            status=500 if fail else 200,
        )
        response.set_cookie("api_session", "secret-from-api")
        return response

    app.router.add_post("/token", token)
    app.router.add_get(INVOICE_PATH, invoice)
    async with local_server(app) as server:
        # "localhost", not an IP address: a cookie jar would keep cookies for it.
        base_url = f"http://localhost:{server.port}/collection/v1"
        async with AmiliClient(
            client_id="id", client_secret="secret", base_url=base_url, max_retries=1
        ) as client:
            await client.invoices.get(ORG, "inv-1")
            with pytest.raises(AmiliError):
                await client.invoices.get(ORG, "fail")
            await client.invoices.get(ORG, "inv-1")
    assert len(cookies_seen) == 5  # token, ok, fail twice (one retry), ok
    assert cookies_seen == [""] * 5


# --------------------------------------------------------------------------- 20.14


@pytest.mark.parametrize(
    "expires_in",
    [b"3600.0", b'"3600.0"', b'"3600"', b"1e400", b"9" * 400, b'"inf"', b"-5", b'"soon"'],
    ids=["float", "float-text", "int-text", "1e400", "huge-int", "inf", "negative", "garbage"],
)
async def test_any_expires_in_leaves_calls_working(expires_in: bytes) -> None:
    tokens_sent: list[str] = []
    app = web.Application()

    async def token(request: web.Request) -> web.Response:
        body = b'{"access_token": "tok-1", "token_type": "Bearer", "expires_in": ' + expires_in
        return web.Response(body=body + b"}", content_type="application/json")

    async def invoice(request: web.Request) -> web.Response:
        tokens_sent.append(request.headers["Authorization"])
        return web.json_response({"data": {"id": "inv-1", "currency": "NOK"}})

    app.router.add_post("/token", token)
    app.router.add_get(INVOICE_PATH, invoice)
    async with (
        local_server(app) as server,
        AmiliClient(client_id="id", client_secret="secret", base_url=server.base_url) as client,
    ):
        for _ in range(2):
            assert (await client.invoices.get(ORG, "inv-1")).id == "inv-1"
    assert tokens_sent == ["Bearer tok-1"] * 2
