"""`webhook_handler`: an aiohttp.web handler that receives Amili's deliveries.

Per delivery: read the body within `max_body_size` (413) and `body_timeout` (408) -> verify the
signature over the raw body (401) -> parse into the typed event (400) -> de-duplicate on what
the signature covers (`delivery_key`) -> await the callback, for at most `callback_timeout` ->
200 only after it succeeded. A callback that raises or times out gets 500 and its claim is
released, so the redelivery is processed.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .. import _telemetry
from ._dedupe import DedupeStore, MemoryDedupeStore
from ._errors import WebhookError
from ._parse import UnknownEvent, WebhookEvent, parse_event
from ._verify import HmacSha256Verifier, Verifier

__all__ = [
    "BUSY_RETRY_AFTER",
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_CALLBACK_TIMEOUT",
    "MAX_BODY_SIZE",
    "EventCallback",
    "delivery_key",
    "webhook_handler",
]

EventCallback = Callable[[WebhookEvent | UnknownEvent], Awaitable[Any] | Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

BUSY_RETRY_AFTER = 1
"""Retry-After (seconds) of the 503 answered to a duplicate that arrives while the first copy
is still being handled: not 2xx (the first may yet fail and must be redelivered), and 503 is
the status every sender retries (inferred: Amili's retry rules are not documented)."""

MAX_BODY_SIZE = 1024 * 1024
"""Bytes a delivery may have: the documented events are a few hundred bytes, so 1 MiB is
thousands of times any real one while keeping a flood of big bodies cheap to refuse (413)."""

DEFAULT_BODY_TIMEOUT = 10.0
"""Seconds the whole body may take to arrive after the headers: a webhook's few kilobytes take
milliseconds on any link, so ten seconds tolerates a struggling sender while a client that
trickles bytes to hold a connection is cut off (408)."""

DEFAULT_CALLBACK_TIMEOUT = 60.0
"""Seconds the callback may run before the delivery is answered 500 and its claim released: a
minute is far beyond any handler that merely records an event, and short enough that a hung
callback delays the redelivery by one retry, not for as long as it hangs. Shorter than the
store's lease (`DEFAULT_LEASE`), so a live callback's claim never expires under it."""

_READ_CHUNK = 64 * 1024  # bytes per read of the body: a real delivery arrives in one

_log = logging.getLogger("amili_async.webhooks")


def _text(status: int, text: str, **headers: str) -> web.Response:
    return web.Response(status=status, text=text, headers=headers or None)


def delivery_key(event: WebhookEvent | UnknownEvent, body: bytes) -> str:
    """What identifies a delivery: `event:<id>` from the signed payload's own `id`, else
    `sha256:<digest of the signed body>`.

    Never the `IdempotencyKey` header: it is not covered by the signature, so a replay could
    carry a fresh key (processed again) or a later delivery's key (which then drops the genuine
    event as a duplicate). Inferred: the docs say neither what `id` identifies nor what the
    signature covers; the sandbox keeps `id` across redeliveries of one event.
    """
    raw = event.payload.get("id") if isinstance(event, UnknownEvent) else event.id
    if isinstance(raw, str) and raw.strip():
        return f"event:{raw.strip()}"
    return f"sha256:{hashlib.sha256(body).hexdigest()}"


async def _read_body(request: web.Request, limit: int, timeout: float | None) -> bytes | None:
    """The body, or None past `limit` bytes (the rest is never read); TimeoutError past
    `timeout` seconds."""
    if request.content_length is not None and request.content_length > limit:
        return None
    content = request.content
    if content.is_eof():  # the whole body arrived with the headers: no wait, so no timer
        body = content.read_nowait()
        return body if len(body) <= limit else None
    chunks: list[bytes] = []
    size = 0
    async with asyncio.timeout(timeout):
        while chunk := await request.content.read(_READ_CHUNK):
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
    return b"".join(chunks)


async def _call(
    on_event: EventCallback, event: WebhookEvent | UnknownEvent, timeout: float | None
) -> None:
    """Run the callback; an async one for at most `timeout` seconds (a plain one cannot be
    interrupted, so it gets no timer)."""
    result = on_event(event)
    if inspect.isawaitable(result):
        async with asyncio.timeout(timeout):
            await result


def webhook_handler(
    on_event: EventCallback,
    *,
    secret: str | bytes | None = None,
    verifier: Verifier | None = None,
    dedupe: DedupeStore | None = None,
    max_body_size: int = MAX_BODY_SIZE,
    body_timeout: float | None = DEFAULT_BODY_TIMEOUT,
    callback_timeout: float | None = DEFAULT_CALLBACK_TIMEOUT,
) -> Handler:
    """An `async (request) -> response` handler to mount on any aiohttp route::

        app.router.add_post("/amili/webhooks", webhook_handler(on_event, secret=SECRET))

    Give `secret` (the inferred HMAC-SHA256 scheme, `HmacSha256Verifier`) or your own
    `verifier`, exactly one. `on_event` gets every verified event (a typed model or
    `UnknownEvent`) once per `delivery_key`; it may be async or plain. `dedupe` defaults to a
    fresh `MemoryDedupeStore`; share one across restarts and replicas with `SqliteDedupeStore`
    or `PostgresDedupeStore`. Serve it with `GuardedSite` for header timeouts and a connection
    limit (a plain `web.TCPSite` has neither).
    """
    if (secret is None) == (verifier is None):
        raise ValueError("give exactly one of secret= or verifier=")
    if max_body_size < 1:
        raise ValueError("max_body_size must be >= 1")
    check: Verifier = verifier if verifier is not None else HmacSha256Verifier(secret or b"")
    store: DedupeStore = dedupe if dedupe is not None else MemoryDedupeStore()
    lease = getattr(store, "lease", None)  # the SDK's stores say; a custom one may not
    if (
        callback_timeout is not None
        and isinstance(lease, float | int)
        and callback_timeout >= lease
    ):
        # The claim would expire under a live callback and a redelivery would run it twice.
        raise ValueError("callback_timeout must be shorter than the store's lease")

    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            body = await _read_body(request, max_body_size, body_timeout)
        except TimeoutError:
            _log.warning("webhook delivery refused (408): body not received in time")
            return _text(408, "body timeout", Connection="close")
        if body is None:
            _log.warning("webhook delivery refused (413): body over %d bytes", max_body_size)
            return _text(413, "body too large", Connection="close")
        try:
            check.verify(body, request.headers)
        except WebhookError as error:
            _log.warning("webhook delivery refused (401): %s", error)
            return _text(401, "invalid signature")
        try:
            event = parse_event(body, request.headers)
        except WebhookError as error:
            _log.warning("webhook delivery refused (400): %s", error)
            return _text(400, "malformed delivery")
        _telemetry.annotate(
            "amili.webhook.event", getattr(event, "event_type", type(event).__name__)
        )
        key = delivery_key(event, body)
        claim = await store.claim(key)
        if claim == "done":
            return _text(200, "duplicate")
        if claim == "busy":
            return _text(503, "in progress", **{"Retry-After": str(BUSY_RETRY_AFTER)})
        try:
            await _call(on_event, event, callback_timeout)
        except BaseException as error:
            await store.release(key)
            if not isinstance(error, Exception):
                raise  # cancelled: the sender sees a dropped connection and redelivers
            # Only the exception's type: its message and traceback may quote the event's or the
            # service's data, which is the callback's own to report.
            _log.error(
                "webhook callback %s (500); claim released for redelivery",
                "timed out"
                if isinstance(error, TimeoutError)
                else f"raised {type(error).__name__}",
            )
            return _text(500, "callback failed")
        await store.complete(key)
        return _text(200, "ok")

    return _telemetry.receiver(handle)
