"""Running one unit: list its window, stage the rows durably, publish one file atomically.

This is the one export engine: the CLI's single-file export, a plan on one machine and a plan
on a Dask cluster all run their units here. Rows are staged as JSON Lines in
`<out_dir>/.partial/`: after each page the stage is fsynced and only then is the unit's
checkpoint (next page token, rows, bytes) replaced, so a unit killed at any instant resumes
from its last page with nothing lost or repeated. The finished stage becomes the output
(renamed as is, or converted to Parquet aside and renamed), its size and sha256 are saved in
the checkpoint before the rename and in the manifest record after it: a file in its final
place counts as done only while one of them vouches for it. A lock per unit keeps two runners
of the same unit (a speculative re-run on a cluster) from ever writing it at the same time.

Damaged state (a torn checkpoint or record, a stage shorter than its checkpoint, a checkpoint
that ends mid-record, a file that does not match its record) is refused with
`UnitStateError`, naming the file; `restart_unit` forgets the unit so it runs from its start.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import attrs

from .. import _json, _serde
from .._client import AmiliClient
from .._durable import check_inside, open_binary, open_fd, open_new, publish, sync, write_atomic
from ..errors import APIStatusError
from ._listings import LISTINGS
from ._manifest import UnitResult, UnitStateError, read_record, record_path, write_record
from ._plan import ExportUnit
from ._settings import ClientSettings

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "FORMATS",
    "PARTIAL_DIR",
    "check_format",
    "restart_unit",
    "run_unit",
]

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
_NOT_A_TOKEN_REFUSAL = frozenset({401, 403, 408, 429})
"""4xx statuses that say nothing about the page token (auth, timeout, rate limit): a resumed
unit answered any other 4xx on its first page takes its token as refused (expired)."""


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
    files = _Files(Path(out_dir), unit, format)
    done = await asyncio.to_thread(_finished, files)
    if done is not None:
        return done
    if client is None:
        if settings is None:
            raise ValueError("pass client= or settings=")
        async with settings.connect() as own:
            return await run_unit(
                unit, out_dir=out_dir, client=own, format=format, page_size=page_size,
                on_rows=on_rows,
            )  # fmt: skip
    stage = _Stage(files)
    await stage.lock()
    try:
        # Finished by another runner while this one waited for the lock?
        done = await asyncio.to_thread(_finished, files)
        if done is not None:
            return done
        token, page_size = await asyncio.to_thread(stage.resume, page_size)
        if token is not _DONE:
            await _list_all(client, unit, stage, token, page_size, on_rows)
        return await asyncio.to_thread(stage.finish)
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


def restart_unit(out_dir: Path | str, unit: ExportUnit, *, format: str = "jsonl") -> None:
    """Forget everything of `unit` in `out_dir` (record, file, stage, checkpoint): its next run
    exports it from its start. The recovery from a `UnitStateError`; only names of this unit
    are removed (a link is removed, never followed)."""
    check_format(format)
    files = _Files(Path(out_dir), unit, format, check=False)
    for path in (files.record, files.final, files.checkpoint, files.data, files.tmp):
        check_inside(files.out, path.parent)  # a link at the name itself is what goes
        path.unlink(missing_ok=True)
    if files.lock.is_symlink():  # a real lock file stays: another runner may hold it
        files.lock.unlink()


@attrs.frozen
class _Files:
    """Where a unit's files go, each checked to lie inside `out` through real directories."""

    out: Path
    unit: ExportUnit
    format: str
    check: bool = True
    """Refuse (UnsafePathError) a symbolic link at any of the paths, or on the way to one."""
    final: Path = attrs.field(init=False)
    record: Path = attrs.field(init=False)
    data: Path = attrs.field(init=False)
    checkpoint: Path = attrs.field(init=False)
    lock: Path = attrs.field(init=False)
    tmp: Path = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        partial = self.out / PARTIAL_DIR
        set_ = object.__setattr__  # frozen: the paths are derived once, here
        set_(self, "final", self.out / (self.unit.file_stem() + FORMATS[self.format]))
        set_(self, "record", record_path(self.out, self.unit))
        set_(self, "data", partial / f"{self.unit.unit_id}.jsonl.part")
        set_(self, "checkpoint", partial / f"{self.unit.unit_id}.checkpoint.json")
        set_(self, "lock", partial / f"{self.unit.unit_id}.lock")
        set_(self, "tmp", partial / f"{self.unit.unit_id}.out.tmp")
        for path in (self.final, self.record, self.data, self.checkpoint, self.lock, self.tmp):
            if self.check:
                check_inside(self.out, path)

    def error(self, path: Path, problem: str) -> UnitStateError:
        return UnitStateError(path, problem, self.unit.unit_id)


