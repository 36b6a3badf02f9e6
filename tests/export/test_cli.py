"""`amili-async export invoices --orgs-file ... --out-dir ...`, here and on a Dask cluster."""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
from pathlib import Path
from typing import Any

import pytest

from amili_async._cli import main
from amili_async.export import PARTIAL_DIR, SUCCESS, read_manifest

from ..e2e.conftest import run_cli
from ._interrupt import BACKGROUND_CLI
from .conftest import FROM, RemoteSandbox, read_jsonl

CLI_TIMEOUT = 120.0
"""Seconds a CLI child may take (it exports up to 20,000 invoices on a shared machine)."""

INTERRUPTED_UNITS = 16
"""Units of the plan that Ctrl-C interrupts: four times the cluster's worker threads, so most
of them are still queued when the first one has started."""
ONE_DAY = dt.timedelta(days=1)
"""The CLI exports one day of one organisation: some 2,900 invoices, cut into 4 units."""


async def _count(sandbox: RemoteSandbox, org: str, start: dt.datetime, end: dt.datetime) -> int:
    """Invoices of `org` created in [start, end), listed by the SDK itself."""
    async with sandbox.settings.connect() as client:
        return sum([1 async for _ in client.invoices.list(org, from_=start, to=end)])


def _orgs_file(tmp_path: Path, orgs: list[str]) -> Path:
    path = tmp_path / "orgs.txt"
    path.write_text("# organisations to export\n" + "\n".join(orgs) + "\n\n", encoding="utf-8")
    return path


async def test_one_machine_parquet_with_progress_and_summary(
    remote_sandbox: RemoteSandbox, tmp_path: Path
) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    org = remote_sandbox.org_ids[1]
    out = tmp_path / "out"
    args = [
        "export", "invoices", "--orgs-file", _orgs_file(tmp_path, [org]), "--out-dir", out,
        "--format", "parquet", "--partitions-per-org", "4",
        "--from", FROM.isoformat(), "--to", (FROM + ONE_DAY).isoformat(),
    ]  # fmt: skip
    run = await run_cli(*args, env=remote_sandbox.env(), timeout=CLI_TIMEOUT)
    assert run.code == 0, run.stderr
    count = await _count(remote_sandbox, org, FROM, FROM + ONE_DAY)
    assert f"exported {count:,} invoices of 1 organisations in 4 units (4 run, 0 already" in (
        run.stdout
    )
    assert f"{count:,} invoices, 4 of 4 units" in run.stderr  # the progress line
    results = read_manifest(out)
    assert sum(r.rows for r in results) == count
    ids = [
        i
        for r in results
        if r.path  # a unit without rows has no file
        for i in pq.read_table(out / r.path, columns=["id"])["id"].to_pylist()
    ]
    assert len(set(ids)) == len(ids) == count
    # The root is one hive-partitioned dataset: the manifest and _SUCCESS are not read as data.
    dataset = pq.read_table(out)
    assert dataset.num_rows == count
    assert set(dataset["org"].to_pylist()) == {org}
    assert (out / SUCCESS).is_file()
    pandas = pytest.importorskip("pandas")
    polars = pytest.importorskip("polars")
    assert len(pandas.read_parquet(out, columns=["id"])) == count
    # polars does not skip `_` names in a directory: the glob of the data files (docs/SCALE.md)
    files = polars.scan_parquet(f"{out}/org=*/*.parquet", hive_partitioning=True)
    assert files.select("id").collect().height == count

    again = await run_cli(*args, env=remote_sandbox.env(), timeout=CLI_TIMEOUT)
    assert again.code == 0, again.stderr
    assert "(0 run, 4 already done)" in again.stdout


async def test_on_a_dask_cluster(
    remote_sandbox: RemoteSandbox, cluster: Any, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    run = await run_cli(
        "export", "invoices", "--orgs-file", _orgs_file(tmp_path, remote_sandbox.org_ids),
        "--out-dir", out, "--status", "CLOSED", "--no-progress",
        "--dask-scheduler", cluster.scheduler.address,
        env=remote_sandbox.env(),
        timeout=CLI_TIMEOUT,
    )  # fmt: skip
    assert run.code == 0, run.stderr
    rows = [row for r in read_manifest(out) if r.path for row in read_jsonl(out / r.path)]
    assert rows
    assert {row["status"] for row in rows} == {"CLOSED"}
    assert {row["organization"]["id"] for row in rows} == set(remote_sandbox.org_ids)
    assert len({row["id"] for row in rows}) == len(rows)
    assert f"exported {len(rows):,} invoices of 3 organisations in 3 units" in run.stdout


def test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    orgs = str(_orgs_file(tmp_path, ["o"]))
    args = ["export", "invoices", "--orgs-file", orgs, "--out-dir", str(tmp_path)]
    for argv, expected in (
        (["export", "invoices", "--out-dir", str(tmp_path)], "required: --org, --out"),
        ([*args, "--org", "o"], "leave out --org"),
        ([*args, "--partitions-per-org", "3"], "--partitions-per-org: needs --from and --to"),
        (["export", "batches", *args[2:]], "--orgs-file: exports invoices only"),
    ):
        with pytest.raises(SystemExit) as refused:
            main(argv)
        assert refused.value.code == 2
        lines = capsys.readouterr().err.splitlines()
        assert len(lines) == 1, (argv, lines)
        assert expected in lines[0], (argv, lines)


async def test_ctrl_c_on_a_dask_cluster_cancels_the_units_and_says_how_to_resume(
    remote_sandbox: RemoteSandbox, cluster: Any, tmp_path: Path
) -> None:
    org = remote_sandbox.org_ids[2]
    out = tmp_path / "out"
    args = [
        "export", "invoices", "--orgs-file", _orgs_file(tmp_path, [org]), "--out-dir", out,
        "--partitions-per-org", str(INTERRUPTED_UNITS), "--page-size", "20", "--no-progress",
        "--from", FROM.isoformat(), "--to", (FROM + ONE_DAY).isoformat(),
        "--dask-scheduler", cluster.scheduler.address,
    ]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        *BACKGROUND_CLI, *map(str, args),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=remote_sandbox.env(),
    )  # fmt: skip
    try:
        async with asyncio.timeout(CLI_TIMEOUT):
            while not list((out / PARTIAL_DIR).glob("*.checkpoint.json")):  # a unit started
                assert proc.returncode is None, "the export ended before it was interrupted"
                await asyncio.sleep(0.01)  # polling a file the child writes, not a timer
            proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
            stdout, stderr = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    assert proc.returncode == 130, stderr.decode()
    # Dask's own loggers may add lines on a loaded machine ("event loop was unresponsive"):
    # the CLI's line is among them, and the CLI raised nothing of its own.
    log = stderr.decode()
    assert "interrupted: run the same command again to resume" in log.splitlines(), log
    assert "KeyboardInterrupt" not in log
    assert "CancelledError" not in log
    assert b"exported" not in stdout
    # Stopped at once: at most the units running at the instant are finished (by the
    # workers); the cancelled ones never start. The plan has more units than worker threads.
    assert len(read_manifest(out)) < INTERRUPTED_UNITS

    again = await run_cli(*args, env=remote_sandbox.env(), timeout=CLI_TIMEOUT)
    assert again.code == 0, again.stderr
    count = await _count(remote_sandbox, org, FROM, FROM + ONE_DAY)
    assert f"exported {count:,} invoices" in again.stdout
    ids = [row["id"] for r in read_manifest(out) if r.path for row in read_jsonl(out / r.path)]
    assert len(ids) == len(set(ids)) == count
