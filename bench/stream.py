"""Stream every invoice at page size 1000: ours vs the raw floor, invoices/s and peak RSS.

Ours is `async for invoice in client.invoices.list(org, page_size=1000)` (default prefetch);
the floor is aiohttp + orjson.loads per page, following summary.nextPageToken, no models. The
sandbox (its own process) holds exactly the listing streamed, 200,000 and 1,000,000 invoices
(--quick: 20,000 and 100,000), so every run reads its listing to the end; each run is a fresh
client process, the two clients alternating; their CPU time is shown too (the throughput of
ours depends on building a page's models on one core while the sandbox renders the next page
on the other). Targets: ours >= 0.85x the floor's invoices/s, peak RSS < 100 MB and flat
(growth from the small listing to the large one <= 10 MB).
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Row, child_main, peak_rss_mb, rate, ratio, run_child, sandbox, value

PAGE_SIZE = 1000
CLIENTS = ("raw", "ours")


async def stream_ours(params: dict[str, Any]) -> int:
    from amili_async import AmiliClient

    count = 0
    async with AmiliClient(token=params["token"], base_url=params["base_url"]) as amili:
        async for _invoice in amili.invoices.list(params["org"], page_size=PAGE_SIZE):
            count += 1
    return count


async def stream_raw(params: dict[str, Any]) -> int:
    import aiohttp
    import orjson

    url = f"{params['base_url']}/orgs/{params['org']}/invoices"
    headers = {"Authorization": f"Bearer {params['token']}", "Accept": "application/json"}
    count = 0
    page_token = None
    async with aiohttp.ClientSession() as session:
        while True:
            query = {"PageSize": str(PAGE_SIZE)}
            if page_token:
                query["PageToken"] = page_token
            async with session.get(url, params=query, headers=headers) as resp:
                resp.raise_for_status()
                body = await resp.read()
            page = orjson.loads(body)
            for _invoice in page["data"]:
                count += 1
            page_token = (page.get("summary") or {}).get("nextPageToken")
            if not page_token:
                return count


def measure(params: dict[str, Any]) -> dict[str, Any]:
    run = stream_ours if params["kind"] == "ours" else stream_raw
    start, cpu_start = time.perf_counter(), time.process_time()
    count = asyncio.run(run(params))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {"count": count, "seconds": seconds, "cpu": cpu, "rss_mb": peak_rss_mb()}


def rows(quick: bool) -> list[Row]:
    small, large = (20_000, 100_000) if quick else (200_000, 1_000_000)
    repeat = 1 if quick else 2
    seconds: dict[tuple[int, str], list[float]] = {}
    cpu: dict[tuple[int, str], list[float]] = {}
    rss: dict[tuple[int, str], list[float]] = {}
    for size in (small, large):
        with sandbox(size) as sb:
            params = {"base_url": sb.base_url, "org": sb.org, "token": sb.token()}
            for _ in range(repeat):
                for kind in CLIENTS:
                    out = run_child("stream.py", kind=kind, **params)
                    assert out["count"] == size, f"{kind} streamed {out['count']} of {size}"
                    seconds.setdefault((size, kind), []).append(out["seconds"])
                    cpu.setdefault((size, kind), []).append(out["cpu"])
                    rss.setdefault((size, kind), []).append(out["rss_mb"])
    big, ours_big, raw_big = f"{large:,}", rss[large, "ours"], rss[large, "raw"]
    growth = [b - s for b, s in zip(ours_big, rss[small, "ours"], strict=True)]
    return [
        ratio(
            f"stream {big} (page {PAGE_SIZE}): ours / raw floor, invoices/s",
            ">=",
            0.85,
            seconds[large, "raw"],
            seconds[large, "ours"],
        ),
        rate(f"stream {big}: ours", large, seconds[large, "ours"], "invoices/s"),
        rate(
            f"stream {big}: raw aiohttp + orjson floor", large, seconds[large, "raw"], "invoices/s"
        ),
        ratio(
            f"stream {big}: client CPU time, ours / raw floor",
            None,
            0,
            cpu[large, "ours"],
            cpu[large, "raw"],
        ),
        ratio(
            f"stream {small:,}: ours / raw floor, invoices/s",
            None,
            0,
            seconds[small, "raw"],
            seconds[small, "ours"],
        ),
        value(f"stream {big}: ours peak RSS (worst run)", "<", 100, ours_big, "MB", worst=max),
        value(
            f"stream: ours peak RSS growth {small:,} -> {big}", "<=", 10, growth, "MB", worst=max
        ),
        value(f"stream {big}: raw floor peak RSS", None, 0, raw_big, "MB"),
    ]


if __name__ == "__main__":
    child_main(measure)
