"""The manifest of an output root: one record per finished unit, each its own file.

`<out>/_amili/manifest/<unit id>.json` (out of the data path: readers skip `_` names) is
written whole once the unit's output is in place, so any number of processes or machines
record units without a lock or a shared file to corrupt; reading the manifest is listing that
folder. A record holds the size and sha256 of the file it vouches for: a unit counts as done
only while its file matches (on an object store: its size).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from .. import _json
from ._plan import ExportUnit
from ._store import STATE_DIR, Store, open_store

__all__ = ["MANIFEST_DIR", "UnitResult", "UnitStateError", "read_manifest"]

MANIFEST_DIR = f"{STATE_DIR}/manifest"


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
    """The output file, relative to the output root ("" for a unit with no rows: no file)."""
    sha256: str
    size: int
    format: str
    skipped: bool = False
    """True when the unit was found done (its file in place) and this attempt did nothing."""
    resumed_from: int = attrs.field(default=0, eq=False)
    """Rows an earlier attempt had staged (or all of them, when skipped); not recorded."""
    extracted_at: str | None = None
    """When the unit's listing began (ISO 8601 UTC): every row was read at or after it."""
    committed: int | None = None
    """Delta: the table version whose transaction merged the unit's rows (None: not yet)."""

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def record_key(unit: ExportUnit) -> str:
    return f"{MANIFEST_DIR}/{unit.unit_id}.json"


def _load(raw: bytes, where: Path | str, unit_id: str) -> UnitResult:
    """The record read from `where`; UnitStateError (naming it) when it is not one."""
    try:
        data = _json.loads(raw)
        data.pop("unit", None)
        data.pop("skipped", None)
        return UnitResult(**data)
    except (_json.DecodeError, TypeError, AttributeError) as error:
        raise UnitStateError(
            Path(where), f"the manifest record is damaged ({type(error).__name__})", unit_id
        ) from None


def read_record(store: Store, unit: ExportUnit) -> UnitResult | None:
    """The unit's manifest record, None when it is not recorded as done."""
    key = record_key(unit)
    raw = store.read(key)  # locally: a planted link is refused, not read
    if raw is None:
        return None
    record = _load(raw, store.path(key), unit.unit_id)
    return attrs.evolve(record, skipped=True, resumed_from=record.rows)


def write_record(store: Store, unit: ExportUnit, result: UnitResult) -> None:
    """Record the unit as done (after its output file is in place)."""
    record = {**result.to_dict(), "unit": unit.to_dict()}
    del record["skipped"], record["resumed_from"]
    store.write(record_key(unit), _json.dumps(record, indent=2))


def read_manifest(
    out_dir: Path | str, *, storage_options: Mapping[str, Any] | None = None
) -> list[UnitResult]:
    """Every unit recorded as done in `out_dir` (a path or URL), in unit id order."""
    store = open_store(out_dir, storage_options)
    records = []
    for key in store.keys(MANIFEST_DIR):
        raw = store.read(key)
        if raw is not None and key.endswith(".json"):
            records.append(_load(raw, store.path(key), Path(key).stem))
    return records
