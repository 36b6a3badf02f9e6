"""Serve an aiohttp.web application on a host and port (0: a free one), cleaning up on failure.

Shared by the sandbox server and the webhook receiver, the SDK's two local servers.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

__all__ = ["serve_app"]


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
