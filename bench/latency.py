"""Prefetch and partitions at 20 ms simulated server latency (sandbox faults latency=20ms).

10,000 invoices in pages of 100, each run a fresh client process (--quick: one round):

1. a consumer spending 20 ms on each page (a downstream write), prefetch 1 vs prefetch 0:
   target >= 1.6x;
2. 8 partitions of the listing's time window vs one sequential listing: target >= 5x.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Row, child_main, ratio, run_child, sandbox, value

LATENCY = "20ms"
CONSUMER_WORK = 0.020  # seconds a page costs the consumer in the prefetch scenario
PAGE_SIZE = 100
MODES = ("sequential", "partitions", "no-prefetch", "prefetch")


async def listing(params: dict[str, Any]) -> dict[str, Any]:
    from amili_async import AmiliClient

    mode, org = params["mode"], params["org"]
    first = last = None
    count = 0
    async with AmiliClient(token=params["token"], base_url=params["base_url"]) as amili:
        start = time.perf_counter()
        if mode == "partitions":
            # The window of the data (as a user knows it), split into 8 equal time windows.
            low, high = (dt.datetime.fromisoformat(t) for t in params["window"].split("/"))
            pager = amili.invoices.list(org, page_size=PAGE_SIZE, from_=low, to=high, partitions=8)
        else:
            prefetch = 1 if mode == "prefetch" else 0
            pager = amili.invoices.list(org, page_size=PAGE_SIZE, prefetch=prefetch)
        async for page in pager.pages():
            count += len(page.items)
            if page.items and mode == "sequential":
                first = first or page.items[0].created_at
                last = page.items[-1].created_at
            if mode in ("prefetch", "no-prefetch"):
                await asyncio.sleep(CONSUMER_WORK)
        seconds = time.perf_counter() - start
    result: dict[str, Any] = {"count": count, "seconds": seconds}
    if first and last:
        result["window"] = f"{first.isoformat()}/{(last + dt.timedelta(seconds=1)).isoformat()}"
    return result


def measure(params: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(listing(params))


def rows(quick: bool) -> list[Row]:
    invoices, rounds = 10_000, (1 if quick else 3)
    seconds: dict[str, list[float]] = {mode: [] for mode in MODES}
    window = "-"
    with sandbox(invoices, faults=f"latency={LATENCY}") as sb:
        params = {"base_url": sb.base_url, "org": sb.org, "token": sb.token()}
        for _ in range(rounds):
            for mode in MODES:
                out = run_child("latency.py", kind=mode, mode=mode, window=window, **params)
                assert out["count"] == invoices, f"{mode}: {out['count']} of {invoices} invoices"
                window = out.get("window", window)
                seconds[mode].append(out["seconds"])
    at = f"{invoices:,} invoices, pages of {PAGE_SIZE}, {LATENCY} latency"
    return [
        ratio(
            f"prefetch 1 vs 0, consumer 20 ms/page ({at})",
            ">=",
            1.6,
            seconds["no-prefetch"],
            seconds["prefetch"],
        ),
        ratio(
            f"8 partitions vs one sequential listing ({at})",
            ">=",
            5.0,
            seconds["sequential"],
            seconds["partitions"],
        ),
        *(value(f"{mode} ({at}), seconds", None, 0, seconds[mode], "s") for mode in MODES),
    ]


if __name__ == "__main__":
    child_main(measure)
