"""Every wait and every read is bounded, whatever the server does.

What it proves, against small servers on 127.0.0.1 that misbehave on purpose:

- `max_response_size`: a body announced larger (Content-Length) or streaming without end
  (chunked) raises ResponseTooLargeError after reading at most about the limit: the server
  counts what it managed to send before the client hung up, far below what it would send;
  a body of exactly the limit is read, one byte more is not;
- a listing whose server repeats a page token raises RepeatedPageTokenError carrying the
  resume token, after a bounded number of requests, with and without prefetch;
- time queued for one of `max_connections` slots never times a call out: 24 calls through 2
  connections, each attempt's timeout below the queue the last call waits behind (counted);
- `deadline=` bounds the whole call (attempts and retries): APITimeoutError while the server
  still hangs; `retry_for=` keeps retrying past `max_retries` for that long, and no longer.
  Retry decisions run on a virtual clock (the transport's injected `monotonic` and `sleep`):
  no assertion here depends on how fast the machine is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from aiohttp import web

from amili_async import (
    APITimeoutError,
    RepeatedPageTokenError,
    ResponseTooLargeError,
    ServiceUnavailableError,
)

from .conftest import local_server

ORG = "org-1"
LIMIT = 1024 * 1024
CHUNK = 64 * 1024
ENDLESS = 256 * 1024 * 1024
"""What the "endless" body would send if the client never hung up (a safety stop)."""
HANG_GUARD = 60.0
"""Seconds before a test that would otherwise hang fails instead: a bound far above what any
of these calls takes even on a loaded machine, never a margin the assertion depends on."""
BUFFERED = 32 * 1024 * 1024
"""Generous bound of what socket buffers can absorb on loopback beyond what the client read."""


def _invoice_body(size: int | None = None) -> bytes:
    """An InvoiceEnvelope, padded with trailing whitespace to exactly `size` bytes."""
    body = orjson.dumps({"data": {"id": "inv-1", "currency": "NOK"}})
    return body if size is None else body + b" " * (size - len(body))


class _Sender:
    """Counts the bytes a handler got onto the wire before the client went away."""

    def __init__(self) -> None:
        self.sent = 0
        self.requests = 0
        self.done = asyncio.Event()

    async def stream(
        self, request: web.Request, total: int, *, content_length: bool
    ) -> web.StreamResponse:
        self.requests += 1
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        if content_length:
            response.content_length = total
        else:
            response.enable_chunked_encoding()
        chunk = b" " * CHUNK
        try:
            await response.prepare(request)
            while self.sent < total:
                await response.write(chunk)
                self.sent += len(chunk)
        except (ConnectionError, RuntimeError):
            pass  # the client hung up: what we measure
        finally:
            self.done.set()
        return response


@pytest.mark.parametrize("content_length", [True, False], ids=["content-length", "chunked"])
async def test_an_oversized_body_is_refused_without_being_buffered(content_length: bool) -> None:
    sender = _Sender()
    app = web.Application()

    async def handler(request: web.Request) -> web.StreamResponse:
        return await sender.stream(request, ENDLESS, content_length=content_length)

    app.router.add_get("/collection/v1/orgs/{org}/invoices/{id}", handler)
    async with local_server(app) as server, server.client(max_response_size=LIMIT) as client:
        with pytest.raises(ResponseTooLargeError) as caught:
            await client.invoices.get(ORG, "huge")
        async with asyncio.timeout(HANG_GUARD):
            await sender.done.wait()  # the server noticed the client hung up

    assert caught.value.limit == LIMIT
    assert sender.requests == 1  # never retried
    assert sender.sent < BUFFERED < ENDLESS, f"the server sent {sender.sent:,} bytes"


@pytest.mark.parametrize("content_length", [True, False], ids=["content-length", "chunked"])
async def test_a_body_of_exactly_the_limit_is_read_one_byte_more_is_not(
    content_length: bool,
) -> None:
    limit = 200_000
    app = web.Application()

    async def handler(request: web.Request) -> web.StreamResponse:
        body = _invoice_body(int(request.match_info["size"]))
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        if content_length:
            response.content_length = len(body)
        else:
            response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(body), 50_000):
            await response.write(body[start : start + 50_000])
        await response.write_eof()
        return response

    app.router.add_get("/collection/v1/orgs/{org}/invoices/{size}", handler)
    async with local_server(app) as server, server.client(max_response_size=limit) as client:
        invoice = await client.invoices.get(ORG, str(limit))
        assert invoice.id == "inv-1"
        with pytest.raises(ResponseTooLargeError):
            await client.invoices.get(ORG, str(limit + 1))


# --------------------------------------------------------------------------- page tokens


def _paging_app(next_token: Callable[[str | None], str], requests: list[str | None]) -> Any:
    app = web.Application()

    async def handler(request: web.Request) -> web.Response:
        token = request.query.get("PageToken")
        requests.append(token)
        body = {
            "data": [{"id": f"inv-{len(requests)}"}],
            "summary": {"nextPageToken": next_token(token)},
        }
        return web.json_response(body)

    app.router.add_get("/collection/v1/orgs/{org}/invoices", handler)
    return app


@pytest.mark.parametrize("prefetch", [0, 1, 3])
@pytest.mark.parametrize(
    ("start", "answers", "expected_requests", "resume"),
    [
        (None, {None: "T", "T": "T"}, [None, "T"], "T"),  # the same token forever
        (None, {None: "A", "A": "B", "B": "A"}, [None, "A", "B"], "B"),  # a cycle
        ("A", {"A": "A"}, ["A"], "A"),  # resumed at a token that names itself
    ],
    ids=["same", "cycle", "resumed"],
)
async def test_a_repeated_page_token_raises_with_the_resume_token(
    prefetch: int,
    start: str | None,
    answers: dict[str | None, str],
    expected_requests: list[str | None],
    resume: str,
) -> None:
    requests: list[str | None] = []
    seen: list[str] = []
    async with (
        local_server(_paging_app(answers.__getitem__, requests)) as server,
        server.client() as client,
    ):
        pager = client.invoices.list(ORG, page_token=start, prefetch=prefetch)

        async def consume() -> None:
            async with asyncio.timeout(10):
                async for invoice in pager:
                    seen.append(invoice.id)

        with pytest.raises(RepeatedPageTokenError) as caught:
            await consume()

    assert caught.value.resume_token == resume
    assert requests == expected_requests  # bounded: the repeat is never followed
    assert seen == [f"inv-{n}" for n in range(1, len(expected_requests) + 1)]


# --------------------------------------------------------------------------- time limits


async def test_waiting_for_a_connection_slot_does_not_time_calls_out() -> None:
    calls = 24
    served = 0
    app = web.Application()

    async def handler(request: web.Request) -> web.Response:
        nonlocal served
        served += 1
        return web.Response(body=_invoice_body(), content_type="application/json")

    app.router.add_get("/collection/v1/orgs/{org}/invoices/{id}", handler)
    timeout = 30.0  # an attempt's timeout: no request on loopback comes near it
    loop = asyncio.get_running_loop()
    real_time = loop.time
    skipped = 0.0  # loop time the test moves on while every call waits for a slot

    async with (
        local_server(app) as server,
        server.client(max_connections=2, timeout=timeout, max_retries=0) as client,
    ):
        # Counted, not timed: the test takes both connection slots itself and counts the
        # calls that come to wait for one (the transport's gate: `_transport._slots()`).
        gate = client._transport._slots()
        for _ in range(2):
            await gate.acquire()
        waiting = asyncio.Condition()
        arrived = 0
        take_slot = gate.acquire

        async def counted_acquire() -> bool:
            nonlocal arrived
            async with waiting:
                arrived += 1
                waiting.notify_all()
            return await take_slot()

        gate.acquire = counted_acquire  # type: ignore[method-assign,assignment]
        gets = [asyncio.ensure_future(client.invoices.get(ORG, str(n))) for n in range(calls)]
        async with waiting:
            await waiting.wait_for(lambda: arrived == calls)
        # Every call now waits for a slot. The loop's clock (aiohttp's timeouts run on it)
        # moves on by ten attempt timeouts: a timeout started before the slot would fire.
        loop.time = lambda: real_time() + skipped  # type: ignore[method-assign]
        try:
            skipped = 10 * timeout
            await asyncio.sleep(0)  # one loop pass: timers now due would run here
            assert not any(get.done() for get in gets)
            for _ in range(2):
                gate.release()
            invoices = await asyncio.gather(*gets)
        finally:
            del loop.time  # the loop's own clock again

    assert [i.id for i in invoices] == ["inv-1"] * calls
    assert served == calls  # no retry hid a timeout: max_retries=0


async def test_deadline_bounds_a_call_against_a_hanging_server() -> None:
    release = asyncio.Event()
    requests = 0
    app = web.Application()

    async def handler(request: web.Request) -> web.Response:
        nonlocal requests
        requests += 1
        await release.wait()
        return web.Response(body=_invoice_body(), content_type="application/json")

    app.router.add_get("/collection/v1/orgs/{org}/invoices/{id}", handler)
    async with local_server(app) as server:
        try:
            # Only the deadline can end this call: the attempt's timeout is an hour, and the
            # guard (far from both) fails the test, instead of hanging, if the deadline did not.
            async with server.client(timeout=3600, deadline=0.5, max_retries=5) as client:
                async with asyncio.timeout(HANG_GUARD):
                    with pytest.raises(APITimeoutError):
                        await client.invoices.get(ORG, "slow")
                assert not release.is_set()  # the server still hangs: the deadline ended it
        finally:
            release.set()

    assert requests == 1  # the attempt had the whole deadline; no retry fits after it


async def test_deadline_bounds_a_call_whose_retries_would_exceed_it() -> None:
    server_time = 0.15
    requests = 0
    app = web.Application()

    clock = _VirtualTime()

    async def handler(request: web.Request) -> web.Response:
        nonlocal requests
        requests += 1
        clock.now += server_time  # the server's own processing time, on the virtual clock
        return web.json_response({"title": "busy"}, status=503, headers={"Retry-After": "0"})

    app.router.add_get("/collection/v1/orgs/{org}/invoices/{id}", handler)
    async with (
        local_server(app) as server,
        server.client(timeout=30, deadline=0.7, max_retries=100) as client,
    ):
        clock.drive(client)
        # The deadline passed mid-attempt (APITimeoutError), or the next try could not fit
        # before it and the last answer is handed back: either way no retry outlives it.
        with pytest.raises((APITimeoutError, ServiceUnavailableError)):
            await client.invoices.get(ORG, "busy")

    assert clock.now >= 0.7 - server_time  # it gave up only once the next try could not fit
    assert 2 <= requests <= 0.7 / server_time + 1  # it retried, within the deadline only


class _VirtualTime:
    """A virtual monotonic clock for a client's retry decisions: the client's waits (backoff,
    Retry-After) advance it instead of passing, and a server handler may advance it too.

    It drives the transport's own injection points (its constructor takes `monotonic` and
    `sleep`; the client builds the transport, so they are set on it here), so deadlines and
    retry budgets are checked in counted steps, never against the wall clock.
    """

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)  # still a pause: other tasks run

    def drive(self, client: Any) -> _VirtualTime:
        transport = client._transport
        transport._monotonic = self.monotonic
        transport._sleep = self.sleep
        return self


def _outage_app(failures: int, retry_after: str, count: list[int]) -> web.Application:
    """503 (with Retry-After) for the first `failures` requests, then the invoice."""
    app = web.Application()

    async def handler(request: web.Request) -> web.Response:
        count[0] += 1
        if count[0] <= failures:
            headers = {"Retry-After": retry_after}
            return web.json_response({"title": "down"}, status=503, headers=headers)
        return web.Response(body=_invoice_body(), content_type="application/json")

    app.router.add_get("/collection/v1/orgs/{org}/invoices/{id}", handler)
    return app


async def test_retry_for_keeps_retrying_past_max_retries_until_the_server_recovers() -> None:
    count = [0]
    async with local_server(_outage_app(12, "0", count)) as server:
        async with server.client(max_retries=1) as client:
            with pytest.raises(ServiceUnavailableError):
                await client.invoices.get(ORG, "x")
        assert count == [2]
        async with server.client(max_retries=1, retry_for=30) as client:
            _VirtualTime().drive(client)  # retry_for counts the waits, not the machine's speed
            invoice = await client.invoices.get(ORG, "x")

    assert invoice.id == "inv-1"
    assert count == [13]


async def test_retry_for_stops_retrying_once_its_time_is_spent() -> None:
    count = [0]
    async with (
        local_server(_outage_app(10_000, "0.05", count)) as server,
        server.client(max_retries=1, retry_for=0.5) as client,
    ):
        clock = _VirtualTime().drive(client)
        with pytest.raises(ServiceUnavailableError):
            await client.invoices.get(ORG, "x")

    assert clock.now >= 0.5 - 0.05  # retried until the next wait would pass retry_for
    assert 3 <= count[0] <= 0.5 / 0.05 + 2  # past max_retries (1 retry), bounded by the time


@pytest.mark.parametrize(
    "retry_budget",
    [
        True,
        False,
    ],
    ids=["default-budget", "no-budget"],
)
async def test_retry_for_rides_out_an_outage_of_many_quick_retries(retry_budget: bool) -> None:
    count = [0]
    async with (
        local_server(_outage_app(150, "0", count)) as server,
        server.client(max_retries=2, retry_for=30, retry_budget=retry_budget) as client,
    ):
        _VirtualTime().drive(client)  # retry_for counts the waits, not the machine's speed
        invoice = await client.invoices.get(ORG, "x")

    assert invoice.id == "inv-1"
    assert count == [151]
