"""Scale-out export throughput: invoices/s on one machine and per Dask worker process.

    .venv/bin/python bench/export_scale.py [--orgs 4] [--invoices 25000] [--repeat 2]

The sandbox runs in its own process; the plan (8 units per organisation, JSON Lines) runs on
one event loop in this process, then on a Dask LocalCluster of 1 and of 2 worker processes (2
threads each, one SDK client per worker). Every run starts from an empty directory; cluster
start-up is not timed. Prints min and median seconds and rows/s, rows/s per worker process, and
rows per CPU-second of a worker (what a worker does with a core of its own, whatever the load).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from amili_async.export import ClientSettings, ExportUnit, plan_export, run_units
from amili_async.sandbox import SandboxConfig, SandboxServer, make_orgs, serve_forever

# Seeded createdAt runs from 2024-01-02T07:00Z, one invoice every 30 s: 50,000 fit in 18 days.
FROM = dt.datetime(2024, 1, 2, tzinfo=dt.UTC)
TO = dt.datetime(2024, 2, 1, tzinfo=dt.UTC)
PARTITIONS = 8


def _serve(orgs: int, invoices: int, queue: Any) -> None:
    def ready(server: SandboxServer) -> None:
        counts = sum(s.invoice_count for s in server.state.orgs.values())
        queue.put((server.base_url, server.token_url, server.client_id, server.client_secret,
                   [o.id for o in server.config.orgs[:orgs]], counts))  # fmt: skip

    config = SandboxConfig(orgs=make_orgs(orgs), seeded_orgs=orgs, invoices=invoices)
    asyncio.run(serve_forever(config, ready=ready))


def _timed(run: Callable[[Path], int], repeat: int) -> list[tuple[float, int]]:
    out: list[tuple[float, int]] = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="amili-scale-") as tmp:
            started = time.perf_counter()
            rows = run(Path(tmp))
            out.append((time.perf_counter() - started, rows))
    return out


def _report(name: str, processes: int, runs: list[tuple[float, int]]) -> None:
    seconds = [s for s, _ in runs]
    rows = runs[0][1]
    best, median = min(seconds), statistics.median(seconds)
    print(
        f"{name:<28} {rows:>8,} rows  min {best:6.2f} s  median {median:6.2f} s  "
        f"{rows / median:>8,.0f} rows/s  {rows / median / processes:>8,.0f} rows/s per process"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orgs", type=int, default=4)
    parser.add_argument("--invoices", type=int, default=25_000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    sandbox = context.Process(target=_serve, args=(args.orgs, args.invoices, queue), daemon=True)
    sandbox.start()
    try:
        base_url, token_url, client_id, secret, orgs, total = queue.get(timeout=120)
        settings = ClientSettings(
            base_url=base_url, token_url=token_url, client_id=client_id, client_secret=secret
        )
        plan: list[ExportUnit] = plan_export(orgs, from_=FROM, to=TO, partitions_per_org=PARTITIONS)
        print(f"{len(plan)} units, {total:,} invoices; {os.cpu_count()} CPUs; "
              f"load average {os.getloadavg()[0]:.1f} at start")  # fmt: skip

        def one_machine(out: Path) -> int:
            return asyncio.run(run_units(plan, settings=settings, out_dir=out)).total

        _report("one machine (1 process)", 1, _timed(one_machine, args.repeat))

        from distributed import Client, LocalCluster

        from amili_async.export import dask as export_dask

        for workers in (1, 2):
            with (
                # The scheduler's HTTP server binds 8787 even with the dashboard off
                # (dashboard_address=None): a free loopback port instead.
                LocalCluster(n_workers=workers, threads_per_worker=2, processes=True,
                             host="127.0.0.1", dashboard_address="127.0.0.1:0",
                             worker_dashboard_address=None, silence_logs=40) as cluster,
                Client(cluster) as dask,
            ):  # fmt: skip

                def on_dask(out: Path, dask: Any = dask) -> int:
                    return export_dask.run_units_on_dask(
                        dask, plan, settings=settings, out_dir=out
                    ).total

                _timed(on_dask, 1)  # untimed warm-up: the workers import, connect, get a token
                before = dask.run(time.process_time)
                runs = _timed(on_dask, args.repeat)
                after = dask.run(time.process_time)
                _report(f"dask, {workers} worker(s)", workers, runs)
                cpu = sum(after[w] - before[w] for w in after)
                rows = sum(r for _, r in runs)
                print(f"{'':<28} workers' CPU: {cpu:.1f} s for {rows:,} rows = "
                      f"{rows / cpu:,.0f} rows per CPU-second of a worker")  # fmt: skip
        print(f"load average {os.getloadavg()[0]:.1f} at the end")
    finally:
        sandbox.terminate()
        sandbox.join()


if __name__ == "__main__":
    sys.exit(main())
