"""The webhook receiver against a hostile sender: replays, hung callbacks, slow and greedy
clients (issue 20, items 3-5).

What it proves:

- 20.3 a captured delivery replayed with a new `IdempotencyKey`, without one, or inside the
  timestamp window is not processed again, and a replay carrying a later delivery's key does
  not make that genuine later event be dropped: de-duplication is on what the signature covers;
- 20.4 a callback that hangs is answered 500 after `callback_timeout` and its claim released, so
  the redelivery is processed; a claim whose holder hangs past its lease (injected clock) is
  taken over instead of answering 503 forever;
- 20.5 the receiver (`WebhookReceiver`, which backs `webhooks listen`, and `GuardedSite` for a
  mounted handler) cuts a connection that does not send its headers in time, answers a body
  that trickles 408, refuses a body over 1 MiB with 413 before reading it, refuses connections
  over its limit with 503, and serves a genuine delivery again once idle connections are gone,
  also in a `webhooks listen` process whose file descriptors are capped below the flood.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from amili_async import webhooks

from .conftest import CHILD_TIMEOUT, wait_until

SECRET = "whsec-reliability"
TIMESTAMP_HEADER = "X-Webhook-Timestamp"


def case_body(event_id: str | None = None) -> bytes:
    """A signed-able CASE event; a fresh id unless given."""
    payload: dict[str, Any] = {
        "eventType": "CASE",
        "source": "COLLECTION",
        "timeStamp": "2025-08-15T11:42:00Z",
        "data": {"orgId": "org-1", "caseId": str(uuid.uuid4()), "status": "OPEN"},
    }
    payload["id"] = event_id if event_id is not None else str(uuid.uuid4())
    return orjson.dumps(payload)


def signed(body: bytes, key: str | None, timestamp: str | None = None) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "X-Webhook-Signature": webhooks.compute_signature(body, SECRET, timestamp),
    }
    if key is not None:
        headers["IdempotencyKey"] = key
    if timestamp is not None:
        headers[TIMESTAMP_HEADER] = timestamp
    return headers


async def post(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
) -> tuple[int, str]:
    async with session.post(url, data=body, headers=headers) as response:
        return response.status, await response.text()


async def attempt(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
) -> int | str:
    """One delivery attempt's status, or the connection error's name: a connection refused
    over the limit may be reset before the client reads its 503."""
    try:
        return (await post(session, url, body, headers))[0]
    except aiohttp.ClientConnectionError as error:
        return type(error).__name__


@contextlib.asynccontextmanager
async def receiving(**kwargs: Any) -> AsyncIterator[tuple[webhooks.WebhookReceiver, list[Any]]]:
    kwargs.setdefault("secret", SECRET)
    async with webhooks.WebhookReceiver(**kwargs) as receiver:
        yield receiver, receiver.events


# --------------------------------------------------------------------------- 20.3 replay


async def test_a_replay_under_a_new_key_or_none_is_not_processed_again() -> None:
    now = 1_700_000_000
    verifier = webhooks.HmacSha256Verifier(
        SECRET, timestamp_header=TIMESTAMP_HEADER, clock=lambda: now + 10
    )
    async with receiving(secret=None, verifier=verifier) as (receiver, events):
        body = case_body()
        stamp = str(now)  # captured and replayed 10 s later: inside the 300 s window
        async with aiohttp.ClientSession() as session:
            assert await post(session, receiver.url, body, signed(body, "k-1", stamp)) == (
                200,
                "ok",
            )
            for key in ("k-replayed", None, ""):
                status, text = await post(session, receiver.url, body, signed(body, key, stamp))
                assert (status, text) == (200, "duplicate")
    assert len(events) == 1


async def test_a_replay_under_a_later_key_does_not_drop_the_later_event() -> None:
    async with receiving() as (receiver, events):
        first, later = case_body(), case_body()
        async with aiohttp.ClientSession() as session:
            assert (await post(session, receiver.url, first, signed(first, "k-1")))[0] == 200
            # The attacker replays the first delivery under the key Amili will use next.
            assert await post(session, receiver.url, first, signed(first, "k-2")) == (
                200,
                "duplicate",
            )
            assert await post(session, receiver.url, later, signed(later, "k-2")) == (200, "ok")
    assert [event.id for event in events] == [
        orjson.loads(first)["id"],
        orjson.loads(later)["id"],
    ]


async def test_payloads_without_an_id_are_told_apart_by_their_signed_bytes() -> None:
    async with receiving() as (receiver, events):
        one = b'{"eventType": "CASE", "data": {"orgId": "o", "caseId": "c-1"}}'
        two = b'{"eventType": "CASE", "data": {"orgId": "o", "caseId": "c-2"}}'
        async with aiohttp.ClientSession() as session:
            for body, key in ((one, "k"), (one, "other"), (two, "k"), (two, None)):
                assert (await post(session, receiver.url, body, signed(body, key)))[0] == 200
    assert [event.data.case_id for event in events] == ["c-1", "c-2"]


# --------------------------------------------------------------------------- 20.4 hung callback


async def test_a_hung_callback_times_out_with_500_and_the_redelivery_is_processed() -> None:
    hang = asyncio.Event()  # never set: the first call hangs until cancelled
    calls: list[Any] = []

    async def on_event(event: Any) -> None:
        calls.append(event)
        if len(calls) == 1:
            await hang.wait()

    async with receiving(on_event=on_event, callback_timeout=0.05) as (receiver, events):
        body = case_body()
        async with aiohttp.ClientSession() as session:
            assert await post(session, receiver.url, body, signed(body, "k")) == (
                500,
                "callback failed",
            )
            assert await post(session, receiver.url, body, signed(body, "k")) == (200, "ok")
            assert await post(session, receiver.url, body, signed(body, "k")) == (
                200,
                "duplicate",
            )
    assert len(calls) == 2
    assert len(events) == 1


async def test_a_claim_past_its_lease_is_taken_over_instead_of_503_forever() -> None:
    now = [1000.0]
    store = webhooks.MemoryDedupeStore(lease=300, clock=lambda: now[0])
    release = asyncio.Event()
    started = asyncio.Event()
    calls: list[Any] = []

    async def on_event(event: Any) -> None:
        calls.append(event)
        if len(calls) == 1:
            started.set()
            await release.wait()  # hangs (no callback timeout) until the test lets it go

    async with receiving(on_event=on_event, dedupe=store, callback_timeout=None) as (
        receiver,
        _,
    ):
        body = case_body()
        async with aiohttp.ClientSession() as session:
            hung = asyncio.create_task(post(session, receiver.url, body, signed(body, "k")))
            async with asyncio.timeout(CHILD_TIMEOUT):
                await started.wait()
            now[0] += 299  # still leased: the redelivery is told to come back
            assert (await post(session, receiver.url, body, signed(body, "k")))[0] == 503
            now[0] += 2  # the lease expired: the claim is abandoned and taken over
            assert await post(session, receiver.url, body, signed(body, "k")) == (200, "ok")
            assert await post(session, receiver.url, body, signed(body, "k")) == (
                200,
                "duplicate",
            )
            release.set()
            assert (await hung)[0] == 200
    assert len(calls) == 2


def test_bounds_are_checked() -> None:
    with pytest.raises(ValueError, match="lease"):
        webhooks.MemoryDedupeStore(lease=0)
    with pytest.raises(ValueError, match="max_body_size"):
        webhooks.webhook_handler(print, secret=SECRET, max_body_size=0)
    app = web.Application()
    with pytest.raises(ValueError, match="max_connections"):
        webhooks.GuardedSite(web.AppRunner(app), "127.0.0.1", 0, max_connections=0)


# --------------------------------------------------------------------------- 20.5 slow and greedy


async def raw_exchange(port: int, data: bytes) -> bytes:
    """Send `data` on a fresh connection and read until the server closes it (b"" when it
    closes without an answer, also by a reset)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(CHILD_TIMEOUT):
            return await reader.read()
    except ConnectionResetError:
        return b""
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def head(receiver: webhooks.WebhookReceiver, *lines: str) -> bytes:
    text = f"POST {receiver.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n" + "".join(
        line + "\r\n" for line in lines
    )
    return text.encode()


