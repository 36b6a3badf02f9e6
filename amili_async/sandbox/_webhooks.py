"""Webhook delivery: every sandbox event POSTed, signed, to the registered receiver URLs.

Like Amili per the webhooks guide: the documented headers (`X-Amili-Event`, `IdempotencyKey`,
`X-Amili-Request-Id`, `X-Webhook-Signature`), the JSON payload of the docs' examples, signed
with the SDK's (inferred) HMAC-SHA256 scheme. Inferred, as the docs are silent: a delivery is
retried with exponential backoff until a 2xx (same `IdempotencyKey` every time, a new request
id per attempt), up to `MAX_ATTEMPTS`. Events wait in a bounded queue: publishing never blocks
the API, and past `QUEUE_SIZE` waiting deliveries new ones are dropped and counted. Every
attempt goes into a bounded delivery log (`GET /_sandbox/webhooks`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import aiohttp
import attrs
import yarl
from aiohttp import web

from .._config import IDEMPOTENCY_KEY_HEADER, REQUEST_ID_HEADER
from ..webhooks import EVENT_HEADER, SIGNATURE_HEADER, compute_signature
from ._config import SandboxConfig
from ._events import WEBHOOK_EVENTS, Event, EventBus
from ._http import ADMIN_PREFIX, JSON, json_response
from ._validate import parse_json_object
from ._wire import ApiError, dumps, fmt_ms, now_ms

__all__ = ["WEBHOOKS_KEY", "WEBHOOKS_PATH", "WebhookDispatcher", "add_webhook_routes"]

_log = logging.getLogger(__name__)

# The sandbox-only admin endpoint: GET the log, POST / DELETE a receiver URL.
WEBHOOKS_PATH = ADMIN_PREFIX + "webhooks"

QUEUE_SIZE = 10_000
"""Deliveries waiting to be sent: minutes of a busy sandbox's events; past it new deliveries
are dropped (counted in `dropped`, logged) rather than slowing the API down."""
WORKERS = 4
"""Deliveries in flight at once: one slow or failing receiver cannot stall the others."""
MAX_ATTEMPTS = 10
"""Attempts per delivery before it is given up (about 10 s of backoff with the values below)."""
RETRY_BASE = 0.05
"""First backoff in seconds, doubled per attempt: short, so a test sees retries quickly."""
RETRY_CAP = 2.0
"""Longest backoff in seconds."""
ATTEMPT_TIMEOUT = 10.0
"""Seconds a receiver has to answer one attempt."""
LOG_SIZE = 10_000
"""Attempts kept in the delivery log (oldest forgotten first)."""


@attrs.frozen
class _Delivery:
    event: Event
    url: str
    key: str


def _check_url(url: object) -> str:
    """`url` if it is an absolute http(s) URL; ValueError otherwise."""
    parsed = yarl.URL(url) if isinstance(url, str) else None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError("a webhook URL must be an absolute http(s) URL")
    return str(url)


def _url_of(body: dict[str, Any]) -> str:
    """The admin request's `url`, or a 400."""
    try:
        return _check_url(body.get("url"))
    except ValueError:
        raise ApiError(
            400, "Give the receiver's absolute http(s) URL.", errors={"url": ["An http(s) URL."]}
        ) from None


