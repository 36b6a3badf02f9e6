"""The scale-out export on a Dask LocalCluster of two worker processes, against the sandbox in
another process: 3 organisations x 20,000 invoices, 8 units each, with one unit failing once
and one worker killed mid-unit, then the same plan again and on one machine."""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path

import attrs
import pytest

from amili_async.export import (
    SUCCESS,
    ExportResult,
    ExportUnit,
    UnitResult,
    plan_export,
    read_manifest,
    run_units,
)

from ._faults import Both, Once
from .conftest import FROM, PARTITIONS, TO, RemoteSandbox, read_jsonl, wire_values

distributed = pytest.importorskip("distributed")
from amili_async.export import dask as export_dask  # noqa: E402


@attrs.frozen
class DaskRun:
    out: Path
    result: ExportResult
    markers: tuple[Path, ...]
    plan: list[ExportUnit]


@pytest.fixture(scope="module")
def plan(remote_sandbox: RemoteSandbox) -> list[ExportUnit]:
    return plan_export(remote_sandbox.org_ids, from_=FROM, to=TO, partitions_per_org=PARTITIONS)


@pytest.fixture(scope="module")
def dask_run(
    cluster: object,
    plan: list[ExportUnit],
    remote_sandbox: RemoteSandbox,
    tmp_path_factory: pytest.TempPathFactory,
) -> DaskRun:
    """One export on the cluster while a unit of org 1 fails once and a worker running a unit
    of org 2 is killed (SIGKILL) after its first page is staged."""
    out = tmp_path_factory.mktemp("dask-export")
    markers = (out.parent / f"{out.name}-failed", out.parent / f"{out.name}-killed")
    orgs = remote_sandbox.org_ids
    hooks = Both((Once(str(markers[0]), orgs[1], "raise"), Once(str(markers[1]), orgs[2], "kill")))
    settings = attrs.evolve(remote_sandbox.settings, options={"on_request": hooks})
    result = export_dask.run_units_on_dask(cluster, plan, settings=settings, out_dir=out)  # type: ignore[arg-type]
    return DaskRun(out, result, markers, plan)


def _ran(result: UnitResult) -> UnitResult:
    return attrs.evolve(result, skipped=False)


def _by_id(result: UnitResult) -> str:
    return result.unit_id


def test_every_invoice_exactly_once_despite_a_failure_and_a_dead_worker(
    dask_run: DaskRun, remote_sandbox: RemoteSandbox
) -> None:
    assert all(marker.exists() for marker in dask_run.markers)  # both faults did happen
    ids: list[str] = []
    per_org: collections.Counter[str] = collections.Counter()
    for unit in dask_run.result.units:
        rows = read_jsonl(dask_run.out / unit.path)
        assert len(rows) == unit.rows
        ids.extend(row["id"] for row in rows)
        per_org.update(row["organization"]["id"] for row in rows)
    assert len(ids) == 60_000
    assert len(set(ids)) == 60_000
    assert dict(per_org) == remote_sandbox.counts
    assert dask_run.result.by_org == remote_sandbox.counts
    assert dask_run.result.total == 60_000
    assert len(dask_run.result.units) == len(dask_run.plan) == 24
    # Only published files and the manifest remain: no partial output anywhere.
    files = {p.relative_to(dask_run.out).as_posix() for p in dask_run.out.rglob("*") if p.is_file()}
    published = {u.path for u in dask_run.result.units}
    recorded = {f"_amili/manifest/{u.unit_id}.json" for u in dask_run.result.units}
    assert files == published | recorded | {SUCCESS}
    # A unit whose worker died after publishing it (before Dask heard of it) is found done when
    # Dask runs it again, and reported `skipped`: the same file, rows and checksum.
    assert read_manifest(dask_run.out) == sorted(map(_ran, dask_run.result.units), key=_by_id)


def test_running_the_plan_again_is_a_no_op(
    dask_run: DaskRun, cluster: object, remote_sandbox: RemoteSandbox
) -> None:
    before = {p: p.stat().st_mtime_ns for p in dask_run.out.rglob("*") if p.is_file()}
    again = export_dask.run_units_on_dask(
        cluster,  # type: ignore[arg-type]
        dask_run.plan,
        settings=remote_sandbox.settings,
        out_dir=dask_run.out,
    )
    assert again.skipped == len(dask_run.plan)
    assert list(map(_ran, again.units)) == list(map(_ran, dask_run.result.units))
    after = {p: p.stat().st_mtime_ns for p in dask_run.out.rglob("*") if p.is_file()}
    assert after == before


def test_the_same_plan_on_one_machine_gives_the_same_files(
    dask_run: DaskRun, remote_sandbox: RemoteSandbox, tmp_path: Path
) -> None:
    local = asyncio.run(
        run_units(dask_run.plan, settings=remote_sandbox.settings, out_dir=tmp_path)
    )
    assert [(u.path, u.rows, u.sha256) for u in local.units] == [
        (u.path, u.rows, u.sha256) for u in dask_run.result.units
    ]


def test_parquet_reads_back_the_values_of_the_json_lines_export(
    dask_run: DaskRun, remote_sandbox: RemoteSandbox, tmp_path: Path
) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    units = dask_run.plan[: PARTITIONS // 2]  # half of one organisation: ~10,000 invoices
    parquet = asyncio.run(
        run_units(units, settings=remote_sandbox.settings, out_dir=tmp_path, format="parquet")
    )
    jsonl = {u.unit_id: u for u in dask_run.result.units}
    compared = 0
    for unit in parquet.units:
        table = pq.read_table(tmp_path / unit.path).drop_columns(["_extracted_at"])
        expected = read_jsonl(dask_run.out / jsonl[unit.unit_id].path)
        assert table.num_rows == unit.rows == len(expected)
        for got, want in zip(table.to_pylist(), expected, strict=True):
            assert wire_values(got) == wire_values(want)
            compared += 1
    assert compared == sum(jsonl[u.unit_id].rows for u in units) > 5_000
