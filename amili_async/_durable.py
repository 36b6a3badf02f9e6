"""Files that survive a crash and cannot be redirected: fsync before trusting, write aside and
rename into place, never follow a symbolic link.

Shared by the CLI's export and `amili_async.export`. A rename is atomic on POSIX, so a reader
sees the old file or the new one, never half of one; the fsync of the data before it and of the
directory after it makes the new name last through a power cut. Output names are predictable,
so every file is opened with O_NOFOLLOW (and new ones with O_EXCL): a symbolic link planted at
one of those names is refused (`UnsafePathError`), never written through.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import IO, Any

__all__ = [
    "UnsafePathError",
    "check_inside",
    "open_binary",
    "open_fd",
    "open_new",
    "publish",
    "sync",
    "sync_dir",
    "write_atomic",
]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
"""O_NOFOLLOW where the OS has it (every POSIX system): open fails on a symbolic link."""
_FILE_MODE = 0o644
"""New files: readable by others, as an export is meant to be; written by the owner only."""


class UnsafePathError(OSError):
    """A path the export would write is a symbolic link or leaves its directory: refused."""


def sync(stream: IO[Any]) -> None:
    """Push what was written to ``stream`` through the OS cache onto the disk."""
    stream.flush()
    os.fsync(stream.fileno())


def sync_dir(directory: Path) -> None:
    """Make renames and new names in ``directory`` durable (a no-op where dirs cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_inside(root: Path, path: Path) -> None:
    """UnsafePathError unless ``path`` lies under ``root`` through real directories only.

    Every existing component from ``root`` down to ``path`` (itself included) must not be a
    symbolic link, so a link planted in the output tree cannot send a write elsewhere.
    """
    try:
        relative = path.relative_to(root)
    except ValueError:
        raise UnsafePathError(f"{path} is outside {root}") from None
    if ".." in relative.parts:
        raise UnsafePathError(f"{path} is outside {root}")
    current = root
    for part in relative.parts:
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            return
        if stat.S_ISLNK(mode):
            raise UnsafePathError(f"{current} is a symbolic link: refusing to write through it")


def _refuse_link(path: Path, error: OSError) -> UnsafePathError | OSError:
    """The error to raise for a failed no-follow open: UnsafePathError for a link."""
    if os.path.islink(path):
        return UnsafePathError(f"{path} is a symbolic link: refusing to write through it")
    return error


def open_fd(path: Path, *, create: bool = True) -> int:
    """A descriptor of ``path`` for reading and writing (created when missing), never through
    a link (the caller closes it)."""
    flags = os.O_RDWR | _NOFOLLOW | (os.O_CREAT if create else 0)
    try:
        return os.open(path, flags, _FILE_MODE)
    except OSError as error:
        raise _refuse_link(path, error) from None


def open_binary(path: Path, *, create: bool = True) -> IO[bytes]:
    """``path`` opened for reading and writing (created when missing), never through a link."""
    return os.fdopen(open_fd(path, create=create), "r+b")


def open_new(path: Path) -> IO[bytes]:
    """A new, empty file at ``path`` for writing: whatever was there is removed first (a link
    is removed, never followed), then the name is created exclusively."""
    path.unlink(missing_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, _FILE_MODE)
    except OSError as error:
        raise _refuse_link(path, error) from None
    return os.fdopen(fd, "wb")


def publish(tmp: Path, final: Path) -> None:
    """Rename a written and synced ``tmp`` to ``final`` atomically, durably (a link at
    ``final`` is replaced, never written through)."""
    os.replace(tmp, final)
    sync_dir(final.parent)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: never half written, even if the process dies midway."""
    tmp = path.with_name(path.name + ".tmp")
    with open_new(tmp) as stream:
        stream.write(data)
        sync(stream)
    publish(tmp, path)
