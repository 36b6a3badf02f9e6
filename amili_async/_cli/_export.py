"""`amili-async export`: stream a listing to a JSON Lines or CSV file, resumable.

The output is written page by page; after each page the file is flushed and a checkpoint
(`<out>.checkpoint.json`: next page token, item count, file size) is replaced atomically. On
`--resume` the file is cut back to the checkpoint's size (dropping a page that was only partly
written when the process died) and the listing continues from the saved token: every item is
in the file exactly once.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path
from typing import Any

import attrs
import orjson

from .. import models
from .._client import AmiliClient
from .._pagination import AsyncPager
from .._time import as_utc
from ._progress import Progress
from ._rows import RowWriter, file_format

LISTINGS: dict[str, type[Any]] = {
    "invoices": models.Invoice,
    "batches": models.Batch,
    "settlements": models.Settlement,
    "cases": models.Case,
}


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


@attrs.frozen
class ExportSummary:
    count: int
    seconds: float
    out: Path
    resumed_from: int


def checkpoint_path(out: Path) -> Path:
    return out.with_name(out.name + ".checkpoint.json")


def _timestamp(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    return as_utc(dt.datetime.fromisoformat(value))


def _date(value: str | None) -> dt.date | None:
    return None if value is None else dt.date.fromisoformat(value[:10])


def listing(client: AmiliClient, opts: ExportOptions, token: str | None) -> AsyncPager[Any]:
    """The pager for what is exported, with the filters each endpoint knows."""
    org = opts.organization_id
    if opts.what == "invoices":
        return client.invoices.list(
            org,
            status=opts.status,
            type=opts.type,
            from_=_timestamp(opts.from_),
            to=_timestamp(opts.to),
            page_size=opts.page_size,
            page_token=token,
            partitions=opts.partitions,
        )
    if opts.partitions:
        raise ValueError("--partitions is only supported for invoices")
    if opts.what == "batches":
        return client.batches.list(
            org, state=opts.status, type=opts.type, page_size=opts.page_size, page_token=token
        )
    if opts.what == "settlements":
        if opts.status or opts.type:
            raise ValueError("settlements have no --status/--type filter")
        return client.settlements.list(
            org,
            from_date=_date(opts.from_),
            to_date=_date(opts.to),
            page_size=opts.page_size,
            page_token=token,
        )
    return client.collections.list_cases(
        org,
        status=opts.status,
        type=opts.type,
        from_created_at=_timestamp(opts.from_),
        to_created_at=_timestamp(opts.to),
        page_size=opts.page_size,
        page_token=token,
    )


def _identity(opts: ExportOptions) -> dict[str, Any]:
    """What a page token is valid for: the listing and every filter sent with it."""
    return {
        "what": opts.what,
        "organization_id": opts.organization_id,
        "status": opts.status,
        "type": opts.type,
        "from": opts.from_,
        "to": opts.to,
        "page_size": opts.page_size,
    }


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Replace the checkpoint atomically (write a temp file, fsync, rename)."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as stream:
        stream.write(orjson.dumps(state))
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(tmp, path)


async def export(client: AmiliClient, opts: ExportOptions) -> ExportSummary:
    """Run one export (or continue one with `resume`) and return what it did."""
    fmt = file_format(opts.out)
    checkpoint = checkpoint_path(opts.out)
    token: str | None = None
    count = 0
    if opts.resume:
        if not checkpoint.exists():
            raise ValueError(f"nothing to resume: {checkpoint.name} does not exist")
        state = orjson.loads(checkpoint.read_bytes())
        if state.get("listing") != _identity(opts):
            raise ValueError(
                "the checkpoint belongs to another export: what, --org and the filters must be "
                "the same as in the interrupted run"
            )
        if state.get("done"):
            return ExportSummary(state["count"], 0.0, opts.out, state["count"])
        if opts.partitions:
            raise ValueError("--resume cannot continue a partitioned export")
        token, count = state["next_page_token"], state["count"]
        with opts.out.open("r+b") as partial:
            partial.truncate(state["size"])  # drop a page that was only partly written
    resumed_from = count
    started = time.monotonic()
    progress = Progress(opts.what) if opts.progress else None
    if progress is not None:
        progress.count = count
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    base = {"listing": _identity(opts)}
    with opts.out.open("a" if opts.resume else "w", encoding="utf-8", newline="") as stream:
        writer = RowWriter(stream, fmt, LISTINGS[opts.what], header=not opts.resume)

        def checkpoint_at(next_token: str | None, *, done: bool) -> None:
            """Everything written so far is on disk; the listing continues at `next_token`."""
            stream.flush()
            state = {"next_page_token": next_token, "count": count, "size": stream.tell()}
            _save_checkpoint(checkpoint, {**base, **state, "done": done})

        # Partitioned exports have no single token to resume from: no checkpoint per page.
        resumable = not opts.partitions
        if resumable and not opts.resume:
            checkpoint_at(None, done=False)  # killed before the first page: start over
        async for page in listing(client, opts, token).pages():
            for item in page.items:
                writer.write(item)
            count += len(page.items)
            if progress is not None:
                progress.advance(len(page.items))
            if resumable:
                checkpoint_at(page.next_page_token, done=page.next_page_token is None)
        if not resumable:
            checkpoint_at(None, done=True)
    if progress is not None:
        progress.close()
    seconds = time.monotonic() - started
    return ExportSummary(count, seconds, opts.out, resumed_from)
