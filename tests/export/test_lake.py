"""Straight into a data lake: the plan on a Dask cluster whose workers share no disk, writing a
Delta table to a real S3 API on loopback (moto's server, started here on a free port), a worker
killed mid-unit; then a re-run and an overlapping plan. And the URL rules: a URL is written to
the store it names or refused with a typed error, never to a local folder called `s3:`."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from amili_async.export import SUCCESS, ExportUnit, plan_export, read_manifest, run_units

from ..conftest import ROOT
from ._faults import Once
from .conftest import FROM, RemoteSandbox

distributed = pytest.importorskip("distributed")
deltalake = pytest.importorskip("deltalake")
moto_server = pytest.importorskip("moto.server")
from amili_async.export import dask as export_dask  # noqa: E402

BUCKET = "lake"
WINDOW = dt.timedelta(hours=12)
"""Half a day of each organisation (seeded from 07:00): some 600 invoices, several pages."""
PAGE = 200
"""A small page, so the killed unit had staged a page before it died."""
CLI_TIMEOUT = 120.0
"""Seconds a CLI child may take on a shared machine."""


@attrs.frozen
class S3:
    endpoint: str
    options: dict[str, str]
    """Storage options as the SDK takes them (object_store spellings, translated for s3fs)."""

    def env(self) -> dict[str, str]:
        """The same, as the environment variables every reader (deltalake, s3fs) takes."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_ALLOW_HTTP": "true",
        }

    def keys(self, prefix: str) -> dict[str, tuple[int, str]]:
        """Every object under `prefix`: its size and ETag (a rewrite changes the ETag's time)."""
        import boto3

        s3 = boto3.client("s3", endpoint_url=self.endpoint, **_BOTO)
        found: dict[str, tuple[int, str]] = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
            for item in page.get("Contents", []):
                found[item["Key"]] = (item["Size"], str(item["LastModified"]) + item["ETag"])
        return found


_BOTO = {
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
    "region_name": "us-east-1",
}


@pytest.fixture(scope="module")
def s3() -> Iterator[S3]:
    """moto's S3 server on a free loopback port, with one bucket; stopped afterwards."""
    import boto3

    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        boto3.client("s3", endpoint_url=endpoint, **_BOTO).create_bucket(Bucket=BUCKET)
        options = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
        }
        yield S3(endpoint, options)
    finally:
        server.stop()


async def _ids_per_org(sandbox: RemoteSandbox, start: dt.datetime, end: dt.datetime) -> Any:
    """Each organisation's invoice ids created in [start, end), listed by the SDK itself."""
    async with sandbox.settings.connect() as client:
        return {
            org: {i.id async for i in client.invoices.list(org, from_=start, to=end)}
            for org in sandbox.org_ids
        }


def _table(s3: S3, url: str) -> Any:
    table = deltalake.DeltaTable(url, storage_options={**s3.options, "AWS_ALLOW_HTTP": "true"})
    return table


