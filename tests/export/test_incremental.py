"""Incremental nightly runs into a Delta table: the state beside the table, the look-back that
re-lists recent invoices so a status changed since the last run is not left stale."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from amili_async import AmiliClient, models
from amili_async.export import plan_incremental, run_units, save_state
from amili_async.export._incremental import STATE
from amili_async.sandbox import SandboxConfig, SandboxServer, make_orgs

from .conftest import FROM

deltalake = pytest.importorskip("deltalake")

SEEDED = FROM + dt.timedelta(hours=7)
"""The sandbox seeds createdAt from 07:00 of FROM's day, one invoice every 30 s."""


@pytest.fixture
async def server() -> AsyncIterator[SandboxServer]:
    config = SandboxConfig(orgs=make_orgs(1), seeded_orgs=1, invoices=600)
    async with SandboxServer(config) as running:
        yield running


async def test_the_next_night_lists_new_invoices_and_refreshes_changed_ones(
    server: SandboxServer, tmp_path: Path
) -> None:
    out = tmp_path / "lake"
    out.mkdir()
    org = next(iter(server.state.orgs))
    first_night, second_night = SEEDED + dt.timedelta(hours=2), SEEDED + dt.timedelta(hours=6)
    async with AmiliClient(
        client_id=server.client_id,
        client_secret=server.client_secret,
        base_url=server.base_url,
        token_url=server.token_url,
    ) as client:
        night1 = plan_incremental(out, [org], now=first_night, start=FROM)
        assert [(u.from_, u.to) for u in night1] == [(FROM, first_night)]
        await run_units(night1, client=client, out_dir=out, format="delta")
        save_state(out, night1)
        state = orjson.loads((out / STATE).read_bytes())
        assert state["orgs"] == {org: {"to": "2024-01-02T09:00:00Z"}}

        # After the first night: one of its open invoices is paid up (CLOSED).
        listed = client.invoices.list(org, from_=FROM, to=first_night, status="OPEN")
        invoice = (await listed.collect(limit=1))[0]
        assert invoice.remaining_amount is not None
        payment = models.NewPayment(
            invoice_id=invoice.id,
            type=models.PaymentType.DIRECT_PAYMENT,
            amount=invoice.remaining_amount,
            currency=invoice.currency or "NOK",
            payment_date=dt.date(2024, 1, 3),
            reference="closing",
        )
        reference = await client.payments.create(org, [payment])
        await client.batches.wait(org, reference.batch_id, poll_interval=0.01)

        night2 = plan_incremental(out, [org], now=second_night, lookback=dt.timedelta(hours=3))
        assert [(u.from_, u.to) for u in night2] == [
            (first_night - dt.timedelta(hours=3), second_night)
        ]
        await run_units(night2, client=client, out_dir=out, format="delta")
        save_state(out, night2)
        expected = {i.id async for i in client.invoices.list(org, from_=FROM, to=second_night)}

    rows = deltalake.DeltaTable(str(out)).to_pyarrow_table(columns=["id", "status"]).to_pylist()
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids))  # the look-back re-listed, the merge did not double
    assert set(ids) == expected
    assert {row["id"]: row["status"] for row in rows}[invoice.id] == "CLOSED"  # not stale
    state = orjson.loads((out / STATE).read_bytes())
    assert state["orgs"] == {org: {"to": "2024-01-02T13:00:00Z"}}
    with pytest.raises(ValueError, match="never exported here: pass --from"):
        plan_incremental(out, [org, "another-org"], now=second_night)
