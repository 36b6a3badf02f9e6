"""Delta Lake output (`format="delta"`, extra `amili-async[delta]`): the plan's commit.

Each unit writes its rows as a Parquet part under `_amili/delta-parts/` (the engine,
`_unit`); once every unit of the plan is done, the driver merges the parts into the Delta
table at the output root in transactions of at most `COMMIT_ROWS` rows, on the organisation
and the invoice `id`: a row already in the table is replaced only by a newer copy (a later
`_extracted_at`), any other row is inserted. So a re-run, an overlapping plan or two plans
committing one after the other never duplicate an invoice, and the newest copy wins. A unit's
record names the version that merged it and its part is then removed: running the plan again
commits nothing.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator, Sequence
from typing import Any

import attrs

from ._listings import LISTINGS
from ._manifest import UnitResult, write_record
from ._parquet import EXTRACTED_AT, arrow_schema
from ._plan import ExportUnit
from ._store import Store, delta_options

deltalake: Any
try:
    import deltalake
except ImportError:  # pragma: no cover - depends on the installed extras
    deltalake = None

__all__ = ["COMMIT_ROWS", "EXTRACTED_AT", "ORG_COLUMN", "commit_parts", "require_deltalake"]

COMMIT_ROWS = 500_000
"""Rows merged in one transaction at most: few commits per plan (a commit rewrites the files
it touches, so fewer is cheaper), while the merge's source (~1 KB a row in Arrow) stays
within ~0.5 GB of the driver's memory."""
ORG_COLUMN = "org"
"""The partition column: the organisation id, as in the Parquet layout's `org=<id>/`."""
_MERGE_ON = f"t.{ORG_COLUMN} = s.{ORG_COLUMN} AND t.id = s.id"
"""Invoice ids are unique within an organisation; the org also prunes the table's partitions."""
_NEWER = f"s.{EXTRACTED_AT} > t.{EXTRACTED_AT}"


def require_deltalake() -> None:
    if deltalake is None:
        raise ImportError("Delta Lake output needs deltalake: pip install 'amili-async[delta]'")


def _part(store: Store, unit: ExportUnit, result: UnitResult) -> Any:
    """A unit's part as an Arrow table, with its partition and `_extracted_at` columns."""
    import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]
    import pyarrow.parquet as pq  # type: ignore[import-untyped,unused-ignore]

    raw = store.read(result.path)
    if raw is None:
        raise FileNotFoundError(f"{store.path(result.path)}: the unit's Delta part is missing")
    table = pq.read_table(io.BytesIO(raw), schema=arrow_schema(LISTINGS[unit.resource].model))
    assert result.extracted_at is not None, "a unit with rows records when it was listed"
    listed = dt.datetime.fromisoformat(result.extracted_at)
    stamp = pa.scalar(listed, type=pa.timestamp("us", tz="UTC"))
    table = table.append_column(ORG_COLUMN, pa.array([unit.org_id] * table.num_rows, pa.string()))
    return table.append_column(EXTRACTED_AT, pa.array([stamp] * table.num_rows))


def _batches(
    pending: Sequence[tuple[ExportUnit, UnitResult]],
) -> Iterator[list[tuple[ExportUnit, UnitResult]]]:
    batch: list[tuple[ExportUnit, UnitResult]] = []
    rows = 0
    for item in pending:
        if batch and rows + item[1].rows > COMMIT_ROWS:
            yield batch
            batch, rows = [], 0
        batch.append(item)
        rows += item[1].rows
    if batch:
        yield batch


def commit_parts(
    store: Store, units: Sequence[ExportUnit], results: Sequence[UnitResult]
) -> list[UnitResult]:
    """Merge every done unit's part not merged yet into the table; the results, updated."""
    require_deltalake()
    import pyarrow as pa

    by_id = {unit.unit_id: unit for unit in units}
    updated = {r.unit_id: r for r in results}
    pending = [(by_id[r.unit_id], r) for r in results if r.committed is None and r.rows]
    uri = store.url if store.local is None else str(store.local.resolve())
    options = delta_options(store)
    for batch in _batches(pending):
        source = pa.concat_tables([_part(store, unit, result) for unit, result in batch])
        version = _merge(uri, options, source)
        for unit, result in batch:
            merged = attrs.evolve(result, committed=version)
            write_record(store, unit, merged)  # first: a crash now re-merges, a no-op
            store.delete(result.path)
            updated[result.unit_id] = merged
    return [updated[r.unit_id] for r in results]


def _merge(uri: str, options: dict[str, str], source: Any) -> int:
    """One transaction: `source` merged into the table at `uri` (created by the first
    commit); the table version it made."""
    try:
        table = deltalake.DeltaTable(uri, storage_options=options)
    except deltalake.exceptions.TableNotFoundError:
        try:
            deltalake.write_deltalake(
                uri, source, mode="error", partition_by=[ORG_COLUMN], storage_options=options
            )
            return int(deltalake.DeltaTable(uri, storage_options=options).version())
        except deltalake.exceptions.DeltaError:  # created by another plan meanwhile: merge
            table = deltalake.DeltaTable(uri, storage_options=options)
    (
        table.merge(source=source, predicate=_MERGE_ON, source_alias="s", target_alias="t")
        .when_matched_update_all(predicate=_NEWER)
        .when_not_matched_insert_all()
        .execute()
    )
    return int(table.version())
