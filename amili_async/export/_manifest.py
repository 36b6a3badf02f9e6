"""The manifest of an output directory: one record per finished unit, each its own file.

`<out_dir>/manifest/<unit id>.json` is written atomically once the unit's output is in place,
so any number of processes (or machines sharing the directory) record units without a lock
or a shared file to corrupt; reading the manifest is listing that directory. A record holds the
size and sha256 of the file it vouches for: a unit counts as done only while its file matches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from .. import _json
from .._durable import open_binary, write_atomic
from ._plan import ExportUnit

__all__ = ["MANIFEST_DIR", "UnitResult", "UnitStateError", "read_manifest"]

MANIFEST_DIR = "manifest"


class UnitStateError(ValueError):
    """A unit's saved state (checkpoint, staged rows, manifest record, published file) is
    damaged or is not what it vouches for: which file, what is wrong and what to do.

    Nothing is changed or removed: `restart_unit(out_dir, unit)` (the CLI's `--restart-unit
    ID`; `--force` for a single-file export) forgets the unit's state so it is exported again
    from its start.
    """

    def __init__(self, path: Path, problem: str, unit_id: str) -> None:
        self.path = path
        self.problem = problem
        self.unit_id = unit_id
        self.remedy = f"run again with --restart-unit {unit_id} to export this unit from its start"
        super().__init__(path, problem, unit_id)

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}; {self.remedy}"


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
    resumed_from: int = attrs.field(default=0, eq=False)
    """Rows an earlier attempt had staged (or all of them, when skipped); not recorded."""

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def record_path(out_dir: Path, unit: ExportUnit) -> Path:
    return out_dir / MANIFEST_DIR / f"{unit.unit_id}.json"


def _load(path: Path, unit_id: str) -> UnitResult:
    """The record in `path`; UnitStateError (naming it) when it is not one."""
    with open_binary(path, create=False) as stream:  # a planted link is refused, not read
        raw = stream.read()
    try:
        data = _json.loads(raw)
        data.pop("unit", None)
        data.pop("skipped", None)
        return UnitResult(**data)
    except (_json.DecodeError, TypeError, AttributeError) as error:
        raise UnitStateError(
            path, f"the manifest record is damaged ({type(error).__name__})", unit_id
        ) from None


def read_record(out_dir: Path, unit: ExportUnit) -> UnitResult | None:
    """The unit's manifest record, None when it is not recorded as done."""
    path = record_path(out_dir, unit)
    try:
        record = _load(path, unit.unit_id)
    except FileNotFoundError:
        return None
    return attrs.evolve(record, skipped=True, resumed_from=record.rows)


def write_record(out_dir: Path, unit: ExportUnit, result: UnitResult) -> None:
    """Record the unit as done (after its output file is in place)."""
    path = record_path(out_dir, unit)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {**result.to_dict(), "unit": unit.to_dict()}
    del record["skipped"], record["resumed_from"]
    write_atomic(path, _json.dumps(record, indent=2))


def read_manifest(out_dir: Path) -> list[UnitResult]:
    """Every unit recorded as done in `out_dir`, in unit id order."""
    return [
        _load(path, path.stem) for path in sorted((Path(out_dir) / MANIFEST_DIR).glob("*.json"))
    ]