def _finished(files: _Files) -> UnitResult | None:
    """The unit's result if it is done: its file in place and vouched for by its manifest
    record, or by its checkpoint (published, then interrupted: recorded now)."""
    record = read_record(files.out, files.unit)
    if record is not None and record.format != files.format:
        raise ValueError(
            f"{files.out} holds a {record.format} export of unit {files.unit.unit_id}: "
            f"use another directory for {files.format}"
        )
    if not os.path.lexists(files.final):
        return None  # not published (a record without its file: exported again)
    if record is not None:
        _verify(files, record.size, record.sha256, "its manifest record")
        return record
    output = _read_checkpoint(files).get("output")
    if output is None:
        raise files.error(
            files.final,
            "the file exists but no manifest record or checkpoint of this unit vouches for it "
            "(not written by this export?)",
        )
    _verify(files, output["size"], output["sha256"], "its checkpoint")
    result = _describe(files, files.final)
    write_record(files.out, files.unit, result)
    return attrs.evolve(result, skipped=True, resumed_from=result.rows)


def _verify(files: _Files, size: int, sha256: str, voucher: str) -> None:
    """UnitStateError unless the published file is exactly what `voucher` recorded."""
    actual = _describe(files, files.final)
    if (actual.size, actual.sha256) != (size, sha256):
        raise files.error(
            files.final,
            f"the file does not match {voucher} ({actual.size:,} bytes, sha256 "
            f"{actual.sha256[:12]}..., recorded {size:,} bytes, {sha256[:12]}...): "
            "it was changed or replaced",
        )


def _read_checkpoint(files: _Files) -> dict[str, Any]:
    """The unit's checkpoint ({} when there is none or it is another unit's)."""
    try:
        with open_binary(files.checkpoint, create=False) as stream:
            raw = stream.read()
    except FileNotFoundError:
        return {}
    try:
        state = _json.loads(raw)
        if not isinstance(state, dict):
            raise TypeError("not an object")
    except (_json.DecodeError, TypeError):
        raise files.error(
            files.checkpoint, "the checkpoint is damaged (not a JSON object)"
        ) from None
    return state if state.get("unit") == files.unit.to_dict() else {}


async def _list_all(
    client: AmiliClient,
    unit: ExportUnit,
    stage: _Stage,
    token: str | None,
    page_size: int | None,
    on_rows: Callable[[int], object] | None,
) -> None:
    """List the unit from `token`; a saved token the server refuses (expired) restarts the
    unit from its window start, once; a failure before anything was staged leaves nothing."""
    try:
        await _list_into(client, unit, stage, token, page_size, on_rows)
    except APIStatusError as error:
        refused = 400 <= error.status_code < 500 and error.status_code not in _NOT_A_TOKEN_REFUSAL
        if token is None or not refused or stage.pages_this_run:
            stage.abandon_if_empty()
            raise
        await asyncio.to_thread(stage.restart)
        await _list_into(client, unit, stage, None, page_size, on_rows)
        return
    except BaseException:
        stage.abandon_if_empty()
        raise


async def _list_into(
    client: AmiliClient,
    unit: ExportUnit,
    stage: _Stage,
    token: str | None,
    page_size: int | None,
    on_rows: Callable[[int], object] | None,
) -> None:
    """Page through the unit's window from `token`, staging each page before the next."""
    listing = LISTINGS[unit.resource].call(
        client, unit.org_id, unit.from_, unit.to, unit.listing_filters(), page_size, token
    )
    async with contextlib.aclosing(listing.pages()) as pages:
        async for page in pages:
            data = b"".join([_serde.dumps(item) + b"\n" for item in page.items])
            await asyncio.to_thread(stage.append, data, len(page.items), page.next_page_token)
            if on_rows is not None:
                on_rows(len(page.items))
    await asyncio.to_thread(stage.append, b"", 0, None)  # an empty window has no page at all


@attrs.frozen
class _Digest:
    size: int
    sha256: str
    newlines: int
    ends_a_record: bool


def _digest(path: Path) -> _Digest:
    """Size, sha256 and newlines of a file, read without following a link."""
    digest = hashlib.sha256()
    newlines = size = 0
    last = b"\n"
    with open_binary(path, create=False) as stream:
        while chunk := stream.read(_HASH_CHUNK):
            digest.update(chunk)
            newlines += chunk.count(b"\n")
            size += len(chunk)
            last = chunk[-1:]
    return _Digest(size, digest.hexdigest(), newlines, last == b"\n")


def _describe(files: _Files, path: Path) -> UnitResult:
    """Rows, checksum and size of an output file (at `path`, to be published as the final)."""
    digest = _digest(path)
    if files.format == "parquet":
        from ._parquet import parquet_rows

        rows = parquet_rows(path)
    else:
        rows = digest.newlines
    return UnitResult(
        unit_id=files.unit.unit_id,
        org_id=files.unit.org_id,
        rows=rows,
        path=files.final.relative_to(files.out).as_posix(),
        sha256=digest.sha256,
        size=digest.size,
        format=files.format,
    )


def _lines(path: Path) -> Iterator[bytes]:
    """The non-empty lines of a staged file."""
    with open_binary(path, create=False) as stream:
        for line in stream:
            if line.strip():
                yield line


