"""Running one unit: list its window, stage the rows durably, publish one file atomically.

Rows are staged as JSON Lines in `<out_dir>/.partial/`: after each page the stage is fsynced
and only then is the unit's checkpoint (next page token, rows, bytes) replaced, so a unit
killed at any instant resumes from its last page with nothing lost or repeated. The finished
stage becomes the output (renamed as is, or converted to Parquet aside and renamed), and only
then is the unit recorded in the manifest: a file in its final place is always complete, and a
unit whose file is in place is done. A lock per unit keeps two runners of the same unit (a
speculative re-run on a cluster) from ever writing it at the same time.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import orjson

from .. import _serde, models
from .._client import AmiliClient
from .._durable import publish, sync, write_atomic
from ._manifest import UnitResult, read_record, write_record
from ._plan import ExportUnit
from ._settings import ClientSettings

__all__ = ["DEFAULT_PAGE_SIZE", "FORMATS", "PARTIAL_DIR", "check_format", "run_unit"]

FORMATS = {"jsonl": ".jsonl", "parquet": ".parquet"}
"""Output formats and their file extensions."""
PARTIAL_DIR = ".partial"
"""Staged rows, checkpoints and locks of unfinished units, inside the output directory."""
DEFAULT_PAGE_SIZE = 1000
"""Rows asked for per page: the fewest requests per row, so a unit spends the API's rate limit
well. The docs give no maximum for the invoice listing (inferred: the spec's PageSize limit,
which the sandbox enforces); a server that caps lower simply answers smaller pages."""
_HASH_CHUNK = 1 << 20
"""Bytes read at a time to checksum an output file."""
_MODELS: dict[str, type[Any]] = {"invoices": models.Invoice}
"""The model of each exportable resource (the Parquet schema is derived from it)."""


async def run_unit(
    unit: ExportUnit,
    *,
    out_dir: Path | str,
    client: AmiliClient | None = None,
    settings: ClientSettings | None = None,
    format: str = "jsonl",
    page_size: int | None = DEFAULT_PAGE_SIZE,
    on_rows: Callable[[int], object] | None = None,
) -> UnitResult:
    """Export one unit to `out_dir` (idempotent and resumable); what it produced.

    Pass a `client` (shared by many units), or `settings` to build one for this unit. A unit
    already done is a no-op (`skipped=True`, no request sent); an interrupted one resumes from
    its own checkpoint. `on_rows(n)` is called after each page is safely staged.
    """
    check_format(format)
    out = Path(out_dir)
    final = out / (unit.file_stem() + FORMATS[format])
    done = await asyncio.to_thread(_finished, out, unit, final, format)
    if done is not None:
        return done
    if client is None:
        if settings is None:
            raise ValueError("pass client= or settings=")
        async with settings.connect() as own:
            return await run_unit(
                unit, out_dir=out, client=own, format=format, page_size=page_size, on_rows=on_rows
            )
    stage = _Stage(out, unit)
    await stage.lock()
    try:
        # Finished by another runner while this one waited for the lock?
        done = await asyncio.to_thread(_finished, out, unit, final, format)
        if done is not None:
            return done
        token, page_size = await asyncio.to_thread(stage.resume, page_size)
        if token is not _DONE:
            await _list_into(client, unit, stage, token, page_size, on_rows)
        return await asyncio.to_thread(stage.finish, final, format)
    finally:
        stage.unlock()


def check_format(fmt: str) -> None:
    """ValueError for an unknown format; ImportError (with the pip hint) for Parquet without
    pyarrow, before any unit starts."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    if fmt == "parquet":
        from ._parquet import require_pyarrow

        require_pyarrow()


def _finished(out: Path, unit: ExportUnit, final: Path, fmt: str) -> UnitResult | None:
    """The unit's result if it is done: recorded, or its file in place (then recorded now)."""
    record = read_record(out, unit)
    if record is not None:
        if record.format != fmt:
            raise ValueError(
                f"{out} holds a {record.format} export of unit {unit.unit_id}: "
                f"use another directory for {fmt}"
            )
        if final.exists():
            return record
    if final.exists():  # published, then interrupted before the manifest was written
        result = _describe(out, unit, final, fmt)
        write_record(out, unit, result)
        return attrs.evolve(result, skipped=True)
    return None


async def _list_into(
    client: AmiliClient,
    unit: ExportUnit,
    stage: _Stage,
    token: str | None,
    page_size: int | None,
    on_rows: Callable[[int], object] | None,
) -> None:
    """Page through the unit's window from `token`, staging each page before the next."""
    listing = client.invoices.list(
        unit.org_id,
        from_=unit.from_,
        to=unit.to,
        page_size=page_size,
        page_token=token,
        **unit.listing_filters(),  # type: ignore[arg-type]
    )
    async with contextlib.aclosing(listing.pages()) as pages:
        async for page in pages:
            data = b"".join([_serde.dumps(item) + b"\n" for item in page.items])
            await asyncio.to_thread(stage.append, data, len(page.items), page.next_page_token)
            if on_rows is not None:
                on_rows(len(page.items))
    await asyncio.to_thread(stage.append, b"", 0, None)  # an empty window has no page at all


