"""Units on a Dask cluster (extra `amili-async[dask]`): one SDK client per worker process.

Dask schedules, balances, retries and re-runs; this module only gives each worker one event
loop (in a thread of its own, so the worker's heartbeats never wait for decoding) with one
`AmiliClient` on it, reused by every unit the worker runs, through a `WorkerPlugin`. A worker
that dies mid-unit leaves only staged rows on its scratch directory (never a file in its final
place); the scheduler runs the unit again elsewhere and, with a shared local root, it resumes
from its checkpoint. With an object store (`out_dir="s3://..."`) each worker stages on its own
local directory (`scratch_dir`, by default the worker's Dask `local_directory`): a unit
re-run on another worker starts its window over and writes the same key, so every row is in
the output exactly once either way. The driver commits the plan (Delta) and writes
`_SUCCESS` once every unit is done.

    from distributed import Client
    from amili_async.export import ClientSettings, plan_export
    from amili_async.export.dask import run_units_on_dask

    units = plan_export(orgs, from_=start, to=end, partitions_per_org=8)
    with Client("tcp://scheduler:8786") as dask:
        result = run_units_on_dask(dask, units, settings=ClientSettings(environment="production"),
                                   out_dir="/shared/export", format="parquet")
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

try:
    from distributed import Client, KilledWorker, WorkerPlugin, as_completed, get_worker
except ImportError as missing:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "amili_async.export.dask needs Dask: pip install 'amili-async[dask]'"
    ) from missing

from .._client import AmiliClient
from .._tasks import cancel_and_wait
from ._commit import finish_plan
from ._local import ExportFailedError, ExportResult
from ._manifest import UnitResult
from ._plan import ExportUnit
from ._settings import ClientSettings
from ._store import open_store
from ._unit import DEFAULT_PAGE_SIZE, check_format, run_unit

__all__ = [
    "DEFAULT_RETRIES",
    "PLUGIN_NAME",
    "Client",
    "ExportInterruptedError",
    "ExportWorkerPlugin",
    "KilledWorker",
    "run_units_on_dask",
]

T = TypeVar("T")

PLUGIN_NAME = "amili-async-export"
"""The name the worker plugin is registered under (registering again replaces it)."""
DEFAULT_RETRIES = 2
"""Times Dask re-runs a unit that raised (a worker's death is retried by the scheduler on its
own, `distributed.scheduler.allowed-failures` times): the client has already retried each
request within its own budget, so a unit failing three times is a real problem to report."""
_CLOSE_TIMEOUT = 30.0
"""Seconds a worker's teardown waits for its client to close its connections."""


class ExportInterruptedError(Exception):
    """`stop` was set, or the cluster was lost (`lost`: the scheduler went away, or cancelled
    the units): the units not finished did not run; running the plan again resumes them (the
    finished ones stay done)."""

    def __init__(self, result: ExportResult, *, lost: bool = False) -> None:
        why = "the cluster was lost" if lost else "interrupted"
        super().__init__(f"{why} after {len(result.units)} units: run the plan again to resume")
        self.result = result
        self.lost = lost


async def _shut_down(client: AmiliClient | None) -> None:
    """What `asyncio.run` does at its end, on a worker's loop: work still running there (a
    unit whose scheduler went away) is cancelled and awaited, the client closed, and one
    loop pass lets the closed connections finish closing (else a socket outlives the loop)."""
    await cancel_and_wait(t for t in asyncio.all_tasks() if t is not asyncio.current_task())
    if client is not None:
        await client.aclose()
    await asyncio.sleep(0)  # one pass of the loop: the transports' connection_lost callbacks


class ExportWorkerPlugin(WorkerPlugin):
    """Gives each worker an event loop thread and one client built from `settings`."""

    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: AmiliClient | None = None

    def setup(self, worker: Any) -> None:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name=PLUGIN_NAME, daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread

    def teardown(self, worker: Any) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        closing = asyncio.run_coroutine_threadsafe(_shut_down(self._client), loop)
        closing.result(_CLOSE_TIMEOUT)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(_CLOSE_TIMEOUT)
        loop.close()
        self._loop = self._thread = self._client = None

    def run(self, work: Callable[[AmiliClient], Awaitable[T]]) -> T:
        """Run `work(client)` on the worker's loop (from a task's thread) and wait for it."""
        if self._loop is None:
            raise RuntimeError("the export plugin is not set up on this worker")

        async def call() -> T:
            if self._client is None:
                self._client = self.settings.connect()  # built on the loop that uses it
            return await work(self._client)

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result()


