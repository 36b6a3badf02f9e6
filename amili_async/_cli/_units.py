"""`amili-async export invoices --orgs-file ORGS.txt --out-dir DIR`: many organisations in units.

The plan (`amili_async.export.plan_export`) runs on this machine, one client, or on a Dask
cluster (`--dask-scheduler ADDRESS`). Progress counts units and rows; the summary gives the
total, the units already done before this run, and the rate.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..export import (
    DEFAULT_UNIT_CONCURRENCY,
    FORMATS,
    ClientSettings,
    ExportFailedError,
    ExportResult,
    ExportUnit,
    UnitResult,
    plan_export,
    restart_unit,
    run_units,
)
from ._args import hint_and_exit, input_file, integer, output_dir
from ._progress import Progress, plural


def add_arguments(export: argparse.ArgumentParser) -> None:
    """The options of a multi-organisation export (used instead of --org and --out)."""
    group = export.add_argument_group("many organisations, in units (instead of --org/--out)")
    group.add_argument(
        "--orgs-file", type=input_file(), help="organisation ids, one a line (# comments)"
    )
    group.add_argument(
        "--out-dir", type=output_dir, help="directory of the files and their manifest"
    )
    group.add_argument("--format", choices=sorted(FORMATS), default="jsonl", help="file format")
    group.add_argument(
        "--partitions-per-org",
        type=integer(1),
        default=1,
        help="units per organisation (needs --from/--to)",
    )
    group.add_argument("--dask-scheduler", metavar="ADDRESS", help="run the units on this cluster")
    group.add_argument(
        "--concurrency",
        type=integer(1),
        default=DEFAULT_UNIT_CONCURRENCY,
        help="units at once without Dask",
    )
    group.add_argument(
        "--restart-unit",
        action="append",
        default=[],
        metavar="ID",
        help="forget this unit's state and export it from its start (after an error naming it)",
    )


def check_arguments(prog: str, args: argparse.Namespace) -> None:
    """Either --org and --out (one listing) or --orgs-file and --out-dir (units), not both."""
    if args.orgs_file is None:
        if args.restart_unit:
            hint_and_exit(prog, "--restart-unit: goes with --orgs-file and --out-dir")
        missing = [flag for flag, value in (("--org", args.org), ("--out", args.out)) if not value]
        if missing:
            hint_and_exit(
                prog,
                f"the following arguments are required: {', '.join(missing)} "
                "(or --orgs-file and --out-dir)",
            )
        return
    if args.what != "invoices":
        hint_and_exit(prog, "--orgs-file: exports invoices only")
    if args.out_dir is None:
        hint_and_exit(prog, "--orgs-file: needs --out-dir")
    if args.partitions_per_org > 1 and (args.from_ is None or args.to is None):
        hint_and_exit(prog, "--partitions-per-org: needs --from and --to (the window to cut)")
    if args.org or args.out or args.resume or args.partitions or args.force:
        hint_and_exit(
            prog,
            "--orgs-file goes with --out-dir: leave out --org, --out, --resume, --partitions, "
            "--force",
        )


def read_orgs(path: Path) -> list[str]:
    """Organisation ids from a file: one a line, blank lines and `#` comments skipped."""
    lines = (
        line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines()
    )
    orgs = [line for line in lines if line]
    if not orgs:
        raise ValueError(f"{path.name} names no organisation")
    return orgs


def _time(value: str | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromisoformat(value)


async def export_units(args: argparse.Namespace, settings: ClientSettings) -> int:
    """Plan, run (here or on Dask), print the summary; the exit status."""
    filters = {"status": args.status, "type": args.type}
    units = plan_export(
        read_orgs(args.orgs_file),
        from_=_time(args.from_),
        to=_time(args.to),
        partitions_per_org=args.partitions_per_org,
        filters={k: v for k, v in filters.items() if v is not None},
    )
    _restart(args, units)
    on_dask = bool(args.dask_scheduler)
    progress = _UnitProgress(len(units), streamed=not on_dask, enabled=not args.no_progress)
    started = time.monotonic()
    try:
        if on_dask:
            stop = threading.Event()  # Ctrl-C: the units not finished are cancelled at once
            try:
                result = await asyncio.to_thread(
                    _on_dask, args, settings, units, progress.unit_done, stop
                )
            except asyncio.CancelledError:
                stop.set()
                raise
        else:
            result = await run_units(
                units,
                settings=settings,
                out_dir=args.out_dir,
                format=args.format,
                concurrency=args.concurrency,
                page_size=args.page_size,
                on_rows=progress.rows,
                on_unit=progress.unit_done,
            )
    except ImportError as missing:  # an extra that is not installed: say which
        print(f"amili-async: error: {missing}", file=sys.stderr)
        return 1
    except ExportFailedError as failed:
        progress.close()
        print(f"amili-async: error: {failed}", file=sys.stderr)
        return 1
    progress.close()
    seconds = time.monotonic() - started
    ran = len(result.units) - result.skipped
    rate = f", {result.total / seconds:,.0f} rows/s" if seconds > 0 and ran else ""
    print(
        f"exported {result.total:,} invoices of {len(result.by_org):,} organisations in "
        f"{len(result.units):,} units ({ran:,} run, {result.skipped:,} already done) to "
        f"{args.out_dir} in {seconds:,.1f} s{rate}; manifest: {args.out_dir / 'manifest'}"
    )
    return 0


def interrupted_message(args: argparse.Namespace) -> str:
    """What Ctrl-C prints: how to go on, for the exports that can."""
    if getattr(args, "command", None) != "export":
        return "interrupted"
    if args.orgs_file is not None:
        return "interrupted: run the same command again to resume"
    return "interrupted: run the same command again with --resume to continue"


def _restart(args: argparse.Namespace, units: list[ExportUnit]) -> None:
    """--restart-unit: forget the named units' state (ValueError for an id not in the plan)."""
    by_id = {unit.unit_id: unit for unit in units}
    for unit_id in args.restart_unit:
        if unit_id not in by_id:
            raise ValueError(f"--restart-unit {unit_id}: no such unit in this plan")
        restart_unit(args.out_dir, by_id[unit_id], format=args.format)