def _describe(out: Path, unit: ExportUnit, final: Path, fmt: str) -> UnitResult:
    """Rows, checksum and size of a published output file, read from the file itself."""
    digest = hashlib.sha256()
    newlines = 0
    with final.open("rb") as stream:
        while chunk := stream.read(_HASH_CHUNK):
            digest.update(chunk)
            newlines += chunk.count(b"\n")
    if fmt == "parquet":
        from ._parquet import parquet_rows

        rows = parquet_rows(final)
    else:
        rows = newlines
    return UnitResult(
        unit_id=unit.unit_id,
        org_id=unit.org_id,
        rows=rows,
        path=final.relative_to(out).as_posix(),
        sha256=digest.hexdigest(),
        size=final.stat().st_size,
        format=fmt,
    )


_DONE: Any = object()
"""What `resume` answers for a unit whose every page is staged."""
_DONE_TOKEN = "<done>"
"""A checkpoint's token once the last page is staged (page tokens are never this text)."""


class _Stage:
    """A unit's staged rows, checkpoint and lock in `<out_dir>/.partial/` (blocking file IO)."""

    def __init__(self, out: Path, unit: ExportUnit) -> None:
        partial = out / PARTIAL_DIR
        partial.mkdir(parents=True, exist_ok=True)
        self._out = out
        self._unit = unit
        self._data = partial / f"{unit.unit_id}.jsonl.part"
        self._checkpoint = partial / f"{unit.unit_id}.checkpoint.json"
        self._lock_path = partial / f"{unit.unit_id}.lock"
        self._tmp = partial / f"{unit.unit_id}.out.tmp"
        self._lock_fd: int | None = None
        self._stream: Any = None
        self._rows = 0
        self._page_size: int | None = None

    async def lock(self) -> None:
        """Hold the unit's lock (waiting, off the event loop, while another runner has it)."""
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the lock
            self._lock_fd = None

    def resume(self, page_size: int | None) -> tuple[Any, int | None]:
        """Open the stage where its checkpoint says; (token to list from or _DONE, page size).

        A stage shorter than its checkpoint (its tail lost in a crash) is started over.
        """
        state = self._state()
        self._stream = self._data.open("r+b" if self._data.exists() else "w+b")
        size = self._stream.seek(0, os.SEEK_END)
        if state is None or size < state["size"]:
            state = {"token": None, "rows": 0, "size": 0, "page_size": page_size}
        self._stream.truncate(state["size"])  # drop a page that was only partly written
        self._stream.seek(state["size"])
        self._rows = state["rows"]
        self._page_size = state["page_size"]
        self._save(state["token"])
        token = _DONE if state["token"] == _DONE_TOKEN else state["token"]
        return token, self._page_size

    def _state(self) -> dict[str, Any] | None:
        try:
            state: dict[str, Any] = orjson.loads(self._checkpoint.read_bytes())
        except FileNotFoundError:
            return None
        return state if state.get("unit") == self._unit.to_dict() else None

    def _save(self, token: str | None) -> None:
        state = {
            "unit": self._unit.to_dict(),
            "token": token,
            "rows": self._rows,
            "size": self._stream.tell(),
            "page_size": self._page_size,
        }
        write_atomic(self._checkpoint, orjson.dumps(state))

    def append(self, data: bytes, rows: int, next_token: str | None) -> None:
        """Stage one page and move the checkpoint past it (the data is on disk first)."""
        self._stream.write(data)
        sync(self._stream)
        self._rows += rows
        self._save(next_token or _DONE_TOKEN)

    def lines(self) -> Iterator[bytes]:
        self._stream.seek(0)
        for line in self._stream:
            if line.strip():
                yield line

    def publish(self, final: Path, fmt: str) -> None:
        """Put the complete output in its final place, atomically."""
        final.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "jsonl":
            self._stream.close()
            self._stream = None
            publish(self._data, final)
            return
        from ._parquet import write_parquet

        write_parquet(self.lines(), _MODELS[self._unit.resource], self._tmp)
        publish(self._tmp, final)

    def finish(self, final: Path, fmt: str) -> UnitResult:
        """Publish the output, then record it in the manifest, then clean up: in this order,
        so whatever step a crash interrupts, the next run completes the unit from there."""
        self.publish(final, fmt)
        result = _describe(self._out, self._unit, final, fmt)
        write_record(self._out, self._unit, result)
        self.clean()
        return result

    def clean(self) -> None:
        """Remove what the published unit no longer needs (the lock file last, still held)."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        for path in (self._data, self._checkpoint, self._lock_path):
            path.unlink(missing_ok=True)