def _run_on_worker(
    unit: ExportUnit,
    out_dir: str,
    fmt: str,
    page_size: int | None,
    storage_options: Mapping[str, Any] | None,
    scratch_dir: str | None,
) -> UnitResult:
    """A Dask task: one unit through this worker's client, staged on this worker's own
    directory when the output is an object store."""
    worker = get_worker()
    plugin = worker.plugins[PLUGIN_NAME]
    assert isinstance(plugin, ExportWorkerPlugin)
    if scratch_dir is None and open_store(out_dir, storage_options).local is None:
        scratch_dir = str(Path(worker.local_directory) / "amili-export")
    return plugin.run(
        lambda client: run_unit(
            unit,
            out_dir=out_dir,
            client=client,
            format=fmt,
            page_size=page_size,
            storage_options=storage_options,
            scratch_dir=scratch_dir,
        )
    )


def run_units_on_dask(
    dask: Client,
    units: Iterable[ExportUnit],
    *,
    settings: ClientSettings,
    out_dir: Path | str,
    format: str = "jsonl",
    page_size: int | None = DEFAULT_PAGE_SIZE,
    retries: int = DEFAULT_RETRIES,
    on_unit: Callable[[UnitResult], object] | None = None,
    stop: threading.Event | None = None,
    storage_options: Mapping[str, Any] | None = None,
    scratch_dir: Path | str | None = None,
) -> ExportResult:
    """Run the units on the cluster behind `dask` (a synchronous `distributed.Client`).

    Each unit is one task, keyed by its unit id and this run; results come back as units
    finish (`on_unit`), in plan order in the result. Failed units (after `retries`) do not stop
    the others: ExportFailedError lists them once every unit has ended. Setting `stop` (from
    any thread: a Ctrl-C handler) cancels every unit not finished yet at once and raises
    ExportInterruptedError; run_units sets `stop` itself when it returns, ending its watcher.
    `out_dir` is a directory every worker and the caller see, or an fsspec URL (with
    `storage_options`, sent to the workers); `scratch_dir`, a directory on each worker.
    """
    check_format(format)
    store = open_store(out_dir, storage_options)  # a URL nothing can write: before any work
    plan = list(units)
    run = uuid.uuid4().hex[:12]
    dask.register_plugin(ExportWorkerPlugin(settings), name=PLUGIN_NAME)
    futures = dask.map(
        _run_on_worker,
        plan,
        out_dir=str(out_dir),
        fmt=format,
        page_size=page_size,
        storage_options=dict(storage_options or {}),
        scratch_dir=None if scratch_dir is None else str(scratch_dir),
        # A key per run too: a unit cancelled by an interrupted run may still be forgotten by
        # the scheduler when the next run submits it.
        key=[f"amili-export-{unit.unit_id}-{run}" for unit in plan],
        retries=retries,
        pure=False,
    )
    by_key = {future.key: unit for future, unit in zip(futures, plan, strict=True)}
    results: dict[str, UnitResult] = {}
    failures: dict[str, BaseException] = {}
    stop = stop or threading.Event()
    ended = threading.Event()

    def cancel_on_stop() -> None:
        stop.wait()
        if not ended.is_set():
            dask.cancel(futures)  # type: ignore[no-untyped-call]  # pending ones never start

    watcher = threading.Thread(target=cancel_on_stop, name=f"{PLUGIN_NAME}-stop", daemon=True)
    watcher.start()
    lost = False
    try:
        for future in as_completed(futures):  # type: ignore[no-untyped-call]
            if future.cancelled():
                lost = lost or not stop.is_set()  # cancelled, not by us: the scheduler went
                continue
            unit = by_key[future.key]
            try:  # both reads: the scheduler can go between them (FutureCancelledError)
                error = future.exception()
                if error is None:
                    results[unit.unit_id] = future.result()
            except concurrent.futures.CancelledError:  # since the check: the scheduler went
                lost = lost or not stop.is_set()
                continue
            if error is not None:
                failures[unit.unit_id] = error
                continue
            if on_unit is not None:
                on_unit(results[unit.unit_id])
    except OSError:  # the scheduler's connection (CommClosedError, a timeout)
        lost = True
    finally:
        interrupted = stop.is_set()
        ended.set()
        stop.set()
        watcher.join()
    done = ExportResult(tuple(results[u.unit_id] for u in plan if u.unit_id in results))
    if interrupted or lost:
        raise ExportInterruptedError(done, lost=lost and not interrupted)
    if failures:
        raise ExportFailedError(failures, done)
    return ExportResult(tuple(finish_plan(store, plan, done.units, format)))