def _on_dask(
    args: argparse.Namespace,
    settings: ClientSettings,
    units: list[ExportUnit],
    on_unit: Callable[[UnitResult], object],
    stop: threading.Event,
) -> ExportResult:
    """Run the units on the cluster at --dask-scheduler (blocking: called in a thread)."""
    from ..export import dask as export_dask  # ImportError with the pip hint without Dask

    with export_dask.Client(args.dask_scheduler) as dask:  # type: ignore[no-untyped-call]
        return export_dask.run_units_on_dask(
            dask,
            units,
            settings=settings.from_environment(),  # the workers may not share our environment
            out_dir=args.out_dir.resolve(),
            format=args.format,
            page_size=args.page_size,
            on_unit=on_unit,
            stop=stop,
        )


class _UnitProgress:
    """Rows as they are staged (or per unit on Dask) and units as they finish."""

    def __init__(self, units: int, *, streamed: bool, enabled: bool) -> None:
        self._units = units
        self._done = 0
        self._streamed = streamed  # rows come page by page (one machine), else per unit (Dask)
        self._progress = Progress(self._noun()) if enabled else None
        if self._progress is not None:
            self._progress.singular = self._noun("invoice")

    def _noun(self, noun: str = "invoices") -> str:
        return f"{noun}, {self._done:,} of {plural(self._units, 'units')}"

    def rows(self, n: int) -> None:
        if self._progress is not None:
            self._progress.advance(n)

    def unit_done(self, result: UnitResult) -> None:
        self._done += 1
        if self._progress is None:
            return
        self._progress.plural = self._noun()
        self._progress.singular = self._noun("invoice")
        # Units that were done already, and units run on Dask, count their rows here.
        self._progress.advance(result.rows if result.skipped or not self._streamed else 0)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.close()
