"""`amili-async export invoices --orgs-file ORGS.txt --out URL`: many organisations in units.

The plan (`amili_async.export.plan_export`) runs on this machine, one client, or on a Dask
cluster (`--dask-scheduler ADDRESS`), into a local directory or any fsspec URL
(`--storage-option KEY=VALUE` for its driver), as JSON Lines, Parquet or a Delta table.
Progress counts units and rows; the summary gives the total, the units already done before
this run, and the rate. Losing the cluster (scheduler or workers) ends in one line: run the
same command again to resume.
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
from typing import Any

from ..export import (
    DEFAULT_LOOKBACK,
    DEFAULT_PAGE_SIZE,
    DEFAULT_UNIT_CONCURRENCY,
    FORMATS,
    ClientSettings,
    ExportFailedError,
    ExportResult,
    ExportUnit,
    UnitResult,
    plan_export,
    plan_incremental,
    restart_unit,
    run_units,
    save_state,
)
from ._args import (
    hint_and_exit,
    input_file,
    integer,
    output_location,
    rate_limit,
    storage_option,
)
from ._progress import Progress, plural


def add_arguments(export: argparse.ArgumentParser) -> None:
    """The options of a multi-organisation export (used instead of --org and --out)."""
    group = export.add_argument_group("many organisations, in units (instead of --org/--out)")
    group.add_argument(
        "--orgs-file", type=input_file(), help="organisation ids, one a line (# comments)"
    )
    group.add_argument(
        "--out-dir",
        type=output_location,
        help="the dataset's root: a directory or a URL (s3://bucket/prefix; same as --out URL)",
    )
    group.add_argument(
        "--storage-option",
        type=storage_option,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an option of the URL's fsspec driver (s3fs: endpoint_url=..., or AWS_REGION=...)",
    )
    group.add_argument(
        "--format",
        choices=sorted(FORMATS),
        default="jsonl",
        help="file format; delta: one Delta table merged on the invoice id",
    )
    group.add_argument(
        "--rate-limit",
        dest="export_rate_limit",
        type=rate_limit,
        metavar="adaptive|N",
        help="client-side requests/s per process, or adaptive (follow the server's 429s); "
        "default: unthrottled",
    )
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
        "--incremental",
        action="store_true",
        help="from each organisation's last exported window (state in the output) minus "
        "--lookback-days, up to --to or now; --from for organisations never exported "
        "(needs --format delta)",
    )
    group.add_argument(
        "--lookback-days",
        type=integer(0),
        default=DEFAULT_LOOKBACK.days,
        help="days before the last window's end listed again (invoices that may have changed)",
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
        if args.restart_unit or args.storage_option or args.format != "jsonl":
            hint_and_exit(prog, "--restart-unit, --storage-option, --format: go with --orgs-file")
        if isinstance(args.out, str):
            hint_and_exit(prog, "--out URL: goes with --orgs-file (one file is written here)")
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
    if isinstance(args.out, str) and args.out_dir is None:
        args.out_dir, args.out = args.out, None  # --out URL: the dataset's root
    if args.out_dir is None:
        hint_and_exit(prog, "--orgs-file: needs --out URL or --out-dir")
    if args.incremental and args.format != "delta":
        hint_and_exit(prog, "--incremental: needs --format delta (the look-back is merged)")
    if args.partitions_per_org > 1 and not args.incremental and (not args.from_ or not args.to):
        hint_and_exit(prog, "--partitions-per-org: needs --from and --to (the window to cut)")
    if args.org or args.out or args.resume or args.partitions or args.force:
        hint_and_exit(
            prog,
            "--orgs-file goes with --out URL or --out-dir: leave out --org, --out FILE, --resume, "
            "--partitions, --force",
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
    filters = {k: v for k, v in {"status": args.status, "type": args.type}.items() if v}
    options = dict(args.storage_option)
    if args.incremental:
        units = plan_incremental(
            args.out_dir,
            read_orgs(args.orgs_file),
            now=_time(args.to) or dt.datetime.now(dt.UTC),
            start=_time(args.from_),
            lookback=dt.timedelta(days=args.lookback_days),
            partitions_per_org=args.partitions_per_org,
            filters=filters,
            storage_options=options,
        )
    else:
        units = plan_export(
            read_orgs(args.orgs_file),
            from_=_time(args.from_),
            to=_time(args.to),
            partitions_per_org=args.partitions_per_org,
            filters=filters,
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
                    _on_dask, args, settings, units, progress.unit_done, stop, options
                )
            except asyncio.CancelledError:
                stop.set()
                raise
            except _Lost:
                progress.close()
                print(interrupted_message(args), file=sys.stderr)
                return 1
        else:
            result = await run_units(
                units,
                settings=settings,
                out_dir=args.out_dir,
                format=args.format,
                concurrency=args.concurrency,
                page_size=args.page_size or DEFAULT_PAGE_SIZE,
                on_rows=progress.rows,
                on_unit=progress.unit_done,
                storage_options=options,
            )
    except ImportError as missing:  # an extra that is not installed: say which
        print(f"amili-async: error: {missing}", file=sys.stderr)
        return 1
    except ExportFailedError as failed:
        progress.close()
        print(f"amili-async: error: {failed}", file=sys.stderr)
        return 1
    progress.close()
    if args.incremental:
        save_state(args.out_dir, units, storage_options=options)
    seconds = time.monotonic() - started
    ran = len(result.units) - result.skipped
    rate = f", {result.total / seconds:,.0f} rows/s" if seconds > 0 and ran else ""
    print(
        f"exported {result.total:,} invoices of {len(result.by_org):,} organisations in "
        f"{len(result.units):,} units ({ran:,} run, {result.skipped:,} already done) to "
        f"{args.out_dir} in {seconds:,.1f} s{rate}"
    )
    return 0


def interrupted_message(args: argparse.Namespace) -> str:
    """What a stop (Ctrl-C, SIGTERM) prints: how to go on, for the exports that can."""
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
        restart_unit(
            args.out_dir,
            by_id[unit_id],
            format=args.format,
            storage_options=dict(args.storage_option),
        )


def _on_dask(
    args: argparse.Namespace,
    settings: ClientSettings,
    units: list[ExportUnit],
    on_unit: Callable[[UnitResult], object],
    stop: threading.Event,
    options: dict[str, Any],
) -> ExportResult:
    """Run the units on the cluster at --dask-scheduler (blocking: called in a thread);
    `_Lost` when the cluster went away midway."""
    from ..export import dask as export_dask  # ImportError with the pip hint without Dask

    out = args.out_dir if isinstance(args.out_dir, str) else args.out_dir.resolve()
    with export_dask.Client(args.dask_scheduler) as dask:  # type: ignore[no-untyped-call]
        try:
            return export_dask.run_units_on_dask(
                dask,
                units,
                settings=settings.from_environment(),  # the workers may not share our env
                out_dir=out,
                format=args.format,
                page_size=args.page_size or DEFAULT_PAGE_SIZE,
                on_unit=on_unit,
                stop=stop,
                storage_options=options,
            )
        except export_dask.ExportInterruptedError as lost:
            if not lost.lost:
                raise
            raise _Lost from None
        except ExportFailedError as failed:
            if all(isinstance(e, export_dask.KilledWorker) for e in failed.failures.values()):
                raise _Lost from None  # workers died, again and again: nothing is wrong here
            raise


class _Lost(Exception):
    """The Dask cluster (scheduler or workers) was lost midway: run again to resume."""


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