def test_delta_on_s3_from_workers_without_a_shared_disk(
    cluster: Any, remote_sandbox: RemoteSandbox, s3: S3, tmp_path: Path
) -> None:
    url = f"s3://{BUCKET}/nightly"
    scratch = cluster.run(lambda dask_worker: dask_worker.local_directory)
    assert len(set(scratch.values())) == len(scratch) == 2  # each worker its own directory
    plan = plan_export(remote_sandbox.org_ids, from_=FROM, to=FROM + WINDOW, partitions_per_org=4)
    marker = tmp_path / "killed"
    killer = Once(str(marker), remote_sandbox.org_ids[2], "kill")
    settings = attrs.evolve(remote_sandbox.settings, options={"on_request": killer})

    def run(units: list[ExportUnit], **kwargs: Any) -> Any:
        return export_dask.run_units_on_dask(
            cluster, units, out_dir=url, format="delta", storage_options=s3.options,
            page_size=PAGE, **kwargs,
        )  # fmt: skip

    first = run(plan, settings=settings)
    assert marker.exists()  # a worker did die mid-unit
    expected = asyncio.run(_ids_per_org(remote_sandbox, FROM, FROM + WINDOW))
    rows = _table(s3, url).to_pyarrow_table(columns=["org", "id", "_extracted_at"]).to_pylist()
    ids = [(row["org"], row["id"]) for row in rows]
    assert len(ids) == len(set(ids)) == sum(map(len, expected.values())) > 1_500
    per_org = collections.defaultdict(set)
    for org, invoice in ids:
        per_org[org].add(invoice)
    assert dict(per_org) == expected
    assert first.total == len(ids)
    # Only the table, the manifest and _SUCCESS: the merged parts are gone, and no stage or
    # checkpoint ever reached the store.
    keys = s3.keys("nightly/")
    assert f"nightly/{SUCCESS}" in keys
    assert not [k for k in keys if "delta-parts" in k or "partial" in k]
    assert len(read_manifest(url, storage_options=s3.options)) == len(plan)
    assert not Path("s3:").exists()  # nothing written to a local folder named after the URL

    version = _table(s3, url).version()
    again = run(plan, settings=remote_sandbox.settings)
    assert again.skipped == len(plan)
    assert s3.keys("nightly/") == keys  # a no-op: not one object rewritten
    assert _table(s3, url).version() == version

    # Another cut of the same window (other units, other ids): every invoice again, newer.
    overlapping = plan_export(
        remote_sandbox.org_ids, from_=FROM, to=FROM + WINDOW, partitions_per_org=3
    )
    assert not {u.unit_id for u in overlapping} & {u.unit_id for u in plan}
    second = run(overlapping, settings=remote_sandbox.settings)
    assert second.total == len(ids)
    table = _table(s3, url)
    assert table.version() > version
    after = table.to_pyarrow_table(columns=["org", "id", "_extracted_at"]).to_pylist()
    assert len(after) == len(ids)  # no row added: merged on the id
    newest = {(row["org"], row["id"]): row["_extracted_at"] for row in after}
    oldest = {(row["org"], row["id"]): row["_extracted_at"] for row in rows}
    assert all(newest[key] > oldest[key] for key in oldest)  # the newer copy won


