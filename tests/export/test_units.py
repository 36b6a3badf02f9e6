"""Units in one process against an in-process sandbox: planning, resuming, idempotence."""

from __future__ import annotations

import datetime as dt
import fcntl
import itertools
import json
import os
import pickle
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import pytest

from amili_async import AmiliClient
from amili_async.export import (
    PARTIAL_DIR,
    ClientSettings,
    ExportFailedError,
    ExportUnit,
    _unit,
    plan_export,
    read_manifest,
    run_unit,
    run_units,
)
from amili_async.sandbox import SandboxConfig, SandboxServer, make_orgs

from .conftest import FROM, TO, read_jsonl

PAGE = 100
"""A small page so a unit of a few hundred invoices spans several pages."""


@pytest.fixture
async def server() -> AsyncIterator[SandboxServer]:
    config = SandboxConfig(orgs=make_orgs(3), seeded_orgs=3, invoices=600)
    async with SandboxServer(config) as running:
        yield running


class Requests:
    """An `on_request` hook counting listing requests (and failing at one, if asked)."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.count = 0
        self.fail_at = fail_at

    def __call__(self, info: object) -> None:
        self.count += 1
        if self.count == self.fail_at:
            raise ConnectionAbortedError("injected: the process dies here")


def _client(server: SandboxServer, hook: Requests | None = None) -> AmiliClient:
    return AmiliClient(
        client_id=server.client_id,
        client_secret=server.client_secret,
        base_url=server.base_url,
        token_url=server.token_url,
        on_request=hook,
    )


def test_plan_is_stable_picklable_and_json_serialisable() -> None:
    orgs = ["org-a", "org-b", "org-a"]
    units = plan_export(orgs, from_=FROM, to=TO, partitions_per_org=4, filters={"status": "OPEN"})
    assert len(units) == 8  # a repeated organisation is planned once
    assert units == plan_export(orgs[:2], from_=FROM, to=TO, partitions_per_org=4,
                                filters={"status": "OPEN"})  # fmt: skip
    assert len({u.unit_id for u in units}) == 8
    assert pickle.loads(pickle.dumps(units)) == units
    assert [ExportUnit.from_dict(json.loads(json.dumps(u.to_dict()))) for u in units] == units
    windows = [(u.from_, u.to) for u in units if u.org_id == "org-a"]
    assert windows[0][0] == FROM
    assert windows[-1][1] == TO
    assert all(a[1] == b[0] for a, b in itertools.pairwise(windows))  # adjacent
    # The id is what the unit exports: naive times are UTC, another filter is another unit.
    naive = plan_export(["org-a"], from_=FROM.replace(tzinfo=None), to=TO.replace(tzinfo=None))
    assert naive == plan_export(["org-a"], from_=FROM, to=TO)
    assert naive[0].unit_id != plan_export(["org-a"], from_=FROM, to=TO, filters={"type": "X"})[0]


def test_plan_refuses_what_it_cannot_plan() -> None:
    with pytest.raises(ValueError, match="needs a window"):
        plan_export(["a"], partitions_per_org=2)
    with pytest.raises(ValueError, match="unknown filter"):
        plan_export(["a"], filters={"colour": "red"})
    with pytest.raises(ValueError, match="not an organisation id"):
        plan_export(["../etc"])
    with pytest.raises(ValueError, match="resource"):
        plan_export(["a"], resource="payments")
    tampered = plan_export(["a"])[0].to_dict() | {"org_id": "b"}
    with pytest.raises(ValueError, match="does not match"):
        ExportUnit.from_dict(tampered)


def test_settings_keep_secrets_out_of_their_repr() -> None:
    settings = ClientSettings(client_id="me", client_secret="s3cr3t", token="t0k3n",
                              options={"on_request": print})  # fmt: skip
    assert "s3cr3t" not in repr(settings)
    assert "t0k3n" not in repr(settings)
    assert "on_request" in repr(settings)


async def test_sandbox_seeds_each_organisation_with_its_own_invoices(
    server: SandboxServer,
) -> None:
    orgs = server.state.orgs
    assert [state.invoice_count for state in orgs.values()] == [600, 600, 600]
    seeded = [state.seeded for state in orgs.values()]
    ids = {s.invoice_id(i) for s in seeded if s for i in range(s.n)}
    cases = {s.record(i).case_number for s in seeded if s for i in range(0, s.n, 7)}
    assert len(ids) == 1800
    assert len(cases) == 3 * len(range(0, 600, 7))
    async with _client(server) as client:
        for org_id in orgs:
            listed = await client.invoices.list(org_id).collect()
            assert {i.organization.id for i in listed if i.organization} == {org_id}


async def test_an_interrupted_unit_resumes_from_its_checkpoint(
    server: SandboxServer, tmp_path: Path
) -> None:
    (unit,) = plan_export([server.default_org_id])
    dying = Requests(fail_at=4)  # three pages staged, then the "crash"
    async with _client(server, dying) as client:
        with pytest.raises(ConnectionAbortedError):
            await run_unit(unit, out_dir=tmp_path, client=client, page_size=PAGE)
    assert not list(tmp_path.glob("org=*/*.jsonl"))  # noqa: ASYNC240 - nothing published
    assert read_manifest(tmp_path) == []
    partial = tmp_path / PARTIAL_DIR / f"{unit.unit_id}.jsonl.part"
    with partial.open("ab") as torn:
        torn.write(b'{"id": "half a ro')  # a page written only in part when it died
    counted = Requests()
    async with _client(server, counted) as client:
        result = await run_unit(unit, out_dir=tmp_path, client=client, page_size=PAGE)
    assert counted.count == 600 // PAGE - 3  # only the pages not staged before
    rows = read_jsonl(tmp_path / result.path)
    assert len(rows) == len({r["id"] for r in rows}) == result.rows == 600
    assert [p.name for p in (tmp_path / PARTIAL_DIR).iterdir()] == []


async def test_a_finished_unit_is_a_no_op_even_when_its_record_was_lost(
    server: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    units = plan_export([server.default_org_id], from_=FROM, to=TO, partitions_per_org=2)
    recorded = _unit.write_record

    def dies_before_the_first_record(out: Path, unit: ExportUnit, result: object) -> None:
        if unit == units[0]:
            raise ConnectionAbortedError("injected: killed after publishing, before recording")
        recorded(out, unit, result)  # type: ignore[arg-type]

    monkeypatch.setattr(_unit, "write_record", dies_before_the_first_record)
    async with _client(server) as client:
        with pytest.raises(ExportFailedError):
            await run_units(units, client=client, out_dir=tmp_path, page_size=PAGE)
    assert (tmp_path / units[0].file_stem()).with_suffix(".jsonl").exists()  # published
    monkeypatch.setattr(_unit, "write_record", recorded)
    async with _client(server) as client:
        first = await run_units(units, client=client, out_dir=tmp_path, page_size=PAGE)
    assert first.total == 600
    assert first.skipped == 2
    counted = Requests()
    async with _client(server, counted) as client:
        again = await run_units(units, client=client, out_dir=tmp_path, page_size=PAGE)
    assert counted.count == 0
    assert again.skipped == 2
    assert [(u.path, u.sha256, u.rows) for u in again.units] == [
        (u.path, u.sha256, u.rows) for u in first.units
    ]
    assert read_manifest(tmp_path) == sorted(
        (attrs.evolve(u, skipped=False) for u in first.units), key=lambda u: u.unit_id
    )
    with pytest.raises(ValueError, match="holds a jsonl export"):
        await run_unit(units[0], out_dir=tmp_path, client=client, format="parquet")


async def test_a_failing_unit_does_not_stop_the_others(
    server: SandboxServer, tmp_path: Path
) -> None:
    good = plan_export([server.default_org_id])
    missing = plan_export(["3fa85f64-0000-4000-8000-000000000000"])  # no such organisation
    async with _client(server) as client:
        with pytest.raises(ExportFailedError) as caught:
            await run_units([*missing, *good], client=client, out_dir=tmp_path)
    assert list(caught.value.failures) == [missing[0].unit_id]
    assert [u.unit_id for u in caught.value.result.units] == [good[0].unit_id]
    assert caught.value.result.total == 600


def test_parquet_schema_is_exact_and_nested() -> None:
    pa = pytest.importorskip("pyarrow")
    from amili_async import models
    from amili_async.export._parquet import arrow_schema

    schema = arrow_schema(models.Invoice)
    assert schema.field("originalInvoiceAmount").type == pa.decimal128(18, 4)
    assert schema.field("createdAt").type == pa.timestamp("us", tz="UTC")
    claims = schema.field("claims").type
    assert pa.types.is_list(claims)
    assert claims.value_type.field("paidAmount").type == pa.decimal128(18, 4)
    debtor = schema.field("debtors").type.value_type
    assert debtor.field("dateOfBirth").type == pa.date32()
    assert pa.types.is_list(debtor.field("addresses").type)
    assert not any(pa.types.is_floating(f.type) for f in schema)


async def test_parquet_refuses_an_amount_it_cannot_hold_exactly(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    from amili_async import models
    from amili_async.export._parquet import write_parquet

    line = b'{"id": "x", "originalInvoiceAmount": 1.00001}'
    with pytest.raises(Exception, match="data loss"):
        write_parquet([line], models.Invoice, tmp_path / "x.parquet")


def test_unit_windows_are_utc() -> None:
    (unit,) = plan_export(
        ["a"], from_=dt.datetime(2024, 1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1))), to=TO
    )
    assert unit.to_dict()["from"] == "2024-01-01T00:00:00Z"


async def test_a_done_units_leftover_stage_is_removed_when_it_runs_again(
    server: SandboxServer, tmp_path: Path
) -> None:
    """A runner that died between publishing and cleaning up left a checkpoint and a lock:
    the next run of the unit finds it done and removes them (not while a runner holds it)."""
    (unit,) = plan_export([next(iter(server.state.orgs))])
    async with _client(server) as client:
        first = await run_unit(unit, out_dir=tmp_path, client=client, page_size=PAGE)
        partial = tmp_path / PARTIAL_DIR
        leftovers = [partial / f"{unit.unit_id}.checkpoint.json", partial / f"{unit.unit_id}.lock"]
        for path in leftovers:
            path.write_bytes(b"{}")
        held = os.open(leftovers[1], os.O_RDWR)
        fcntl.flock(held, fcntl.LOCK_EX)  # another runner holds the unit: left alone
        again = await run_unit(unit, out_dir=tmp_path, client=client, page_size=PAGE)
        assert all(path.exists() for path in leftovers)
        os.close(held)
        again = await run_unit(unit, out_dir=tmp_path, client=client, page_size=PAGE)
    assert again.skipped
    assert (again.path, again.rows, again.sha256) == (first.path, first.rows, first.sha256)
    assert not any(path.exists() for path in leftovers)


async def test_every_parquet_row_carries_when_its_unit_was_listed(
    server: SandboxServer, tmp_path: Path
) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    units = plan_export([server.default_org_id], from_=FROM, to=TO, partitions_per_org=2)
    async with _client(server) as client:
        result = await run_units(
            units, client=client, out_dir=tmp_path, page_size=PAGE, format="parquet"
        )
    written = [unit for unit in result.units if unit.rows]  # an empty unit writes no file
    assert sum(unit.rows for unit in written) == result.total == 600
    for unit in written:
        table = pq.read_table(tmp_path / unit.path)
        assert unit.extracted_at is not None
        listed = dt.datetime.fromisoformat(unit.extracted_at)
        assert set(table.column("_extracted_at").to_pylist()) == {listed}
        assert table.num_rows == unit.rows
