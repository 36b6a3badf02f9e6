"""`amili-async export`: stream a listing to a JSON Lines or CSV file, resumable.

The output is written page by page; after each page the file is flushed and fsynced, and only
then is a checkpoint (`<out>.checkpoint.json`: next page token(s), item count, file size)
replaced atomically, so a checkpoint never points past data that is not on disk. On `--resume`
the file is cut back to the checkpoint's size (dropping a page that was only partly written
when the process died) and the listing continues from the saved token: every item is in the
file exactly once. A file shorter than its checkpoint (its tail lost) is refused, never padded.

A partitioned export (`--partitions N`, invoices) lists N time windows concurrently and keeps
one token per window in its checkpoint, so it resumes too.

A finished export removes its checkpoint and is never overwritten without `--force`; an export
that fails before its first item leaves no file behind (nor a header-only CSV).
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
from .._durable import sync, write_atomic
from .._pagination import AsyncPager, MergedPager
from .._time import as_utc, split_window
from ._progress import Progress
from ._rows import RowWriter, file_format

LISTINGS: dict[str, type[Any]] = {
    "invoices": models.Invoice,
    "batches": models.Batch,
    "settlements": models.Settlement,
    "cases": models.Case,
}


DONE = "<done>"
"""A part's token once its last page is written (page tokens are never this text)."""


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
    csv_raw: bool = False  # CSV text cells verbatim, not neutralised (see _rows.neutralise)


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


def listing(client: AmiliClient, opts: ExportOptions, tokens: list[Any]) -> AsyncPager[Any]:
    """The pager for what is exported, with the filters each endpoint knows.

    ``tokens`` holds one entry per part (one part unless partitioned): the page token to start
    that part from, None to start it from its beginning, or DONE to leave it out.
    """
    org = opts.organization_id
    if opts.partitions:  # invoices with --from and --to: the command line checked it
        start, end = _timestamp(opts.from_), _timestamp(opts.to)
        assert start is not None
        assert end is not None
        windows = split_window(start, end, opts.partitions)
        parts = [
            client.invoices.list(
                org,
                status=opts.status,
                type=opts.type,
                from_=window_start,
                to=window_end,
                page_size=opts.page_size,
                page_token=token,
            )
            for (window_start, window_end), token in zip(windows, tokens, strict=True)
            if token != DONE
        ]
        return MergedPager(parts, concurrency=max(1, len(parts)))
    (token,) = tokens
    if opts.what == "invoices":
        return client.invoices.list(
            org,
            status=opts.status,
            type=opts.type,
            from_=_timestamp(opts.from_),
            to=_timestamp(opts.to),
            page_size=opts.page_size,
            page_token=token,
        )
    if opts.what == "batches":
        return client.batches.list(
            org, state=opts.status, type=opts.type, page_size=opts.page_size, page_token=token
        )
    if opts.what == "settlements":
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
        "partitions": opts.partitions,
        "csv_raw": opts.csv_raw,
    }


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Replace the checkpoint atomically (write a temp file, fsync, rename)."""
    write_atomic(path, orjson.dumps(state))


async def export(client: AmiliClient, opts: ExportOptions) -> ExportSummary:
    """Run one export (or continue one with `resume`) and return what it did."""
    checkpoint = checkpoint_path(opts.out)
    parts = opts.partitions or 1
    tokens: list[Any] = [None] * parts
    count = 0
    if not opts.resume and not opts.force:
        _refuse_overwrite(opts.out, checkpoint)
    if opts.resume:
        state = _resumable_state(checkpoint, opts)
        with opts.out.open("r+b") as partial:
            size = partial.seek(0, os.SEEK_END)
            if size < state["size"]:
                raise ValueError(
                    f"{opts.out.name} has {size:,} bytes but its checkpoint vouches for "
                    f"{state['size']:,}: its end was lost (a crash before it reached the disk?). "
                    "Nothing can be resumed safely: export again without --resume"
                )
            partial.truncate(state["size"])  # drop a page that was only partly written
        tokens, count = list(state["tokens"]), state["count"]
    resumed_from = count
    started = time.monotonic()
    progress = Progress(opts.what, already=count) if opts.progress else None
    base = {"listing": _identity(opts)}
    try:
        count = await _write(client, opts, tokens, count, base, progress)
    except BaseException:
        if not opts.resume and all(token is None for token in tokens):
            _remove(opts.out, checkpoint)  # not one page exported: leave nothing behind
        raise
    checkpoint.unlink(missing_ok=True)  # finished: nothing left to resume
    if progress is not None:
        progress.close()
    seconds = time.monotonic() - started
    return ExportSummary(count, seconds, opts.out, resumed_from)


async def _write(
    client: AmiliClient,
    opts: ExportOptions,
    tokens: list[Any],
    count: int,
    base: dict[str, Any],
    progress: Progress | None,
) -> int:
    """List and write every page, checkpointing after each; the number of items written."""
    fmt = file_format(opts.out)
    checkpoint = checkpoint_path(opts.out)
    parts = len(tokens)
    with opts.out.open("a" if opts.resume else "w", encoding="utf-8", newline="") as stream:
        writer = RowWriter(
            stream, fmt, LISTINGS[opts.what], header=not opts.resume, raw=opts.csv_raw
        )

        def checkpoint_at() -> None:
            """Everything written so far is on disk first; then the checkpoint says so."""
            sync(stream)
            done = all(token == DONE for token in tokens)
            state = {"tokens": tokens, "count": count, "size": stream.tell(), "done": done}
            _save_checkpoint(checkpoint, {**base, **state})

        if not opts.resume:
            checkpoint_at()  # killed before the first page: start over
        # The parts still to list, in the order `listing` builds them (DONE ones left out).
        running = [index for index, token in enumerate(tokens) if token != DONE]
        async for page in listing(client, opts, tokens).pages():
            for item in page.items:
                writer.write(item)
            count += len(page.items)
            if progress is not None:
                progress.advance(len(page.items))
            part = running[page.part or 0]
            tokens[part] = page.next_page_token or DONE
            checkpoint_at()
        if not all(token == DONE for token in tokens):  # an empty listing has no page at all
            tokens = [DONE] * parts
            checkpoint_at()
    return count


def _refuse_overwrite(out: Path, checkpoint: Path) -> None:
    if checkpoint.exists():
        raise ValueError(
            f"{out.name} is an interrupted export: --resume continues it, --force starts over"
        )
    if out.exists():
        raise ValueError(f"{out.name} exists: pass --force to overwrite it")


def _remove(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _resumable_state(checkpoint: Path, opts: ExportOptions) -> dict[str, Any]:
    """The checkpoint of the interrupted run, if it is one of this very export."""
    if not checkpoint.exists():
        raise ValueError(f"nothing to resume: {checkpoint.name} does not exist")
    state: dict[str, Any] = orjson.loads(checkpoint.read_bytes())
    if state.get("listing") != _identity(opts):
        raise ValueError(
            "the checkpoint belongs to another export: what, --org, the filters and "
            "--partitions must be the same as in the interrupted run"
        )
    return state