def test_a_url_is_written_to_its_store_or_refused(
    remote_sandbox: RemoteSandbox, s3: S3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    hour = FROM + dt.timedelta(hours=7)  # the first seeded hour
    plan = plan_export(remote_sandbox.org_ids[:1], from_=hour, to=hour + dt.timedelta(hours=1))
    url = f"s3://{BUCKET}/plain"
    result = asyncio.run(
        run_units(
            plan,
            settings=remote_sandbox.settings,
            out_dir=url,
            format="parquet",
            storage_options=s3.options,
        )
    )
    assert result.total > 0
    assert set(s3.keys("plain/")) == {f"plain/{u.path}" for u in result.units} | {
        f"plain/_amili/manifest/{u.unit_id}.json" for u in result.units
    } | {f"plain/{SUCCESS}"}
    assert all(re.fullmatch(r"org=[^/]+/part-.*\.parquet", u.path) for u in result.units)
    assert list(tmp_path.iterdir()) == []  # no local `s3:` folder, no stage left here
    with pytest.raises(ImportError, match=r"gs:// URLs needs the fsspec driver"):
        asyncio.run(run_units(plan, settings=remote_sandbox.settings, out_dir="gs://b/x"))
    assert list(tmp_path.iterdir()) == []


def _readme_section() -> str:
    readme = (ROOT / "README.md").read_text()
    return readme[readme.index("### Nightly into a data lake") :]


def test_the_readme_nightly_command_writes_a_table_duckdb_polars_and_pandas_read(
    remote_sandbox: RemoteSandbox, s3: S3, tmp_path: Path
) -> None:
    section = _readme_section()
    command = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert command is not None
    assert code is not None
    (tmp_path / "orgs.txt").write_text("\n".join(remote_sandbox.org_ids) + "\n")
    env = {
        **remote_sandbox.env(),
        **s3.env(),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    for _ in range(2):  # the second night: nothing new, nothing doubled
        ran = subprocess.run(
            ["bash", "-euc", command.group(1)], cwd=tmp_path, env=env, capture_output=True,
            text=True, timeout=CLI_TIMEOUT, check=False,
        )  # fmt: skip
        assert ran.returncode == 0, ran.stderr
    read = subprocess.run(
        [sys.executable, "-c", code.group(1)], cwd=tmp_path, env=env, capture_output=True,
        text=True, timeout=CLI_TIMEOUT, check=False,
    )  # fmt: skip
    assert read.returncode == 0, read.stderr
    counts = [int(n) for n in re.findall(r"\d+", read.stdout)]
    expected = asyncio.run(_ids_per_org(remote_sandbox, FROM, FROM + dt.timedelta(days=1)))
    total = sum(map(len, expected.values()))
    assert counts == [total, total, total], read.stdout


def test_losing_the_scheduler_ends_in_one_line_and_exit_1(
    remote_sandbox: RemoteSandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The scheduler closes once the first unit is recorded: the CLI says how to go on."""
    import dask

    from amili_async._cli import main

    for name, value in remote_sandbox.env().items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "out"
    orgs = tmp_path / "orgs.txt"
    orgs.write_text("\n".join(remote_sandbox.org_ids) + "\n")
    with (
        dask.config.set({"distributed.comm.timeouts.connect": "5s"}),
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, protocol="tcp://",
            host="127.0.0.1", scheduler_port=0, dashboard_address="127.0.0.1:0",
            worker_dashboard_address=None,
        ) as local,
    ):  # fmt: skip

        def close_after_the_first_unit() -> None:
            while not list(out.glob("_amili/manifest/*.json")):  # a state, polled; no timer
                if closer_stop.is_set():
                    return
                closer_stop.wait(0.01)
            local.loop.add_callback(local.scheduler.close)

        import threading

        closer_stop = threading.Event()
        closer = threading.Thread(target=close_after_the_first_unit, daemon=True)
        closer.start()
        try:
            code = main(
                [
                    "export", "invoices", "--orgs-file", str(orgs), "--out-dir", str(out),
                    "--from", FROM.isoformat(), "--to", (FROM + dt.timedelta(days=2)).isoformat(),
                    "--partitions-per-org", "8", "--page-size", "100", "--no-progress",
                    "--dask-scheduler", local.scheduler_address,
                ]
            )  # fmt: skip
        finally:
            closer_stop.set()
            closer.join()
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err[-1] == "interrupted: run the same command again to resume"
    assert not [line for line in err if "Traceback" in line]
    assert not (out / SUCCESS).exists()


def test_a_url_the_installed_drivers_cannot_write_is_one_line_and_exit_1(
    remote_sandbox: RemoteSandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from amili_async._cli import main

    for name, value in remote_sandbox.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    orgs = tmp_path / "orgs.txt"
    orgs.write_text(remote_sandbox.org_ids[0] + "\n")
    code = main(
        [
            "export",
            "invoices",
            "--orgs-file",
            str(orgs),
            "--out",
            "gs://bucket/lake",
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err == [
        "amili-async: error: writing gs:// URLs needs the fsspec driver for gs: install its driver"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["orgs.txt"]  # no `gs:` folder
    with pytest.raises(SystemExit) as refused:
        main(["export", "invoices", "--org", "o1", "--out", "s3://bucket/x.jsonl"])
    assert refused.value.code == 2
    assert "--out URL: goes with --orgs-file" in capsys.readouterr().err
    for bad in ("0", "fast"):
        with pytest.raises(SystemExit) as refused:
            main(["export", "invoices", "--orgs-file", str(orgs), "--out-dir", ".",
                  "--rate-limit", bad])  # fmt: skip
        assert refused.value.code == 2
        assert "--rate-limit" in capsys.readouterr().err
