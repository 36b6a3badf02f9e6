"""Streaming against the real sandbox with 16 partitions: the collector's work stays bounded per
page (counted collections, not time), as for a single listing (issue 19).

The sandbox runs in its own process (`amili-async sandbox --port 0`), so the collections
counted here are the client's alone.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import re
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from amili_async import AmiliClient

PAGE_SIZE = 250
"""Big enough pages that an unbalanced page (~3k containers) would make the collector run."""
INVOICES = 16 * 4 * PAGE_SIZE
"""Four pages a partition of 16: 64 pages in all."""


class Collections:
    """Collections the process runs while counting, by generation (from `gc.callbacks`)."""

    def __init__(self) -> None:
        self.by_generation = [0, 0, 0]
        self.counting = False

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if self.counting and phase == "start":
            self.by_generation[info["generation"]] += 1


@pytest.fixture
def collections() -> Iterator[Collections]:
    counter = Collections()
    gc.callbacks.append(counter)
    try:
        yield counter
    finally:
        gc.callbacks.remove(counter)


READY = re.compile(
    r"API (?P<base_url>\S+)  token (?P<token_url>\S+)  client (?P<client_id>\S+) / "
    r"(?P<client_secret>\S+)  org (?P<org>\S+)"
)
START = 60.0
"""Deadlock guard for the sandbox process to print that it listens (seeding is fast)."""


@asynccontextmanager
async def sandbox_process(invoices: int) -> AsyncIterator[dict[str, str]]:
    """`amili-async sandbox` on a free loopback port: its URLs, credentials and org; stopped
    (and awaited) on exit."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "amili_async",
        "sandbox",
        "--port=0",
        f"--invoices={invoices}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), START)
        found = READY.search(line.decode())
        assert found, line
        yield found.groupdict()
    finally:
        proc.terminate()
        await proc.wait()


@pytest.mark.parametrize("partitions", [1, 16])
async def test_streaming_runs_few_collections_per_page(
    collections: Collections, partitions: int
) -> None:
    async with sandbox_process(INVOICES) as sandbox:
        org = sandbox.pop("org")
        async with AmiliClient(**sandbox) as client:
            first = await client.invoices.list(org, page_size=1).collect(limit=1)
            assert first[0].created_at is not None
            start = first[0].created_at
            listing = client.invoices.list(
                org,
                from_=start,
                to=start + dt.timedelta(days=3650),
                partitions=partitions,
                page_size=PAGE_SIZE,
            )
            gc.collect()
            seen = 0
            collections.counting = True
            async for _invoice in listing:
                seen += 1
            collections.counting = False
            del _invoice
    assert seen == INVOICES
    pages = INVOICES // PAGE_SIZE
    young, middle, full = collections.by_generation
    # Unbalanced, each page would make the collector run at least once (~3k containers
    # a page against a threshold of 700), and merged pages did before issue 19 (67 runs).
    assert young + middle + full <= pages // 4, collections.by_generation
    assert full == 0
