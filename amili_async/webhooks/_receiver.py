"""`WebhookReceiver`: `webhook_handler` served on a port, keeping what it received.

Backs `amili-async webhooks listen` and the pytest plugin's `amili_webhook_receiver` fixture;
also handy in a script that watches the sandbox's events arrive.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Self

from aiohttp import web

from .._serving import SHUTDOWN_TIMEOUT, LocalServer
from ._dedupe import DedupeStore
from ._handler import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_CALLBACK_TIMEOUT,
    MAX_BODY_SIZE,
    EventCallback,
    webhook_handler,
)
from ._parse import UnknownEvent, WebhookEvent
from ._site import (
    DEFAULT_HEADER_TIMEOUT,
    MAX_CONNECTIONS,
    ConnectionStats,
    GuardedSite,
    guarded_runner,
)
from ._verify import Verifier

__all__ = ["WebhookReceiver"]

Event = WebhookEvent | UnknownEvent


class WebhookReceiver(LocalServer):
    """Serve `webhook_handler` at `http://host:port/path` (port 0: a free one) on a
    `GuardedSite` (header timeout, connection limit)::

    async with WebhookReceiver(secret=SECRET) as receiver:
        sandbox.webhooks.register(receiver.url)
        events = await receiver.wait_for(3, timeout=10)
    """

    def __init__(
        self,
        *,
        secret: str | bytes | None = None,
        verifier: Verifier | None = None,
        on_event: EventCallback | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = "/webhooks",
        keep: bool = True,
        dedupe: DedupeStore | None = None,
        max_body_size: int = MAX_BODY_SIZE,
        body_timeout: float | None = DEFAULT_BODY_TIMEOUT,
        callback_timeout: float | None = DEFAULT_CALLBACK_TIMEOUT,
        header_timeout: float = DEFAULT_HEADER_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self._on_event = on_event
        self._keep = keep
        self.path = path if path.startswith("/") else "/" + path
        #: Every event handled (after verification and de-duplication), in arrival order;
        #: stays empty with ``keep=False`` (a long-running listener that only calls `on_event`).
        self.events: list[Event] = []
        self._changed = asyncio.Condition()
        app = web.Application()
        handler = webhook_handler(
            self._record,
            secret=secret,
            verifier=verifier,
            dedupe=dedupe,
            max_body_size=max_body_size,
            body_timeout=body_timeout,
            callback_timeout=callback_timeout,
        )
        app.router.add_post(self.path, handler)
        self.header_timeout = header_timeout
        self.max_connections = max_connections
        self._site: GuardedSite | None = None
        super().__init__(app, host, port)

    async def start(self) -> Self:
        """Bind and serve (once), on a `GuardedSite`."""
        if self._runner is not None:
            raise RuntimeError("WebhookReceiver already started")
        runner = guarded_runner(
            self.app,
            header_timeout=self.header_timeout,
            access_log=None,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
        )
        await runner.setup()
        site = GuardedSite(
            runner,
            self.host,
            self._requested_port,
            header_timeout=self.header_timeout,
            max_connections=self.max_connections,
        )
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner, self._site, self._port = runner, site, site.port
        return self

    @property
    def connections(self) -> ConnectionStats:
        """Connections opened, refused over the limit and cut for a late head (after start)."""
        if self._site is None:
            raise RuntimeError("WebhookReceiver is not started")
        return self._site.stats

    async def _record(self, event: Event) -> None:
        if self._on_event is not None:
            result = self._on_event(event)
            if inspect.isawaitable(result):
                await result
        if self._keep:
            async with self._changed:
                self.events.append(event)
                self._changed.notify_all()

    @property
    def url(self) -> str:
        """The URL to register with the sandbox (after start)."""
        if self._runner is None:
            raise RuntimeError("WebhookReceiver is not started")
        return f"http://{self.host}:{self.port}{self.path}"

    async def wait_for(
        self, count: int = 1, *, match: Callable[[Event], bool] | None = None, timeout: float = 10
    ) -> list[Event]:
        """The first `count` received events matching `match`, waiting up to `timeout` seconds
        (TimeoutError past it)."""

        def matching() -> list[Event]:
            return [e for e in self.events if match is None or match(e)]

        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(matching()) >= count)
        return matching()[:count]
