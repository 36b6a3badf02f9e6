"""`webhook_handler`: an aiohttp.web handler that receives Amili's deliveries.

Per delivery: verify the signature over the raw body (401) -> parse into the typed event (400)
-> de-duplicate by `IdempotencyKey` -> await the callback -> 200 only after it succeeded. A
callback that raises gets 500 and its key is released, so the redelivery is processed.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .._config import IDEMPOTENCY_KEY_HEADER
from ._dedupe import DedupeStore, MemoryDedupeStore
from ._errors import WebhookError
from ._parse import UnknownEvent, WebhookEvent, parse_event
from ._verify import HmacSha256Verifier, Verifier

__all__ = ["BUSY_RETRY_AFTER", "EventCallback", "webhook_handler"]

EventCallback = Callable[[WebhookEvent | UnknownEvent], Awaitable[Any] | Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

BUSY_RETRY_AFTER = 1
"""Retry-After (seconds) of the 503 answered to a duplicate that arrives while the first copy
is still being handled: not 2xx (the first may yet fail and must be redelivered), and 503 is
the status every sender retries (inferred: Amili's retry rules are not documented)."""

_log = logging.getLogger("amili_async.webhooks")


def _text(status: int, text: str, **headers: str) -> web.Response:
    return web.Response(status=status, text=text, headers=headers or None)


def webhook_handler(
    on_event: EventCallback,
    *,
    secret: str | bytes | None = None,
    verifier: Verifier | None = None,
    dedupe: DedupeStore | None = None,
) -> Handler:
    """An `async (request) -> response` handler to mount on any aiohttp route::

        app.router.add_post("/amili/webhooks", webhook_handler(on_event, secret=SECRET))

    Give `secret` (the inferred HMAC-SHA256 scheme, `HmacSha256Verifier`) or your own
    `verifier`, exactly one. `on_event` gets every verified event (a typed model or
    `UnknownEvent`) once per `IdempotencyKey`; it may be async or plain. `dedupe` defaults to
    a fresh `MemoryDedupeStore`; share one across replicas by backing `DedupeStore` with a
    database. A delivery without `IdempotencyKey` is processed every time it arrives.
    """
    if (secret is None) == (verifier is None):
        raise ValueError("give exactly one of secret= or verifier=")
    check: Verifier = verifier if verifier is not None else HmacSha256Verifier(secret or b"")
    store: DedupeStore = dedupe if dedupe is not None else MemoryDedupeStore()

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
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
        key = request.headers.get(IDEMPOTENCY_KEY_HEADER) or None
        if key is not None:
            claim = await store.claim(key)
            if claim == "done":
                return _text(200, "duplicate")
            if claim == "busy":
                return _text(503, "in progress", **{"Retry-After": str(BUSY_RETRY_AFTER)})
        try:
            result = on_event(event)
            if inspect.isawaitable(result):
                await result
        except BaseException as error:
            if key is not None:
                await store.release(key)
            if not isinstance(error, Exception):
                raise  # cancelled: the sender sees a dropped connection and redelivers
            # Only the exception's type: its message and traceback may quote the event's or the
            # service's data, which is the callback's own to report.
            _log.error(
                "webhook callback raised %s (500); key released for redelivery",
                type(error).__name__,
            )
            return _text(500, "callback failed")
        if key is not None:
            await store.complete(key)
        return _text(200, "ok")

    return handle