class WebhookDispatcher:
    """Queues every webhook event for every registered URL and delivers it (see module doc)."""

    def __init__(self, config: SandboxConfig, events: EventBus) -> None:
        self.urls: list[str] = [_check_url(u) for u in config.webhook_urls]
        self._secret = config.webhook_secret
        self._timestamp_header = config.webhook_timestamp_header
        #: Probability that a delivery is sent twice at once (fault injection for receivers).
        self.duplicates = config.webhook_duplicates
        self._rng = random.Random(config.seed)
        self._queue: asyncio.Queue[_Delivery] = asyncio.Queue(QUEUE_SIZE)
        #: Every attempt, oldest first: key, event, url, attempt, status or error.
        self.log: collections.deque[dict[str, Any]] = collections.deque(maxlen=LOG_SIZE)
        #: Deliveries dropped because the queue was full.
        self.dropped = 0
        self._changed = asyncio.Condition()  # bound to a loop on first use, not here
        self._session: aiohttp.ClientSession | None = None
        self._events = events
        self._unsubscribe: Callable[[], None] | None = None
        self._subscribe_while_registered()

    def __repr__(self) -> str:  # never the secret
        return f"WebhookDispatcher(urls={self.urls!r}, pending={self._queue.qsize()})"

    # ------------------------------------------------------------------ registration
    def register(self, url: str) -> None:
        """Deliver every later event to `url` too (registering twice is a no-op); ValueError
        unless it is an absolute http(s) URL."""
        if _check_url(url) not in self.urls:
            self.urls.append(url)
        self._subscribe_while_registered()

    def unregister(self, url: str) -> bool:
        """Stop delivering to `url`; False if it was not registered."""
        if url not in self.urls:
            return False
        self.urls.remove(url)
        self._subscribe_while_registered()
        return True

    def _subscribe_while_registered(self) -> None:
        # Subscribed only while a URL is registered: without one, the sandbox does not even
        # build the per-invoice case events (EventBus.wants).
        if self.urls and self._unsubscribe is None:
            self._unsubscribe = self._events.subscribe(self._enqueue, WEBHOOK_EVENTS)
        elif not self.urls and self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _enqueue(self, event: Event) -> None:
        for url in self.urls:
            try:
                self._queue.put_nowait(_Delivery(event, url, str(uuid.uuid4())))
            except asyncio.QueueFull:
                self.dropped += 1
                _log.warning("sandbox webhook queue full: %s delivery dropped", event.type)

    # ------------------------------------------------------------------ delivery
    async def run(self) -> None:
        """Deliver until cancelled (the app runs this as one task)."""
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=ATTEMPT_TIMEOUT)
        ) as self._session:
            workers = [asyncio.create_task(self._worker()) for _ in range(WORKERS)]
            try:
                await asyncio.gather(*workers)
            finally:
                for task in workers:
                    task.cancel()
                await asyncio.gather(*workers, return_exceptions=True)

    async def _worker(self) -> None:
        while True:
            delivery = await self._queue.get()
            try:
                copies = 2 if self._rng.random() < self.duplicates else 1
                body = dumps(delivery.event.to_dict())
                await asyncio.gather(*(self._deliver(delivery, body) for _ in range(copies)))
            except Exception:  # a worker outlives any one delivery
                _log.exception("sandbox webhook %s failed", delivery.key)
            finally:
                self._queue.task_done()

    async def _deliver(self, delivery: _Delivery, body: bytes) -> None:
        delay = RETRY_BASE
        for attempt in range(1, MAX_ATTEMPTS + 1):
            status = await self._attempt(delivery, body, attempt)
            if status is not None and 200 <= status < 300:
                return
            if attempt < MAX_ATTEMPTS:
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_CAP)
        _log.warning("sandbox webhook %s given up after %d attempts", delivery.key, MAX_ATTEMPTS)

    def _headers(self, delivery: _Delivery, body: bytes, request_id: str) -> dict[str, str]:
        """The documented delivery headers, signed afresh per attempt (a new timestamp)."""
        headers = {
            "Content-Type": JSON,
            EVENT_HEADER: delivery.event.type,
            IDEMPOTENCY_KEY_HEADER: delivery.key,
            REQUEST_ID_HEADER: request_id,
        }
        timestamp = None
        if self._timestamp_header is not None:
            timestamp = headers[self._timestamp_header] = str(int(time.time()))
        headers[SIGNATURE_HEADER] = compute_signature(body, self._secret, timestamp)
        return headers

    async def _attempt(self, delivery: _Delivery, body: bytes, attempt: int) -> int | None:
        assert self._session is not None
        request_id = str(uuid.uuid4())
        status: int | None = None
        error: str | None = None
        try:
            async with self._session.post(
                delivery.url, data=body, headers=self._headers(delivery, body, request_id)
            ) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = type(exc).__name__
        await self._record(
            {
                "idempotencyKey": delivery.key,
                "requestId": request_id,
                "eventId": delivery.event.id,
                "event": delivery.event.type,
                "url": delivery.url,
                "attempt": attempt,
                "status": status,
                "error": error,
                "at": fmt_ms(now_ms()),
            }
        )
        return status

    async def _record(self, entry: dict[str, Any]) -> None:
        async with self._changed:
            self.log.append(entry)
            self._changed.notify_all()

    async def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 10
    ) -> list[dict[str, Any]]:
        """Wait until `predicate(log)` holds (TimeoutError after `timeout` seconds)."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: predicate(list(self.log)))
        return list(self.log)

    def snapshot(self) -> dict[str, Any]:
        """What the admin endpoint answers: URLs, queue figures and the delivery log."""
        return {
            "urls": list(self.urls),
            "duplicates": self.duplicates,
            "pending": self._queue.qsize(),
            "dropped": self.dropped,
            "deliveries": list(self.log),
        }


WEBHOOKS_KEY = web.AppKey("amili_webhooks", WebhookDispatcher)


async def _get(request: web.Request) -> web.Response:
    return json_response(request.app[WEBHOOKS_KEY].snapshot())


async def _post(request: web.Request) -> web.Response:
    """Register `{"url": ...}`; `{"duplicates": p}` sets the duplicate-delivery fault."""
    body = parse_json_object(await request.read()) or {}
    dispatcher = request.app[WEBHOOKS_KEY]
    if "url" not in body and "duplicates" not in body:
        raise ApiError(400, "Give a url to register, or duplicates.", errors={"url": ["URL."]})
    if "duplicates" in body:
        p = body["duplicates"]
        if isinstance(p, bool) or not isinstance(p, int | float | Decimal) or not 0 <= p <= 1:
            raise ApiError(400, "duplicates is a probability.", errors={"duplicates": ["0..1"]})
        dispatcher.duplicates = float(p)
    if "url" in body:
        dispatcher.register(_url_of(body))
    return json_response(dispatcher.snapshot() | {"deliveries": []}, status=201)


async def _delete(request: web.Request) -> web.Response:
    body = parse_json_object(await request.read()) or {}
    dispatcher = request.app[WEBHOOKS_KEY]
    if not dispatcher.unregister(_url_of(body)):
        raise ApiError(404, "That URL is not registered.")
    return json_response(dispatcher.snapshot() | {"deliveries": []})


async def _run_ctx(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(app[WEBHOOKS_KEY].run(), name="amili-sandbox-webhooks")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def add_webhook_routes(app: web.Application, config: SandboxConfig, events: EventBus) -> None:
    """Give `app` its webhook dispatcher (run while the app runs) and the admin endpoint."""
    app[WEBHOOKS_KEY] = WebhookDispatcher(config, events)
    app.cleanup_ctx.append(_run_ctx)
    app.router.add_get(WEBHOOKS_PATH, _get)
    app.router.add_post(WEBHOOKS_PATH, _post)
    app.router.add_delete(WEBHOOKS_PATH, _delete)
