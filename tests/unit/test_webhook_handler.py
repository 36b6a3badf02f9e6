"""`webhook_handler` over real HTTP: 401 / 400 / 500 / 200, de-duplication on the signed
payload (its `id`, else the body's digest; never the unsigned `IdempotencyKey`), exactly one
callback for concurrent duplicates, redelivery after a failed callback."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from amili_async import models, webhooks

SECRET = "whsec-handler"
URL_PATH = "/amili/webhooks"


class Harness:
    """One aiohttp app with the handler mounted, and a session to post deliveries to it."""

    def __init__(self, server: TestServer, session: aiohttp.ClientSession) -> None:
        self.server = server
        self.session = session

    async def post(
        self, body: bytes, *, key: str | None = "k1", secret: str = SECRET, **headers: str
    ) -> tuple[int, str]:
        sent = {"Content-Type": "application/json", **headers}
        sent.setdefault("X-Webhook-Signature", webhooks.compute_signature(body, secret))
        if key is not None:
            sent["IdempotencyKey"] = key
        async with self.session.post(self.server.make_url(URL_PATH), data=body, headers=sent) as r:
            return r.status, await r.text()


Mount = Callable[..., Any]


@pytest.fixture
async def mount() -> AsyncIterator[Mount]:
    servers: list[TestServer] = []
    session = aiohttp.ClientSession()

    async def start(on_event: webhooks.EventCallback, **kwargs: Any) -> Harness:
        app = web.Application()
        kwargs.setdefault("secret", SECRET)
        app.router.add_post(URL_PATH, webhooks.webhook_handler(on_event, **kwargs))
        server = TestServer(app)
        await server.start_server()
        servers.append(server)
        return Harness(server, session)

    yield start
    await session.close()
    for server in servers:
        await server.close()


@pytest.fixture
def case_body(docs_dir: Path) -> bytes:
    return (docs_dir / "examples" / "webhooks-case-event.json").read_bytes()


async def test_a_verified_delivery_reaches_the_callback_once(
    mount: Mount, case_body: bytes
) -> None:
    seen: list[Any] = []
    harness = await mount(seen.append)  # a plain (not async) callback works too
    assert await harness.post(case_body) == (200, "ok")
    assert len(seen) == 1
    assert isinstance(seen[0], models.CaseEvent)
    assert await harness.post(case_body) == (200, "duplicate")
    assert len(seen) == 1
    # Another (unsigned) IdempotencyKey, or none, does not make it a new delivery.
    assert await harness.post(case_body, key="k2") == (200, "duplicate")
    assert await harness.post(case_body, key=None) == (200, "duplicate")
    assert len(seen) == 1


async def test_deliveries_are_told_apart_by_their_signed_id_or_body(mount: Mount) -> None:
    seen: list[Any] = []
    harness = await mount(seen.append)
    first = b'{"id": "e-1", "type": "INVOICE_ARCHIVED", "data": {"n": 1}}'
    same_id = b'{"id": "e-1", "type": "INVOICE_ARCHIVED", "data": {"n": 2}}'
    no_id = [b'{"type": "INVOICE_ARCHIVED", "data": {"n": %d}}' % n for n in (1, 2)]
    assert await harness.post(first, key="a") == (200, "ok")
    assert await harness.post(same_id, key="b") == (200, "duplicate")  # one event id
    for body in no_id:  # no id: the digest of the signed body identifies the delivery
        assert await harness.post(body, key="a") == (200, "ok")
        assert await harness.post(body, key=None) == (200, "duplicate")
    assert len(seen) == 3
    assert webhooks.delivery_key(seen[0], first) == "event:e-1"
    assert webhooks.delivery_key(seen[1], no_id[0]).startswith("sha256:")


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Webhook-Signature": ""},
        {"X-Webhook-Signature": "00" * 32},
        {"X-Webhook-Signature": "not-hex"},
        {"X-Webhook-Signature": "sha256=" + "ä" * 64},
    ],
)
async def test_bad_signatures_are_401_and_never_reach_the_callback(
    mount: Mount, case_body: bytes, headers: dict[str, str]
) -> None:
    seen: list[Any] = []
    harness = await mount(seen.append)
    status, _ = await harness.post(case_body, **headers)
    assert status == 401
    assert (await harness.post(case_body, secret="wrong-secret"))[0] == 401
    assert seen == []


async def test_missing_signature_and_tampered_body_are_401(mount: Mount, case_body: bytes) -> None:
    seen: list[Any] = []
    harness = await mount(seen.append)
    sent = {"IdempotencyKey": "x", "Content-Type": "application/json"}
    async with harness.session.post(
        harness.server.make_url(URL_PATH), data=case_body, headers=sent
    ) as response:
        assert response.status == 401
    signature = webhooks.compute_signature(case_body, SECRET)
    tampered = case_body.replace(b"OPEN", b"PAID")
    assert (await harness.post(tampered, **{"X-Webhook-Signature": signature}))[0] == 401
    assert seen == []


@pytest.mark.parametrize(
    "body",
    [b"<html>oops</html>", b"[1, 2]", b'{"type": "BATCH_COMPLETED", "data": {"status": 7}}'],
)
async def test_unreadable_bodies_are_400(mount: Mount, body: bytes) -> None:
    seen: list[Any] = []
    harness = await mount(seen.append)
    assert (await harness.post(body))[0] == 400
    assert seen == []


async def test_header_disagreeing_with_the_payload_is_400(mount: Mount, case_body: bytes) -> None:
    seen: list[Any] = []
    harness = await mount(seen.append)
    status, _ = await harness.post(case_body, **{"X-Amili-Event": "BATCH_COMPLETED"})
    assert status == 400
    assert seen == []


async def test_unknown_events_reach_the_callback_raw(mount: Mount) -> None:
    seen: list[Any] = []
    harness = await mount(seen.append)
    assert (await harness.post(b'{"type": "INVOICE_ARCHIVED", "data": {}}'))[0] == 200
    assert isinstance(seen[0], webhooks.UnknownEvent)


async def test_failed_callback_is_500_and_the_redelivery_is_processed(
    mount: Mount, case_body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[Any] = []

    async def flaky(event: Any) -> None:
        calls.append(event)
        if len(calls) == 1:
            raise RuntimeError("database down: personal detail 01017012345")

    harness = await mount(flaky)
    with caplog.at_level(logging.ERROR, logger="amili_async.webhooks"):
        assert (await harness.post(case_body))[0] == 500
    assert "RuntimeError" in caplog.text
    assert "01017012345" not in caplog.text
    assert await harness.post(case_body) == (200, "ok")
    assert await harness.post(case_body) == (200, "duplicate")
    assert len(calls) == 2


async def test_concurrent_duplicates_get_exactly_one_callback(
    mount: Mount, case_body: bytes
) -> None:
    started = asyncio.Event()
    finish = asyncio.Event()
    calls: list[Any] = []

    async def slow(event: Any) -> None:
        calls.append(event)
        started.set()
        await finish.wait()

    harness = await mount(slow)
    first = asyncio.create_task(harness.post(case_body))
    async with asyncio.timeout(5):
        await started.wait()
    duplicates = await asyncio.gather(*(harness.post(case_body) for _ in range(5)))
    # Not 2xx while the first is in flight: it may still fail and need the redelivery.
    assert {status for status, _ in duplicates} == {503}
    finish.set()
    assert (await first)[0] == 200
    assert await harness.post(case_body) == (200, "duplicate")
    assert len(calls) == 1


async def test_a_custom_verifier_and_store_are_used(mount: Mount, case_body: bytes) -> None:
    class TokenVerifier:
        def verify(self, body: bytes, headers: Any) -> None:
            if headers.get("X-Token") != "let-me-in":
                raise webhooks.WebhookError("bad token")

    store = webhooks.MemoryDedupeStore()
    seen: list[Any] = []
    harness = await mount(seen.append, secret=None, verifier=TokenVerifier(), dedupe=store)
    assert (await harness.post(case_body))[0] == 401
    assert (await harness.post(case_body, **{"X-Token": "let-me-in"}))[0] == 200
    assert await store.claim("event:897e1f80-ceb5-4b58-a2aa-c895aff6ce3e") == "done"
    assert len(seen) == 1


def test_exactly_one_of_secret_and_verifier() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        webhooks.webhook_handler(print)
    with pytest.raises(ValueError, match="exactly one"):
        webhooks.webhook_handler(print, secret="s", verifier=webhooks.HmacSha256Verifier("s"))
    with pytest.raises(ValueError, match="empty"):
        webhooks.webhook_handler(print, secret="")
