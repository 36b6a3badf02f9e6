"""Stream invoices from a local sandbox: throughput, peak memory, prefetch and partitions.

The sandbox runs in its own process (as Amili would), the client streams from it over
loopback. Figures printed side by side in one run:

1. invoices/s and peak RSS of the client while streaming N invoices, for growing N (peak RSS
   must stay flat and under 150 MB: memory bounded by the prefetch depth, not the listing);
2. prefetch on vs off at 20 ms server latency, for a consumer that spends 20 ms on each page
   (a downstream write): target >= 1.6x;
3. 8 partitions vs one sequential listing at 20 ms server latency: target >= 5x.

Each measurement runs in a fresh client process so peak RSS is its own.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import print_table

from amili_async import AmiliClient

ORG = "3fa85f64-5717-4562-b3fc-2c963f66afa6"  # the sandbox's default organization
LATENCY = "20ms"  # the simulated server latency of the targets
CONSUMER_WORK = 0.020  # seconds a page costs the consumer in the prefetch scenario


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def sandbox(invoices: int, faults: str | None = None) -> Iterator[str]:
    """Run `amili-async sandbox` in a child process; yield its base URL once it answers."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "amili_async",
        "sandbox",
        f"--port={port}",
        f"--invoices={invoices}",
    ]
    if faults:
        cmd.append(f"--faults={faults}")
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if child.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("sandbox did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/collection/v1"
    finally:
        child.terminate()
        child.wait(timeout=30)


def client(base_url: str) -> AmiliClient:
    return AmiliClient(client_id="sandbox", client_secret="sandbox-secret", base_url=base_url)


async def measure(
    base_url: str, mode: str, page_size: int, limit: int | None, window: str
) -> dict[str, float | str]:
    """One measurement inside this (fresh) process."""
    first = last = None
    async with client(base_url) as amili:
        start = time.perf_counter()
        count = 0
        if mode == "partitions":
            # The window of the data (as a user knows it), split into 8 equal time windows.
            low, high = (dt.datetime.fromisoformat(t) for t in window.split("/"))
            pager = amili.invoices.list(ORG, page_size=page_size, from_=low, to=high, partitions=8)
        else:
            prefetch = 0 if mode in ("sequential", "no-prefetch") else 1
            pager = amili.invoices.list(ORG, page_size=page_size, prefetch=prefetch)
        async for page in pager.pages():
            count += len(page.items)
            if page.items and mode == "sequential":
                first = first or page.items[0].created_at
                last = page.items[-1].created_at
            if mode in ("prefetch", "no-prefetch"):
                await asyncio.sleep(CONSUMER_WORK)
            if limit is not None and count >= limit:
                break
        seconds = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result: dict[str, float | str] = {
        "count": count,
        "seconds": seconds,
        "peak_rss_mb": peak_kb / 1024,
    }
    if first and last:
        result["window"] = f"{first.isoformat()}/{(last + dt.timedelta(seconds=1)).isoformat()}"
    return result


def run_child(
    base_url: str, mode: str, page_size: int, limit: int | None = None, window: str = "-"
) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter (its peak RSS is the measurement's own)."""
    args = [base_url, mode, str(page_size), str(limit or 0), window]
    cmd = [sys.executable, __file__, "--child", *args]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs=5)
    parser.add_argument("--max", type=int, default=1_000_000, help="largest listing streamed")
    args = parser.parse_args()
    if args.child:
        base_url, mode, page_size, limit, window = args.child
        result = asyncio.run(measure(base_url, mode, int(page_size), int(limit) or None, window))
        print(json.dumps(result))
        return

    counts = sorted({c for c in (100_000, 300_000, args.max) if c <= args.max})
    rows = []
    with sandbox(args.max) as base_url:
        for count in counts:
            r = run_child(base_url, "stream", 1000, count)
            rows.append(
                [
                    f"{int(r['count']):,}",
                    f"{r['count'] / r['seconds']:,.0f}",
                    f"{r['seconds']:.1f}",
                    f"{r['peak_rss_mb']:.0f}",
                ]
            )
    print_table(
        "stream invoices (page size 1000, prefetch 1); target: peak RSS < 150 MB, flat",
        ["invoices", "invoices/s", "seconds", "peak RSS MB"],
        rows,
    )
    peaks = [float(r[3]) for r in rows]
    print(
        f"peak RSS {'PASS' if max(peaks) < 150 else 'FAIL'} (max {max(peaks):.0f} MB, "
        f"growth {peaks[-1] - peaks[0]:+.0f} MB from {rows[0][0]} to {rows[-1][0]})"
    )
    # Same stream with prefetch off: what overlapping the server's time with our decoding buys.
    with sandbox(counts[0]) as base_url:
        off = run_child(base_url, "sequential", 1000, counts[0])
        on = run_child(base_url, "stream", 1000, counts[0])
    print(
        f"{counts[0]:,} invoices without prefetch: {off['count'] / off['seconds']:,.0f}/s; "
        f"with prefetch 1: {on['count'] / on['seconds']:,.0f}/s "
        f"({off['seconds'] / on['seconds']:.2f}x, no consumer work)"
    )

    pages = 100
    with sandbox(pages * 100, faults=f"latency={LATENCY}") as base_url:
        off = run_child(base_url, "no-prefetch", 100)
        on = run_child(base_url, "prefetch", 100)
        seq = run_child(base_url, "sequential", 100)
        part = run_child(base_url, "partitions", 100, window=seq["window"])
    speed = [
        ["no prefetch (consumer 20 ms/page)", f"{off['seconds']:.2f}", "1.00x"],
        [
            "prefetch 1 (consumer 20 ms/page)",
            f"{on['seconds']:.2f}",
            f"{off['seconds'] / on['seconds']:.2f}x",
        ],
        ["sequential listing", f"{seq['seconds']:.2f}", "1.00x"],
        ["8 partitions", f"{part['seconds']:.2f}", f"{seq['seconds'] / part['seconds']:.2f}x"],
    ]
    print_table(
        f"{pages * 100:,} invoices in pages of 100 at {LATENCY} server latency",
        ["scenario", "seconds", "speed-up"],
        speed,
    )
    prefetch_x = off["seconds"] / on["seconds"]
    partition_x = seq["seconds"] / part["seconds"]
    print(
        f"prefetch speed-up {prefetch_x:.2f}x (target >= 1.6x): "
        f"{'PASS' if prefetch_x >= 1.6 else 'FAIL'}"
    )
    print(
        f"8-partition speed-up {partition_x:.2f}x (target >= 5x): "
        f"{'PASS' if partition_x >= 5 else 'FAIL'}"
    )
    assert int(part["count"]) == int(seq["count"]) == pages * 100, "every invoice exactly once"


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
