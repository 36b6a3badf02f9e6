"""Shared helpers of the reliability suite.

The real SDK, CLI and sandbox, driven into failure: the CLI runs as a subprocess
(`python -m amili_async ...`) against an in-process sandbox that keeps serving while the test
awaits the child; small aiohttp servers on 127.0.0.1 play the misbehaving servers the sandbox
cannot (endless bodies, repeated page tokens, self-signed TLS, hanging answers).

Nothing here sleeps to make a race pass: a wait on a child process polls a file it writes
(bounded by a timeout), and in-process servers signal with asyncio primitives.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import orjson
from aiohttp import web
from hypothesis.configuration import set_hypothesis_home_dir

from amili_async import AmiliClient
from amili_async.sandbox import FaultConfig, SandboxServer

from ..e2e.conftest import (
    Run,
    assert_one_line_error,
    connect,
    new_invoice,
    sandbox_invoice_count,
    seeded_ids,
)
from ..e2e.conftest import run_cli as run_e2e_cli

__all__ = [
    "CHAOS",
    "CHILD_TIMEOUT",
    "LocalServer",
    "Run",
    "assert_one_line_error",
    "checkpoint_state",
    "cli_env",
    "connect",
    "kill",
    "local_server",
    "new_invoice",
    "run_cli",
    "sandbox_invoice_count",
    "seeded_ids",
    "start_cli",
    "threaded_server",
    "wait_until",
]

# Hypothesis keeps caches in ./.hypothesis by default: keep them out of the checkout.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / f"amili-async-hypothesis-{os.getuid()}")

CHILD_TIMEOUT = 120.0
"""Seconds any child process or polled condition may take before the test fails."""
POLL_INTERVAL = 0.005
"""Seconds between two looks at a file a child process writes (the only polling here)."""

CHAOS = FaultConfig(
    rate_429=0.02,
    rate_500=0.01,
    rate_502=0.01,
    rate_503=0.02,
    drop_before=0.01,
    drop_after=0.01,
    truncate=0.01,
    html=0.01,
    retry_after=0,
    seed=2024,
)
"""About 10% of API requests meet a fault, every kind of fault the sandbox knows."""
assert abs(CHAOS.total_rate - 0.10) < 1e-9


# --------------------------------------------------------------------------- the CLI


def cli_env(server: SandboxServer, **values: str) -> dict[str, str]:
    """The parent's environment without AMILI_*, pointed at `server`, plus `values`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMILI_")}
    env.update(
        AMILI_BASE_URL=server.base_url,
        AMILI_TOKEN_URL=server.token_url,
        AMILI_CLIENT_ID=server.client_id,
        AMILI_CLIENT_SECRET=server.client_secret,
    )
    env.update(values)
    return env


async def run_cli(*args: str | Path, env: Mapping[str, str]) -> Run:
    """Run `python -m amili_async ARGS` to completion."""
    return await run_e2e_cli(*args, env=env, timeout=CHILD_TIMEOUT)


async def start_cli(*args: str | Path, env: Mapping[str, str]) -> asyncio.subprocess.Process:
    """Start `python -m amili_async ARGS` in the background (output discarded)."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "amili_async",
        *map(str, args),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        env=dict(env),
    )


async def kill(proc: asyncio.subprocess.Process) -> int:
    """SIGKILL `proc` unless it has ended already; its exit status (-9 when killed)."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGKILL)
    return await proc.wait()


async def wait_until(
    condition: Callable[[], bool],
    *,
    proc: asyncio.subprocess.Process | None = None,
    timeout: float = CHILD_TIMEOUT,
) -> bool:
    """Poll `condition` (bounded by `timeout`): True once it holds, False if `proc` ended first."""
    async with asyncio.timeout(timeout):
        while True:
            if condition():
                return True
            if proc is not None and proc.returncode is not None:
                return condition()
            await asyncio.sleep(POLL_INTERVAL)


def checkpoint_state(checkpoint: Path) -> dict[str, Any] | None:
    """The export checkpoint (replaced atomically, so never half written), None if absent."""
    try:
        data = checkpoint.read_bytes()
    except FileNotFoundError:
        return None
    state: dict[str, Any] = orjson.loads(data)
    return state


# --------------------------------------------------------------------------- local servers


@attrs.define
class LocalServer:
    """An aiohttp application served on 127.0.0.1 (a free port)."""

    port: int
    scheme: str = "http"

    @property
    def origin(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.origin}/collection/v1"

    def client(self, **kwargs: Any) -> AmiliClient:
        """A client of this server with a static token (no token endpoint involved)."""
        kwargs.setdefault("token", "static-test-token")
        return AmiliClient(base_url=self.base_url, **kwargs)


@asynccontextmanager
async def local_server(
    app: web.Application, *, ssl_context: Any = None
) -> AsyncIterator[LocalServer]:
    """Serve `app` on 127.0.0.1 until the block ends."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        port = int(runner.addresses[0][1])
        yield LocalServer(port, "https" if ssl_context is not None else "http")
    finally:
        await runner.cleanup()


@contextlib.contextmanager
def threaded_server(make_app: Callable[[], web.Application]) -> Iterator[LocalServer]:
    """Serve the app `make_app` builds on 127.0.0.1 from another thread with its own event loop.

    For tests that close or switch their own event loops while the server must stay up (and
    keep its connections open).
    """
    ready = threading.Event()
    started: dict[str, Any] = {}

    async def serve() -> None:
        runner = web.AppRunner(make_app(), access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            stop = asyncio.Event()
            started.update(
                port=int(runner.addresses[0][1]), stop=stop, loop=asyncio.get_running_loop()
            )
            ready.set()
            await stop.wait()
        finally:
            await runner.cleanup()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    try:
        assert ready.wait(CHILD_TIMEOUT), "the threaded server did not start"
        yield LocalServer(started["port"])
    finally:
        if "loop" in started:
            started["loop"].call_soon_threadsafe(started["stop"].set)
        thread.join(CHILD_TIMEOUT)
