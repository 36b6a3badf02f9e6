"""One machine: units run concurrently on one event loop, through one client."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from .._client import AmiliClient
from ..errors import AmiliError
from ._commit import finish_plan
from ._manifest import UnitResult
from ._plan import ExportUnit
from ._settings import ClientSettings
from ._store import open_store
from ._unit import DEFAULT_PAGE_SIZE, check_format, run_unit

__all__ = ["DEFAULT_UNIT_CONCURRENCY", "ExportFailedError", "ExportResult", "run_units"]

DEFAULT_UNIT_CONCURRENCY = 4
"""Units listed at once: each keeps one page in flight and one ahead (prefetch), so four keep
eight requests going, enough to hide a ~100 ms round trip behind decoding on one core."""


@attrs.frozen
class ExportResult:
    """Per-unit results (in plan order) and the total number of rows."""

    units: tuple[UnitResult, ...]

    @property
    def total(self) -> int:
        return sum(u.rows for u in self.units)

    @property
    def by_org(self) -> dict[str, int]:
        """Rows per organisation."""
        counts: dict[str, int] = {}
        for unit in self.units:
            counts[unit.org_id] = counts.get(unit.org_id, 0) + unit.rows
        return counts

    @property
    def skipped(self) -> int:
        """Units found done when they ran: by an earlier run, or by an earlier attempt of this
        run on a worker that died before Dask learnt of its result."""
        return sum(u.skipped for u in self.units)


class ExportFailedError(AmiliError):
    """Some units failed; the others are done (and stay done: run the plan again to finish)."""

    def __init__(self, failures: dict[str, BaseException], result: ExportResult) -> None:
        first = next(iter(failures.values()))
        super().__init__(
            f"{len(failures)} of {len(failures) + len(result.units)} units failed "
            f"(first: {type(first).__name__}: {first}); run the plan again to resume them"
        )
        self.failures = failures
        self.result = result


async def run_units(
    units: Iterable[ExportUnit],
    *,
    out_dir: Path | str,
    client: AmiliClient | None = None,
    settings: ClientSettings | None = None,
    format: str = "jsonl",
    concurrency: int = DEFAULT_UNIT_CONCURRENCY,
    page_size: int | None = DEFAULT_PAGE_SIZE,
    on_rows: Callable[[int], object] | None = None,
    on_unit: Callable[[UnitResult], object] | None = None,
    storage_options: Mapping[str, Any] | None = None,
    scratch_dir: Path | str | None = None,
) -> ExportResult:
    """Run every unit on this event loop through one client (`client`, or one built from
    `settings`), `concurrency` at a time, into `out_dir` (a directory or an fsspec URL).
    Units already done are skipped; a failed unit does not stop the others, and
    ExportFailedError lists the failures once all have ended. Once all are done the plan is
    committed (Delta) and `_SUCCESS` written."""
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    check_format(format)
    store = open_store(out_dir, storage_options)  # a URL nothing can write: before any work
    plan: Sequence[ExportUnit] = list(units)
    if client is None:
        if settings is None:
            raise ValueError("pass client= or settings=")
        async with settings.connect() as own:
            return await run_units(
                plan,
                out_dir=out_dir,
                client=own,
                format=format,
                concurrency=concurrency,
                page_size=page_size,
                on_rows=on_rows,
                on_unit=on_unit,
                storage_options=storage_options,
                scratch_dir=scratch_dir,
            )
    gate = asyncio.Semaphore(concurrency)

    async def one(unit: ExportUnit) -> UnitResult:
        async with gate:
            result = await run_unit(
                unit,
                out_dir=out_dir,
                client=client,
                format=format,
                page_size=page_size,
                on_rows=on_rows,
                storage_options=storage_options,
                scratch_dir=scratch_dir,
            )
        if on_unit is not None:
            on_unit(result)
        return result

    outcomes = await asyncio.gather(*(one(u) for u in plan), return_exceptions=True)
    done = tuple(r for r in outcomes if isinstance(r, UnitResult))
    failures = {
        unit.unit_id: outcome
        for unit, outcome in zip(plan, outcomes, strict=True)
        if isinstance(outcome, BaseException)
    }
    for outcome in failures.values():
        if not isinstance(outcome, Exception):  # cancellation, KeyboardInterrupt: not ours
            raise outcome
    if failures:
        raise ExportFailedError(failures, ExportResult(done))
    committed = await asyncio.to_thread(finish_plan, store, plan, done, format)
    return ExportResult(tuple(committed))