_DONE: Any = object()
"""What `resume` answers for a unit whose every page is staged."""
_DONE_TOKEN = "<done>"
"""A checkpoint's token once the last page is staged (page tokens are never this text)."""


class _Stage:
    """A unit's staged rows, checkpoint and lock in `<out_dir>/.partial/` (blocking file IO)."""

    def __init__(self, files: _Files) -> None:
        files.data.parent.mkdir(parents=True, exist_ok=True)
        self._files = files
        self._lock_fd: int | None = None
        self._stream: IO[bytes] | None = None
        self._rows = 0
        self._size = 0
        self._resumed_from = 0
        self._page_size: int | None = None
        self._token: str | None = None
        self.pages_this_run = 0

    async def lock(self) -> None:
        """Hold the unit's lock (waiting, off the event loop, while another runner has it)."""
        fd = open_fd(self._files.lock)
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

    @property
    def _out(self) -> IO[bytes]:
        assert self._stream is not None, "the stage is not open"
        return self._stream

    def resume(self, page_size: int | None) -> tuple[Any, int | None]:
        """Open the stage where its checkpoint says; (token to list from or _DONE, page size).

        UnitStateError, changing nothing, when the stage lost its tail (shorter than the
        checkpoint vouches for) or the checkpoint ends in the middle of a record.
        """
        files = self._files
        state = _read_checkpoint(files)
        self._stream = open_binary(files.data)
        size = self._out.seek(0, os.SEEK_END)
        if not state:
            state = {"token": None, "rows": 0, "size": 0, "page_size": page_size}
        vouched: int = state["size"]
        if size < vouched:
            raise files.error(
                files.data,
                f"the staged rows have {size:,} bytes but the checkpoint vouches for "
                f"{vouched:,}: their end was lost (a crash before it reached the disk?)",
            )
        if vouched and self._byte_at(vouched - 1) != b"\n":
            raise files.error(
                files.checkpoint,
                f"the checkpoint's size ({vouched:,}) is not at the end of a record",
            )
        self._out.truncate(vouched)  # drop a page that was only partly written
        self._out.seek(vouched)
        self._size = vouched
        self._rows = self._resumed_from = state["rows"]
        self._page_size = state["page_size"]
        self._token = state["token"]
        self._save(self._token)
        token = _DONE if self._token == _DONE_TOKEN else self._token
        return token, self._page_size

    def _byte_at(self, offset: int) -> bytes:
        self._out.seek(offset)
        return self._out.read(1)

    def restart(self) -> None:
        """Drop everything staged: the unit lists its window again from the start."""
        self._out.truncate(0)
        self._out.seek(0)
        self._size = 0
        self._rows = self._resumed_from = 0
        self._save(None)

    def abandon_if_empty(self) -> None:
        """After a failure: forget a unit that staged nothing (no state left behind)."""
        if self._stream is not None and self._rows == 0 and self._token is None:
            self.clean()

    def _save(self, token: str | None, **extra: Any) -> None:
        self._token = token
        state = {
            "unit": self._files.unit.to_dict(),
            "token": token,
            "rows": self._rows,
            "size": self._size,
            "page_size": self._page_size,
            **extra,
        }
        write_atomic(self._files.checkpoint, _json.dumps(state))

    def append(self, data: bytes, rows: int, next_token: str | None) -> None:
        """Stage one page and move the checkpoint past it (the data is on disk first)."""
        self._out.write(data)
        sync(self._out)
        self._size += len(data)
        self._rows += rows
        self.pages_this_run += 1
        self._save(next_token or _DONE_TOKEN)

    def finish(self) -> UnitResult:
        """Check the stage, write the output aside, vouch for it in the checkpoint, publish
        it, record it in the manifest, clean up: in this order, so whatever step a crash
        interrupts, the next run completes the unit from there."""
        files = self._files
        self._out.close()
        self._stream = None
        staged = _digest(files.data)
        if staged.size != self._size or not staged.ends_a_record:
            raise files.error(files.data, "the staged rows do not end on a record boundary")
        if staged.newlines != self._rows:
            raise files.error(
                files.data,
                f"{staged.newlines:,} staged rows, but the checkpoint counted {self._rows:,}",
            )
        if files.format == "jsonl":
            output = files.data
        else:
            from ._parquet import write_parquet

            with open_new(files.tmp) as stream:
                write_parquet(_lines(files.data), LISTINGS[files.unit.resource].model, stream)
            output = files.tmp
        result = attrs.evolve(_describe(files, output), resumed_from=self._resumed_from)
        self._save(_DONE_TOKEN, output={"size": result.size, "sha256": result.sha256})
        files.final.parent.mkdir(parents=True, exist_ok=True)
        check_inside(files.out, files.final)
        publish(output, files.final)
        write_record(files.out, files.unit, result)
        self.clean()
        return result

    def clean(self) -> None:
        """Remove what the published unit no longer needs (the lock file last, still held)."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        files = self._files
        for path in (files.data, files.checkpoint, files.tmp, files.lock):
            path.unlink(missing_ok=True)