async def test_a_connection_that_never_finishes_its_headers_is_cut() -> None:
    async with receiving(header_timeout=0.05) as (receiver, events):
        partial = head(receiver, "Content-Type: application/json")  # no blank line: never ends
        assert await raw_exchange(receiver.port, partial) == b""
        assert await raw_exchange(receiver.port, b"") == b""  # says nothing at all
        assert receiver.connections.header_timeouts == 2
        body = case_body()
        async with aiohttp.ClientSession() as session:
            assert (await post(session, receiver.url, body, signed(body, "k")))[0] == 200
    assert len(events) == 1


async def test_a_trickling_body_gets_408_and_the_connection_is_closed() -> None:
    async with receiving(body_timeout=0.05) as (receiver, events):
        body = case_body()
        request = head(receiver, f"Content-Length: {len(body)}", "") + body[:10]
        answer = await raw_exchange(receiver.port, request)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert events == []


async def test_a_body_over_1_mib_is_refused_with_413_before_it_is_read() -> None:
    async with receiving() as (receiver, events):
        declared = head(receiver, f"Content-Length: {webhooks.MAX_BODY_SIZE + 1}", "")
        # Not one byte of the body is sent: the answer cannot have waited for it.
        assert (await raw_exchange(receiver.port, declared)).startswith(b"HTTP/1.1 413 ")
        chunk = b"x" * 65536
        chunked = head(receiver, "Transfer-Encoding: chunked", "") + b"".join(
            b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(17)
        )
        assert (await raw_exchange(receiver.port, chunked)).startswith(b"HTTP/1.1 413 ")
    assert events == []


