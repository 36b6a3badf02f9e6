"""Scale-out export: a listing cut into units of work, run on one machine or on a cluster.

    units = plan_export(org_ids, from_=start, to=end, partitions_per_org=8)
    result = await run_units(units, client=client, out_dir="s3://lake/invoices",
                             format="delta", storage_options={...})

`out_dir` is a local directory or any fsspec URL (`s3://` needs `amili-async[s3]`). Each unit
writes one file at a deterministic key (`org=<id>/part-...`, none for a unit without rows) and
records itself in `<out_dir>/_amili/manifest/`: running a plan again does only what is not
done yet, and a unit interrupted midway resumes from its own checkpoint, so every row ends up
in the output exactly once. `format="delta"` (`amili-async[delta]`) merges the plan into a
Delta table on the invoice id, the newest copy winning; `_SUCCESS` is written last. Damaged
state is refused with `UnitStateError` (naming the file); `restart_unit` runs such a unit again
from its start. `amili_async.export.dask` runs the same units on a Dask cluster (extra
`amili-async[dask]`); Parquet needs `amili-async[parquet]`.
"""

from ._commit import SUCCESS
from ._incremental import DEFAULT_LOOKBACK, plan_incremental, save_state
from ._local import DEFAULT_UNIT_CONCURRENCY, ExportFailedError, ExportResult, run_units
from ._manifest import UnitResult, UnitStateError, read_manifest
from ._plan import ExportUnit, plan_export
from ._settings import ClientSettings
from ._store import StoreWriteError
from ._unit import DEFAULT_PAGE_SIZE, FORMATS, PARTIAL_DIR, restart_unit, run_unit

__all__ = [
    "DEFAULT_LOOKBACK",
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_UNIT_CONCURRENCY",
    "FORMATS",
    "PARTIAL_DIR",
    "SUCCESS",
    "ClientSettings",
    "ExportFailedError",
    "ExportResult",
    "ExportUnit",
    "StoreWriteError",
    "UnitResult",
    "UnitStateError",
    "plan_export",
    "plan_incremental",
    "read_manifest",
    "restart_unit",
    "run_unit",
    "run_units",
    "save_state",
]
