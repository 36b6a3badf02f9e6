"""Stream every invoice at page size 1000: ours vs the raw floors, client CPU, RSS and GC.

Ours is `async for invoice in client.invoices.list(org, page_size=1000)` (default prefetch);
the plain floor is aiohttp + orjson.loads per page, following summary.nextPageToken, no models;
the GC-paused floor is the same with each page parsed while cyclic GC is paused and the
previous page let go inside that pause, as our pager does (`_pagination._Ledger`): the plain
floor spends a third of its CPU in GC, so "ours / plain floor" flatters us (issue 24). The
sandbox (its own process) holds exactly the listing streamed, 200,000 and 1,000,000 invoices
(--quick: 20,000 and 100,000), so every run reads its listing to the end; each run is a fresh
client process, the clients alternating. Variants at the large size: ours with 16 partitions,
and ours and the paused floor with a consumer whose loop body creates a reference cycle per
invoice. Client CPU per 1,000 invoices is the figure (the sandbox bounds throughput); GC
collections are counted (`gc.callbacks`) per 100 pages. Targets: ours >= 0.85x the plain
floor's invoices/s; client CPU <= 1.5x the GC-paused floor's (issue 24), also with cycles and
with 16 partitions; peak RSS < 100 MB (16 partitions too) and flat (growth from the small
listing to the large one <= 10 MB).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Row, child_main, peak_rss_mb, rate, ratio, run_child, sandbox, value

PAGE_SIZE = 1000
PARTITIONS = 16
CLIENTS = ("raw", "raw-paused", "ours")
"""Run at both sizes."""
VARIANTS = ("ours-16", "ours-cycles", "raw-paused-cycles")
"""Run at the large size only."""


def consume(cycles: bool) -> Any:
    """The consumer's loop body: nothing, or a reference cycle per invoice (a parent/child
    pair, as an ORM or a tree builder makes), garbage only the collector frees."""
    if not cycles:
        return None

    def body(invoice: Any) -> None:
        node: dict[str, Any] = {"invoice": invoice}
        node["self"] = node

    return body


async def stream_ours(params: dict[str, Any], partitions: int | None, cycles: bool) -> int:
    from amili_async import AmiliClient

    body = consume(cycles)
    count = 0
    window: dict[str, Any] = {}
    if partitions:
        from amili_async.sandbox._seed import SEED_START_MS, STEP_MS

        start = dt.datetime.fromtimestamp(SEED_START_MS / 1000, dt.UTC)
        # The seeded invoices are STEP_MS apart (with less jitter than a step): every one is
        # inside, and each partition gets about the same share.
        end = start + dt.timedelta(milliseconds=(params["size"] + 1) * STEP_MS)
        window = {"from_": start, "to": end, "partitions": partitions}
    async with AmiliClient(token=params["token"], base_url=params["base_url"]) as amili:
        async for invoice in amili.invoices.list(params["org"], page_size=PAGE_SIZE, **window):
            count += 1
            if body is not None:
                body(invoice)
    return count


async def stream_raw(params: dict[str, Any], paused: bool, cycles: bool) -> int:
    import aiohttp
    import orjson

    url = f"{params['base_url']}/orgs/{params['org']}/invoices"
    headers = {"Authorization": f"Bearer {params['token']}", "Accept": "application/json"}
    body = consume(cycles)
    count = 0
    page_token = None
    page: Any = None
    async with aiohttp.ClientSession() as session:
        while True:
            query = {"PageSize": str(PAGE_SIZE)}
            if page_token:
                query["PageToken"] = page_token
            async with session.get(url, params=query, headers=headers) as resp:
                resp.raise_for_status()
                content = await resp.read()
            if paused:
                # Parsed with GC off, the previous page freed inside the same pause.
                gc.disable()
                page = orjson.loads(content)
                gc.enable()
            else:
                page = orjson.loads(content)
            for invoice in page["data"]:
                count += 1
                if body is not None:
                    body(invoice)
            page_token = (page.get("summary") or {}).get("nextPageToken")
            if not page_token:
                return count


def measure(params: dict[str, Any]) -> dict[str, Any]:
    kind = params["kind"]
    cycles = kind.endswith("-cycles")
    base = kind.removesuffix("-cycles")
    if base.startswith("ours"):
        partitions = PARTITIONS if base == "ours-16" else None
        run: Any = stream_ours(params, partitions, cycles)
    else:
        run = stream_raw(params, base == "raw-paused", cycles)
    collections = [0, 0, 0]

    def count(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            collections[info["generation"]] += 1

    gc.callbacks.append(count)
    start, cpu_start = time.perf_counter(), time.process_time()
    streamed = asyncio.run(run)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    gc.callbacks.remove(count)
    return {
        "count": streamed,
        "seconds": seconds,
        "cpu": cpu,
        "rss_mb": peak_rss_mb(),
        "collections": collections,
    }


def rows(quick: bool) -> list[Row]:
    small, large = (20_000, 100_000) if quick else (200_000, 1_000_000)
    repeat = 1 if quick else 2
    out: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for size in (small, large):
        with sandbox(size) as sb:
            params = {"base_url": sb.base_url, "org": sb.org, "token": sb.token(), "size": size}
            kinds = CLIENTS + (VARIANTS if size == large else ())
            for _ in range(repeat):
                for kind in kinds:
                    got = run_child("stream.py", kind=kind, **params)
                    assert got["count"] == size, f"{kind} streamed {got['count']} of {size}"
                    out.setdefault((size, kind), []).append(got)

    def series(size: int, kind: str, key: str) -> list[Any]:
        return [run[key] for run in out[size, kind]]

    def cpu_per_1000(kind: str) -> list[float]:
        return [cpu / large * 1000 for cpu in series(large, kind, "cpu")]

    def collections_per_100_pages(kind: str) -> list[float]:
        pages = large / PAGE_SIZE
        return [sum(c) / pages * 100 for c in series(large, kind, "collections")]

    big = f"{large:,}"
    ours_big = series(large, "ours", "rss_mb")
    growth = [b - s for b, s in zip(ours_big, series(small, "ours", "rss_mb"), strict=True)]
    result = [
        ratio(
            f"stream {big} (page {PAGE_SIZE}): ours / plain floor, invoices/s",
            ">=",
            0.85,
            series(large, "raw", "seconds"),
            series(large, "ours", "seconds"),
        ),
        rate(f"stream {big}: ours", large, series(large, "ours", "seconds"), "invoices/s"),
        rate(
            f"stream {big}: plain aiohttp + orjson floor",
            large,
            series(large, "raw", "seconds"),
            "invoices/s",
        ),
        ratio(
            f"stream {small:,}: ours / plain floor, invoices/s",
            None,
            0,
            series(small, "raw", "seconds"),
            series(small, "ours", "seconds"),
        ),
    ]
    for ours, floor, what in (
        ("ours", "raw-paused", ""),
        ("ours-cycles", "raw-paused-cycles", ", a consumer making cycles"),
        ("ours-16", "raw-paused", f", ours with {PARTITIONS} partitions"),
    ):
        result.append(
            ratio(
                f"stream {big}{what}: client CPU, ours / GC-paused floor",
                "<=",
                1.5,
                cpu_per_1000(ours),
                cpu_per_1000(floor),
            )
        )
    result.append(
        ratio(
            f"stream {big}: client CPU, ours / plain floor",
            None,
            0,
            cpu_per_1000("ours"),
            cpu_per_1000("raw"),
        )
    )
    for kind in CLIENTS + VARIANTS:
        result.append(
            value(
                f"stream {big}: client CPU per 1,000 invoices, {kind}",
                None,
                0,
                cpu_per_1000(kind),
                "ms",
                scale=1e3,
            )
        )
    for kind in ("ours", "ours-16", "ours-cycles", "raw", "raw-paused"):
        result.append(
            value(
                f"stream {big}: GC collections per 100 pages, {kind}",
                None,
                0,
                collections_per_100_pages(kind),
                "",
            )
        )
    result += [
        value(f"stream {big}: ours peak RSS (worst run)", "<", 100, ours_big, "MB", worst=max),
        value(
            f"stream {big}: ours with {PARTITIONS} partitions, peak RSS (worst run)",
            "<",
            100,
            series(large, "ours-16", "rss_mb"),
            "MB",
            worst=max,
        ),
        value(
            f"stream {big}: ours with cycles, peak RSS (worst run)",
            None,
            0,
            series(large, "ours-cycles", "rss_mb"),
            "MB",
            worst=max,
        ),
        value(
            f"stream: ours peak RSS growth {small:,} -> {big}", "<=", 10, growth, "MB", worst=max
        ),
        value(f"stream {big}: plain floor peak RSS", None, 0, series(large, "raw", "rss_mb"), "MB"),
    ]
    return result


if __name__ == "__main__":
    child_main(measure)
