"""`amili-async export WHAT --org ORG --out FILE`: one listing to one JSON Lines or CSV file.

A single-file export is a plan of one unit (or `--partitions N` units, N windows of invoices
listed concurrently) run by the one export engine (`amili_async.export`) in a work directory
beside the file, `<out>.parts/`: each unit stages its rows durably and checkpoints after every
page, so `--resume` continues from the last page with every item exactly once. Once every
unit is done their files are joined (in window order; CSV with one header) into `FILE`
written aside and renamed into place, then the work directory is removed.

A finished export is never overwritten without `--force`; an export that fails before its
first item leaves no file and no work directory behind; damaged state is refused, naming the
file (`--force` starts over).
"""

from __future__ import annotations

import datetime as dt
import io
import shutil
import time
from pathlib import Path
from typing import Any

import attrs

from .. import _json, _serde
from .._client import AmiliClient
from .._durable import open_binary, open_new, publish, sync, write_atomic
from ..export import (
    DEFAULT_PAGE_SIZE,
    ExportFailedError,
    ExportUnit,
    UnitStateError,
    plan_export,
    run_units,
)
from ..export._listings import LISTINGS
from ._progress import Progress
from ._rows import RowWriter, file_format

WORK_SUFFIX = ".parts"
"""The work directory of `FILE` is `FILE.parts/`: the plan's staged rows, checkpoints and
manifest while the export runs (removed once `FILE` is complete)."""
_PLAN_FILE = "export.json"
"""In the work directory: the options of the export it belongs to (checked on --resume)."""
_FLAGS = {
    "what": "WHAT",
    "organization_id": "--org",
    "status": "--status",
    "type": "--type",
    "from_": "--from",
    "to": "--to",
    "page_size": "--page-size",
    "partitions": "--partitions",
}
"""The options a page token and the staged rows depend on, with the flag that sets each."""
_STATUS_FILTER = {"invoices": "status", "batches": "state", "cases": "status"}
"""The listing's filter that `--status` sets (settlements have none)."""


@attrs.frozen
class ExportOptions:
    what: str
    organization_id: str
    out: Path
    resume: bool = False
    status: str | None = None
    type: str | None = None
    from_: str | None = None
    to: str | None = None
    page_size: int | None = None
    partitions: int | None = None
    progress: bool = True
    force: bool = False
    # CSV text cells verbatim, not neutralised (see _rows.neutralise). Not a resume flag: the
    # CSV is written whole from the staged rows once every unit is done.
    csv_raw: bool = False


@attrs.frozen
class ExportSummary:
    count: int
    seconds: float
    out: Path
    resumed_from: int


def work_dir(out: Path) -> Path:
    return out.with_name(out.name + WORK_SUFFIX)


def _timestamp(value: str | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromisoformat(value)


def plan(opts: ExportOptions) -> list[ExportUnit]:
    """The units of this export: one, or one per window with --partitions."""
    filters: dict[str, str] = {}
    if opts.status is not None and opts.what in _STATUS_FILTER:
        filters[_STATUS_FILTER[opts.what]] = opts.status
    if opts.type is not None and "type" in LISTINGS[opts.what].filters:
        filters["type"] = opts.type
    windowed = opts.what != "batches"  # the batch listing has no time filter
    return plan_export(
        [opts.organization_id],
        resource=opts.what,
        from_=_timestamp(opts.from_) if windowed else None,
        to=_timestamp(opts.to) if windowed else None,
        partitions_per_org=opts.partitions or 1,
        filters=filters,
    )


def _identity(opts: ExportOptions) -> dict[str, Any]:
    return {name: getattr(opts, name) for name in _FLAGS}


async def export(client: AmiliClient, opts: ExportOptions) -> ExportSummary:
    """Run one export (or continue one with `resume`) and return what it did."""
    file_format(opts.out)  # a usage error before anything is written
    work = work_dir(opts.out)
    units = plan(opts)
    if opts.force:
        _remove(opts.out, work)
    elif opts.resume:
        _check_resumable(work, opts)
    else:
        _refuse_overwrite(opts.out, work)
    if not work.exists():
        work.mkdir()
        write_atomic(work / _PLAN_FILE, _json.dumps(_identity(opts)))
    started = time.monotonic()
    progress = Progress(opts.what) if opts.progress else None
    try:
        result = await run_units(
            units,
            client=client,
            out_dir=work,
            concurrency=len(units),
            page_size=opts.page_size or DEFAULT_PAGE_SIZE,
            on_rows=None if progress is None else progress.advance,
        )
    except ExportFailedError as failed:
        if _nothing_staged(work):
            _remove(work)  # not one page exported: leave nothing behind
        first = next(iter(failed.failures.values()))
        if isinstance(first, UnitStateError):
            first.remedy = f"export again with --force to start {opts.out.name} over"
        raise first from None
    _join([work / u.path for u in result.units if u.path], opts)  # no file: no rows
    _remove(work)  # complete: nothing left to resume
    if progress is not None:
        progress.close()
    resumed_from = sum(u.resumed_from for u in result.units)
    return ExportSummary(result.total, time.monotonic() - started, opts.out, resumed_from)


def _join(parts: list[Path], opts: ExportOptions) -> None:
    """Write the units' files, in plan order, as `opts.out`: aside, synced, renamed."""
    tmp = opts.out.with_name(opts.out.name + ".tmp")
    with open_new(tmp) as stream:
        if file_format(opts.out) == "csv":
            model = LISTINGS[opts.what].model
            text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
            writer = RowWriter(text, "csv", model, header=True, raw=opts.csv_raw)
            for part in parts:
                with open_binary(part, create=False) as lines:
                    for line in lines:
                        writer.write_wire(_serde.parse_exact(line))  # no models again
            text.flush()
            text.detach()
        else:
            for part in parts:
                with open_binary(part, create=False) as source:
                    shutil.copyfileobj(source, stream)
        sync(stream)
    publish(tmp, opts.out)


def _nothing_staged(work: Path) -> bool:
    """True when no unit of the work directory staged or published anything."""
    return not any(p.is_file() and p.name != _PLAN_FILE for p in work.rglob("*"))


def _refuse_overwrite(out: Path, work: Path) -> None:
    if work.exists():
        raise ValueError(
            f"{out.name} is an interrupted export: --resume continues it, --force starts over"
        )
    if out.exists():
        raise ValueError(f"{out.name} exists: pass --force to overwrite it")


def _remove(*paths: Path) -> None:
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)  # removes links inside, never follows them
        else:
            path.unlink(missing_ok=True)


def _check_resumable(work: Path, opts: ExportOptions) -> None:
    """The work directory is of an interrupted run of this very export: else ValueError
    naming each option that differs."""
    if not work.exists():
        raise ValueError(
            f"nothing to resume: {opts.out.name} has no interrupted export ({work.name} does "
            "not exist)"
        )
    path = work / _PLAN_FILE
    try:
        saved = _json.loads(path.read_bytes())
    except (OSError, _json.DecodeError):
        raise ValueError(
            f"{path}: not the state of an export (missing or damaged): --force starts over"
        ) from None
    now = _identity(opts)
    changed = [
        f"{_FLAGS[name]} ({_shown(saved.get(name))} in the interrupted run, {_shown(now[name])} "
        "now)"
        for name in _FLAGS
        if saved.get(name) != now[name]
    ]
    if changed:
        raise ValueError(
            "the checkpoint belongs to another export: "
            + "; ".join(changed)
            + ": resume with the same options, or --force to start over"
        )


def _shown(value: object) -> str:
    return "not given" if value is None else str(value)
