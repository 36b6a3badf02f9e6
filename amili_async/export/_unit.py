"""Running one unit: list its window, stage the rows durably, publish one file.

This is the one export engine: the CLI's single-file export, a plan on one machine and a plan
on a Dask cluster all run their units here. Rows are staged as JSON Lines on the runner's own
scratch directory (by default `<out>/_amili/partial/` for a local root, this machine's
temporary directory for an object store): after each page the stage is fsynced and only then
is the unit's checkpoint (next page token, rows, bytes) replaced, so a unit killed at any
instant resumes from its last page with nothing lost or repeated. The finished stage becomes
the output (as is, or converted to Parquet aside) at its deterministic key in the store
(`_store`: renamed into a local root, uploaded whole and checked on an object store), and is
recorded in the manifest after that: a file counts as done only while its record vouches for
it. A lock per unit keeps two runners of the same unit on one machine from writing it at the
same time; runners on different machines write the same key with the same rows.

Damaged state (a torn checkpoint or record, a stage shorter than its checkpoint, a checkpoint
that ends mid-record, a file that does not match its record) is refused with
`UnitStateError`, naming the file; `restart_unit` forgets the unit so it runs from its start.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fcntl
import hashlib
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import attrs

from .. import _json, _telemetry
from .._client import AmiliClient
from .._durable import check_inside, open_binary, open_fd, open_new, sync, write_atomic
from .._time import format_datetime
from ..errors import APIStatusError
from ._listings import LISTINGS
from ._manifest import UnitResult, UnitStateError, read_record, write_record
from ._plan import ExportUnit
from ._settings import ClientSettings
from ._staging import joined, staged_pages
from ._store import STATE_DIR, Store, open_store

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "FORMATS",
    "PARTIAL_DIR",
    "check_format",
    "restart_unit",
    "run_unit",
]

FORMATS = {"jsonl": ".jsonl", "parquet": ".parquet", "delta": ".parquet"}
"""Output formats and their unit files' extensions (a Delta unit is a Parquet part that the
plan's commit merges into the table, `_delta`)."""
PARTIAL_DIR = f"{STATE_DIR}/partial"
"""Staged rows, checkpoints and locks of unfinished units, inside a local output root."""
DELTA_PARTS = f"{STATE_DIR}/delta-parts"
"""Where a Delta unit's Parquet part waits for the plan's commit (removed once merged)."""
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
    storage_options: Mapping[str, Any] | None = None,
    scratch_dir: Path | str | None = None,
) -> UnitResult:
    """Export one unit to `out_dir` (idempotent and resumable); what it produced.

    `out_dir` is a local directory or an fsspec URL (`s3://bucket/prefix`, with
    `storage_options` for its driver); rows are staged in `scratch_dir` (a local directory of
    this runner; by default inside a local `out_dir`, or this machine's temporary directory).
    Pass a `client` (shared by many units), or `settings` to build one for this unit. A unit
    already done is a no-op (`skipped=True`, no request sent); an interrupted one resumes from
    its own checkpoint. `on_rows(n)` is called after each page is safely staged.
    """
    check_format(format)
    store = open_store(out_dir, storage_options)
    files = _Files(store, unit, format, None if scratch_dir is None else Path(scratch_dir))
    done = await asyncio.to_thread(_finished, files)
    if done is not None:
        await asyncio.to_thread(_tidy, files)
        return done
    if client is None:
        if settings is None:
            raise ValueError("pass client= or settings=")
        async with settings.connect() as own:
            return await run_unit(
                unit, out_dir=out_dir, client=own, format=format, page_size=page_size,
                on_rows=on_rows, storage_options=storage_options, scratch_dir=scratch_dir,
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
            listed = _list_all(client, unit, stage, token, page_size, on_rows)
            about = {"amili.export.unit_id": unit.unit_id, "amili.organization_id": unit.org_id}
            await _telemetry.span("amili.export.unit", listed, about)
        return await asyncio.to_thread(stage.finish)
    finally:
        stage.unlock()


def check_format(fmt: str) -> None:
    """ValueError for an unknown format; ImportError (with the pip hint) for Parquet without
    pyarrow or Delta without deltalake, before any unit starts."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    if fmt != "jsonl":
        from ._parquet import require_pyarrow

        require_pyarrow()
    if fmt == "delta":
        from ._delta import require_deltalake

        require_deltalake()


def restart_unit(
    out_dir: Path | str,
    unit: ExportUnit,
    *,
    format: str = "jsonl",
    storage_options: Mapping[str, Any] | None = None,
    scratch_dir: Path | str | None = None,
) -> None:
    """Forget everything of `unit` in `out_dir` (record, file) and in this runner's scratch
    directory (stage, checkpoint): its next run exports it from its start. The recovery from a
    `UnitStateError`; only names of this unit are removed (a link is removed, never followed).
    """
    check_format(format)
    store = open_store(out_dir, storage_options)
    scratch = None if scratch_dir is None else Path(scratch_dir)
    files = _Files(store, unit, format, scratch, check=False)
    store.delete(files.record)
    store.delete(files.final)
    for path in (files.checkpoint, files.data, files.tmp):
        check_inside(files.scratch, path.parent)  # a link at the name itself is what goes
        path.unlink(missing_ok=True)
    if files.lock.is_symlink():  # a real lock file stays: another runner may hold it
        files.lock.unlink()


@attrs.frozen
class _Files:
    """Where a unit's files go: its output and record in the store (keys), its stage in the
    scratch directory, each local path checked to lie inside its root through real
    directories."""

    store: Store
    unit: ExportUnit
    format: str
    scratch_dir: Path | None = None
    check: bool = True
    """Refuse (UnsafePathError) a symbolic link at any of the paths, or on the way to one."""
    scratch: Path = attrs.field(init=False)
    final: str = attrs.field(init=False)
    """The output's key in the store."""
    record: str = attrs.field(init=False)
    data: Path = attrs.field(init=False)
    checkpoint: Path = attrs.field(init=False)
    lock: Path = attrs.field(init=False)
    tmp: Path = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        from ._manifest import record_key

        scratch = self.scratch_dir or self.store.default_scratch()
        stem = self.unit.file_stem() + FORMATS[self.format]
        set_ = object.__setattr__  # frozen: the paths are derived once, here
        set_(self, "scratch", scratch)
        set_(self, "final", f"{DELTA_PARTS}/{stem}" if self.format == "delta" else stem)
        set_(self, "record", record_key(self.unit))
        set_(self, "data", scratch / f"{self.unit.unit_id}.jsonl.part")
        set_(self, "checkpoint", scratch / f"{self.unit.unit_id}.checkpoint.json")
        set_(self, "lock", scratch / f"{self.unit.unit_id}.lock")
        set_(self, "tmp", scratch / f"{self.unit.unit_id}.out.tmp")
        if not self.check:
            return
        root = self.store.local if self.scratch_dir is None and self.store.local else scratch
        for path in (self.data, self.checkpoint, self.lock, self.tmp):
            check_inside(root, path)
        if self.store.local is not None:
            for key in (self.final, self.record):
                self.store.local_path(key)

    @property
    def where(self) -> Path:
        """The output, for messages."""
        return Path(self.store.path(self.final))

    def error(self, path: Path, problem: str) -> UnitStateError:
        return UnitStateError(path, problem, self.unit.unit_id)


def _finished(files: _Files) -> UnitResult | None:
    """The unit's result if it is done: its file in place and vouched for by its manifest
    record (a unit without rows: the record alone; a merged Delta part: the record says so),
    or, in a local root, by its checkpoint (published, then interrupted: recorded now)."""
    store = files.store
    record = read_record(store, files.unit)
    if record is not None and record.format != files.format:
        raise ValueError(
            f"{store.url} holds a {record.format} export of unit {files.unit.unit_id}: "
            f"use another directory for {files.format}"
        )
    if record is not None and (record.committed is not None or not record.path):
        return record
    size = store.size(files.final)
    if size is None:
        return None  # not published (a record without its file: exported again)
    if record is not None:
        _verify(files, record.size, record.sha256, "its manifest record")
        return record
    if store.local is None:
        # Uploaded, then the runner died before the record: its stage was on its own
        # scratch, so nothing here vouches for the file; the unit runs again and rewrites the
        # same key with the same rows.
        return None
    output = _read_checkpoint(files).get("output")
    if output is None:
        raise files.error(
            files.where,
            "the file exists but no manifest record or checkpoint of this unit vouches for it "
            "(not written by this export?)",
        )
    _verify(files, output["size"], output["sha256"], "its checkpoint")
    result = _describe(files, store.local_path(files.final))
    result = attrs.evolve(result, extracted_at=output.get("extracted_at"))
    write_record(store, files.unit, result)
    return attrs.evolve(result, skipped=True, resumed_from=result.rows)


def _tidy(files: _Files) -> None:
    """Remove a done unit's leftover stage (its runner died between publishing and cleaning
    up), unless a runner holds the unit's lock; never creates the lock."""
    try:
        fd = open_fd(files.lock, create=False)
    except FileNotFoundError:
        return  # the lock goes last: no lock, no leftovers
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return
    try:
        for path in (files.data, files.checkpoint, files.tmp, files.lock):
            path.unlink(missing_ok=True)
    finally:
        os.close(fd)


def _verify(files: _Files, size: int, sha256: str, voucher: str) -> None:
    """UnitStateError unless the published file is exactly what `voucher` recorded: its size
    and sha256 in a local root, its size in an object store (reading it back costs a
    download; every upload was checked when it was made)."""
    if files.store.local is None:
        actual_size, actual_sha = files.store.size(files.final) or 0, sha256
    else:
        actual = _describe(files, files.store.local_path(files.final))
        actual_size, actual_sha = actual.size, actual.sha256
    if (actual_size, actual_sha) != (size, sha256):
        raise files.error(
            files.where,
            f"the file does not match {voucher} ({actual_size:,} bytes, sha256 "
            f"{actual_sha[:12]}..., recorded {size:,} bytes, {sha256[:12]}...): "
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
    listing = LISTINGS[unit.resource]
    pager = listing.call(
        client, unit.org_id, unit.from_, unit.to, unit.listing_filters(), page_size, token
    )
    async with contextlib.aclosing(staged_pages(pager, listing.model).pages()) as pages:
        async for page in pages:
            data = joined(page.items)
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


def _describe(files: _Files, path: Path, digest: _Digest | None = None) -> UnitResult:
    """Rows, checksum and size of a local output file (at `path`, to be published; its
    `digest` when already taken)."""
    digest = digest or _digest(path)
    if files.format != "jsonl":
        from ._parquet import parquet_rows

        rows = parquet_rows(path)
    else:
        rows = digest.newlines
    return UnitResult(
        unit_id=files.unit.unit_id,
        org_id=files.unit.org_id,
        rows=rows,
        path=files.final,
        sha256=digest.sha256,
        size=digest.size,
        format=files.format,
    )


def _now() -> str:
    return format_datetime(dt.datetime.now(dt.UTC))


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
    """A unit's staged rows, checkpoint and lock in the scratch directory (blocking file IO)."""

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
        self._extracted_at = _now()
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
        self._extracted_at = state.get("extracted_at") or self._extracted_at
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
        self._extracted_at = _now()
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
            "extracted_at": self._extracted_at,
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
        if self._rows == 0:  # an empty window: recorded, no file
            result = UnitResult(
                unit_id=files.unit.unit_id, org_id=files.unit.org_id, rows=0, path="",
                sha256="", size=0, format=files.format, extracted_at=self._extracted_at,
            )  # fmt: skip
            write_record(files.store, files.unit, result)
            self.clean()
            return result
        if files.format == "jsonl":
            output, digest = files.data, staged  # the stage is the output: read once
        else:
            from ._parquet import write_parquet

            with open_new(files.tmp) as stream:
                write_parquet(
                    _lines(files.data),
                    LISTINGS[files.unit.resource].model,
                    stream,
                    extracted_at=dt.datetime.fromisoformat(self._extracted_at),
                )
            output, digest = files.tmp, None
        result = attrs.evolve(
            _describe(files, output, digest),
            resumed_from=self._resumed_from,
            extracted_at=self._extracted_at,
        )
        self._save(
            _DONE_TOKEN,
            output={
                "size": result.size,
                "sha256": result.sha256,
                "extracted_at": result.extracted_at,
            },
        )
        files.store.put(output, files.final)
        write_record(files.store, files.unit, result)
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
