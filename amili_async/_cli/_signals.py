"""Stopping a command on Ctrl-C (SIGINT) or SIGTERM, however the process was started.

A shell starts a background job with SIGINT ignored, and Python then never installs its
KeyboardInterrupt handler: `amili-async sandbox &` or a `webhooks listen` under a script would
ignore Ctrl-C and `kill -INT` for good, and SIGTERM (what a container runtime or systemd sends)
killed every command without its clean-up. Like aiohttp's `run_app`, every command takes both
signals through the event loop instead: the command's task is cancelled, its `finally` and
`async with` blocks run (an export's checkpoint stays consistent), and `main` reports the stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["STOP_SIGNALS", "Interrupted", "interruptible"]

T = TypeVar("T")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""Ctrl-C and the polite stop of process managers; SIGHUP keeps its default (end)."""


class Interrupted(Exception):
    """The command was stopped by `signum`; its exit status is 128 + signum (shell rule)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_status(self) -> int:
        """130 for SIGINT, 143 for SIGTERM, as a shell reports a process a signal ended."""
        return 128 + self.signum


async def interruptible(command: Awaitable[T]) -> T:
    """Await `command`; SIGINT or SIGTERM cancels it and raises `Interrupted` once it unwound.

    Where the loop cannot take signals (Windows, or not the main thread) the handlers are
    left as they are: Ctrl-C then still raises KeyboardInterrupt through `asyncio.run`."""
    task = asyncio.current_task()
    assert task is not None  # called as asyncio.run's main coroutine
    loop = asyncio.get_running_loop()
    received: list[int] = []

    def stop(signum: int) -> None:
        received.append(signum)
        task.cancel()

    installed = []
    for signum in STOP_SIGNALS:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop, signum)
            installed.append(signum)
    try:
        return await command
    except asyncio.CancelledError:
        if not received:
            raise
        raise Interrupted(received[0]) from None
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
