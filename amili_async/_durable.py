"""Files that survive a crash: fsync before trusting, write aside and rename into place.

Shared by the CLI's resumable export and `amili_async.export`. A rename is atomic on POSIX, so
a reader sees the old file or the new one, never half of one; the fsync of the data before it
and of the directory after it makes the new name last through a power cut.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any


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


def publish(tmp: Path, final: Path) -> None:
    """Rename a written and synced ``tmp`` to ``final`` atomically, durably."""
    os.replace(tmp, final)
    sync_dir(final.parent)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: never half written, even if the process dies midway."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as stream:
        stream.write(data)
        sync(stream)
    publish(tmp, path)
