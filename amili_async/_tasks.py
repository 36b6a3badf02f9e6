"""Stopping helper tasks (prefetch producers, bulk chunks) when their consumer goes away."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel `tasks` and wait until they are done, so none outlives its consumer.

    Their own cancellation (or failure: the consumer is leaving already) is expected and
    dropped; a cancellation of the *calling* task while it waits here propagates, never
    swallowed.
    """
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    for task in tasks:
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
        except Exception:
            continue