async def idle_connections(port: int, count: int) -> list[asyncio.StreamWriter]:
    writers = []
    for _ in range(count):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writers.append(writer)
    return writers


async def close_all(writers: list[asyncio.StreamWriter]) -> None:
    for writer in writers:
        writer.close()
    for writer in writers:
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def test_connections_over_the_limit_get_503_and_it_recovers_once_they_go() -> None:
    limit = 8
    async with receiving(max_connections=limit, header_timeout=CHILD_TIMEOUT) as (
        receiver,
        events,
    ):
        idle = await idle_connections(receiver.port, limit)
        try:
            assert await wait_until(lambda: receiver.connections.open == limit)
            for _ in range(5):
                assert (await raw_exchange(receiver.port, b"")).startswith(b"HTTP/1.1 503 ")
            body = case_body()
            async with aiohttp.ClientSession() as session:
                # While full, a genuine delivery is refused at once (retryable), not left hanging.
                assert await attempt(session, receiver.url, body, signed(body, "k")) != 200
        finally:
            await close_all(idle)
        assert await wait_until(lambda: receiver.connections.open == 0)
        async with aiohttp.ClientSession() as session:
            assert await post(session, receiver.url, body, signed(body, "k")) == (200, "ok")
        assert receiver.connections.refused == 6
    assert len(events) == 1


async def test_a_mounted_handler_on_a_guarded_site_is_protected_too() -> None:
    events: list[Any] = []
    app = web.Application()
    app.router.add_post("/amili/webhooks", webhooks.webhook_handler(events.append, secret=SECRET))
    runner = webhooks.guarded_runner(app, header_timeout=0.05)
    await runner.setup()
    site = webhooks.GuardedSite(runner, "127.0.0.1", 0, header_timeout=0.05, max_connections=2)
    await site.start()
    try:
        assert await raw_exchange(site.port, b"POST /amili/webhooks HTTP/1.1\r\n") == b""
        assert site.stats.header_timeouts == 1
        body = case_body()
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{site.port}/amili/webhooks"
            assert await post(session, url, body, signed(body, None)) == (200, "ok")
    finally:
        await runner.cleanup()
    assert len(events) == 1


LISTEN_WITH_FEW_FDS = """
import resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[1]), int(sys.argv[1])))
from amili_async._cli import main
sys.exit(main(sys.argv[2:]))
"""


async def test_listen_with_few_file_descriptors_survives_a_flood_and_recovers(
    tmp_path: Path,
) -> None:
    """`webhooks listen` capped at 256 descriptors, flooded with 400 idle connections: the
    ones over `--max-connections` are refused (never an EMFILE), and after the flood is gone a
    genuine delivery is handled."""
    stderr = tmp_path / "stderr"
    out = tmp_path / "stdout"
    with stderr.open("wb") as err, out.open("wb") as stdout:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            LISTEN_WITH_FEW_FDS,
            "256",
            "webhooks",
            "listen",
            "--port",
            "0",
            "--secret",
            SECRET,
            "--max-connections",
            "64",
            "--header-timeout",
            str(CHILD_TIMEOUT),
            stdout=stdout,
            stderr=err,
        )
    try:
        assert await wait_until(lambda: b"listening" in stderr.read_bytes(), proc=proc)
        url = stderr.read_text().split(" on ", 1)[1].strip()
        port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
        flood = await idle_connections(port, 400)
        try:
            refused = await asyncio.gather(*(raw_exchange(port, b"") for _ in range(20)))
            assert all(answer.startswith(b"HTTP/1.1 503 ") for answer in refused)
        finally:
            await close_all(flood)
        body = case_body()
        async with aiohttp.ClientSession() as session:
            # The flood's connections close asynchronously: retry (as a sender does) until in.
            async with asyncio.timeout(CHILD_TIMEOUT):
                while (status := await attempt(session, url, body, signed(body, "k"))) != 200:
                    assert status == 503 or isinstance(status, str)
            assert status == 200
        assert await wait_until(lambda: out.read_bytes().count(b"\n") == 1, proc=proc)
        assert orjson.loads(out.read_bytes())["id"] == orjson.loads(body)["id"]
        assert b"Too many open files" not in stderr.read_bytes()
    finally:
        proc.terminate()
        await proc.wait()
