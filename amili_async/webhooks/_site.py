"""`GuardedSite`: an aiohttp site for a webhook receiver that a slow or greedy client cannot
exhaust.

A plain `web.TCPSite` waits for request headers forever and accepts connections until the
process runs out of file descriptors. Here every connection must deliver its request head
within `header_timeout` (aiohttp's keep-alive timeout, set to the same value by
`guarded_runner`, covers the heads of later requests on a kept-alive connection), and past
`max_connections` open ones a new connection is answered 503 and closed at once, so the
descriptors stay free for genuine deliveries and the receiver recovers as soon as the
attacker's connections go. `webhook_handler` bounds the body (size and time) itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

import attrs
from aiohttp import web

__all__ = [
    "DEFAULT_HEADER_TIMEOUT",
    "MAX_CONNECTIONS",
    "ConnectionStats",
    "GuardedSite",
    "guarded_runner",
]

DEFAULT_HEADER_TIMEOUT = 10.0
"""Seconds a connection may take to send a complete request head (and may sit idle between
kept-alive requests): a sender writes its few hundred bytes of headers at once, so ten seconds
only ever cuts clients that hold connections open on purpose (slowloris)."""

MAX_CONNECTIONS = 256
"""Open connections at most: a quarter of Linux's default 1,024 descriptors per process (the
rest stay for the service, its database and logs) and far above any sender's concurrency (the
sandbox sends 4 at a time)."""

LINGERING_TIME = 1.0
"""Seconds aiohttp keeps reading (and discarding) a body left unread by an early answer (413,
408) before it closes the connection: enough for a sender to read that answer, too little to
hold a connection (aiohttp's default is 10 s)."""

_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n"
    b"Connection: close\r\n\r\n"
)  # answered to a connection over the limit: every sender retries a 503
_HEAD_END = b"\r\n\r\n"


def guarded_runner(
    app: web.Application, *, header_timeout: float = DEFAULT_HEADER_TIMEOUT, **kwargs: Any
) -> web.AppRunner:
    """An AppRunner for `GuardedSite`: idle kept-alive connections close after
    `header_timeout`, and an unread body is discarded for at most `LINGERING_TIME`."""
    return web.AppRunner(
        app, keepalive_timeout=header_timeout, lingering_time=LINGERING_TIME, **kwargs
    )


@attrs.define
class ConnectionStats:
    """What the site has seen, for monitoring and tests."""

    open: int = 0
    accepted: int = 0
    refused: int = 0  # over `max_connections`: answered 503 and closed
    header_timeouts: int = 0  # closed for not sending a request head in time


class _Guard(asyncio.Protocol):
    """Wraps aiohttp's protocol of one connection: counts it, refuses it over the limit and
    closes it when its first request head is late."""

    def __init__(self, site: GuardedSite, make_inner: Callable[[], asyncio.Protocol]) -> None:
        self._site = site
        self._make_inner = make_inner
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._tail = b""  # the last bytes seen while waiting for the end of the head

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        stats = self._site.stats
        self._transport = cast(asyncio.Transport, transport)
        if stats.open >= self._site.max_connections:
            stats.refused += 1
            self._transport.write(_BUSY)
            self._transport.close()
            return
        stats.open += 1
        stats.accepted += 1
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._site.header_timeout, self._head_late)
        self._inner = self._make_inner()
        self._inner.connection_made(transport)

    def _head_late(self) -> None:
        self._timer = None
        self._site.stats.header_timeouts += 1
        if self._transport is not None:
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._inner is None:
            return
        if self._timer is not None:
            seen = self._tail + data
            if _HEAD_END in seen:
                self._timer.cancel()
                self._timer = None
                self._tail = b""
            else:
                self._tail = seen[-(len(_HEAD_END) - 1) :]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._transport = None
        inner, self._inner = self._inner, None
        if inner is not None:
            self._site.stats.open -= 1
            inner.connection_lost(exc)


class GuardedSite(web.BaseSite):
    """Serve a runner (best made by `guarded_runner`) on `host:port` (0: a free one) with a
    header timeout and a connection limit; `stats` counts what happened."""

    __slots__ = ("_host", "_port", "header_timeout", "max_connections", "stats")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        header_timeout: float = DEFAULT_HEADER_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        if header_timeout <= 0:
            raise ValueError("header_timeout must be > 0")
        if max_connections < 1:
            raise ValueError("max_connections must be >= 1")
        super().__init__(runner)
        self._host = host
        self._port = port
        self.header_timeout = header_timeout
        self.max_connections = max_connections
        self.stats = ConnectionStats()

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        """Bind and serve."""
        await super().start()
        factory = self._runner.server
        assert factory is not None  # BaseSite refuses a runner that is not set up
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Guard(self, factory), self._host, self._port, backlog=self._backlog
        )
        self._port = int(self._server.sockets[0].getsockname()[1])

    @property
    def port(self) -> int:
        """The bound port (after start)."""
        return self._port
