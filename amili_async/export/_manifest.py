"""The manifest of an output directory: one record per finished unit, each its own file.

`<out_dir>/manifest/<unit id>.json` is written atomically once the unit's output is in place,
so any number of processes (or machines sharing the directory) record units without a lock
or a shared file to corrupt; reading the manifest is listing that directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import orjson

from .._durable import write_atomic
from ._plan import ExportUnit

__all__ = ["MANIFEST_DIR", "UnitResult", "read_manifest"]

MANIFEST_DIR = "manifest"


@attrs.frozen
class UnitResult:
    """What a finished unit produced: its rows, its file (relative to out_dir) and checksum."""

    unit_id: str
    org_id: str
    rows: int
    path: str
    """The output file, relative to the output directory."""
    sha256: str
    size: int
    format: str
    skipped: bool = False
    """True when the unit was found done (its file in place) and this attempt did nothing."""

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def record_path(out_dir: Path, unit: ExportUnit) -> Path:
    return out_dir / MANIFEST_DIR / f"{unit.unit_id}.json"


def read_record(out_dir: Path, unit: ExportUnit) -> UnitResult | None:
    """The unit's manifest record, None when it is not recorded as done."""
    try:
        data = orjson.loads(record_path(out_dir, unit).read_bytes())
    except FileNotFoundError:
        return None
    data.pop("unit", None)
    return UnitResult(**{**data, "skipped": True})


def write_record(out_dir: Path, unit: ExportUnit, result: UnitResult) -> None:
    """Record the unit as done (after its output file is in place)."""
    path = record_path(out_dir, unit)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {**result.to_dict(), "unit": unit.to_dict()}
    del record["skipped"]
    write_atomic(path, orjson.dumps(record, option=orjson.OPT_INDENT_2))


def read_manifest(out_dir: Path) -> list[UnitResult]:
    """Every unit recorded as done in `out_dir`, in unit id order."""
    results = []
    for path in sorted((Path(out_dir) / MANIFEST_DIR).glob("*.json")):
        data = orjson.loads(path.read_bytes())
        data.pop("unit", None)
        results.append(UnitResult(**data))
    return results
