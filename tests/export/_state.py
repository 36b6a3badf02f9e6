"""Reading the state of a running single-file export (`FILE.parts/`), as tests watch it.

Checkpoints are replaced atomically, so a read never sees half of one; a test polls these
to reach a kill point, never a timer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from amili_async._cli._export import work_dir
from amili_async.export import PARTIAL_DIR
from amili_async.export._manifest import MANIFEST_DIR

__all__ = ["checkpoints", "exported_rows", "stage_files", "work_dir"]


def checkpoints(out: Path) -> dict[str, dict[str, Any]]:
    """Each unfinished unit's checkpoint of the export to `out`, by unit id."""
    states = {}
    for path in sorted((work_dir(out) / PARTIAL_DIR).glob("*.checkpoint.json")):
        try:
            states[path.name.split(".")[0]] = orjson.loads(path.read_bytes())
        except FileNotFoundError:  # the unit finished meanwhile
            continue
    return states


def records(out: Path) -> dict[str, dict[str, Any]]:
    """Each finished unit's manifest record of the export to `out`, by unit id."""
    found = {}
    for path in sorted((work_dir(out) / MANIFEST_DIR).glob("*.json")):
        try:
            found[path.stem] = orjson.loads(path.read_bytes())
        except FileNotFoundError:
            continue
    return found


def exported_rows(out: Path) -> int:
    """Rows the export to `out` has safely staged or published so far."""
    return sum(s["rows"] for s in checkpoints(out).values()) + sum(
        r["rows"] for r in records(out).values()
    )


def stage_files(out: Path) -> list[Path]:
    """The staged rows of each unfinished unit of the export to `out`."""
    return sorted((work_dir(out) / PARTIAL_DIR).glob("*.jsonl.part"))
