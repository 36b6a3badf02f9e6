"""Serve an aiohttp.web application on a host and port (0: a free one), cleaning up on failure.

Shared by the sandbox server and the webhook receiver, the SDK's two local servers.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

from aiohttp import web

__all__ = ["LocalServer", "serve_app"]

SHUTDOWN_TIMEOUT = 0.25
"""Seconds a stopping local server waits for open requests: its peers are tests and local
tools on loopback, which either finished or will be cut anyway."""


async def serve_app(app: web.Application, host: str, port: int, **runner: Any) -> web.AppRunner:
    """Set up and bind `app`; the runner's `addresses[0][1]` is the bound port."""
    app_runner = web.AppRunner(app, **runner)
    await app_runner.setup()
    try:
        await web.TCPSite(app_runner, host, port).start()
    except BaseException:
        await app_runner.cleanup()
        raise
    return app_runner


class LocalServer:
    """An aiohttp application on `host:port` (0: a free one), started once, as an async
    context manager; the base of the sandbox server and the webhook receiver."""

    def __init__(
        self, app: web.Application, host: str, port: int, *, access_log: bool = False
    ) -> None:
        self.app = app
        self.host = host
        self._requested_port = port
        self._access_log = access_log
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    async def start(self) -> Self:
        """Bind and serve (once)."""
        if self._runner is not None:
            raise RuntimeError(f"{type(self).__name__} already started")
        kwargs: dict[str, object] = {} if self._access_log else {"access_log": None}
        runner = await serve_app(
            self.app,
            self.host,
            self._requested_port,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
            **kwargs,
        )
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        return self

    async def close(self) -> None:
        """Stop serving (a no-op when not started)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @property
    def port(self) -> int:
        """The bound port (after start)."""
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._port

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
