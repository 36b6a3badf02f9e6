"""Re-runs of the same rows never create or pay twice, however they are chunked or ordered.

What it proves, against the real sandbox (issue 20.1):
- `amili-async submit payments FILE` killed mid-run (a chunk paid but not reported), then run
  again with another `--chunk-size`, pays each row exactly once: every invoice's paid amount is
  the sum of its payments in the file, to the cent, and one settlement exists per row;
- a third run with one row edited pays that row alone (one new batch of one payment) and the
  report marks every other row `already_done`;
- `create_many` called twice with the same invoices shuffled and chunked in another way
  creates nothing the second time (no `uniqueSourceInvoiceId` to catch a duplicate: only the
  ledger can).
"""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path

import attrs
import pytest

from amili_async import AmiliClient, bulk, models
from amili_async.sandbox import SandboxConfig, SandboxServer

from ._payments import (
    payment_batches,
    payment_file,
    report_rows,
    rerun_sandbox_config,
    write_rows,
)
from .conftest import (
    cli_env,
    connect,
    kill,
    new_invoice,
    run_cli,
    sandbox_invoice_count,
    start_cli,
    wait_until,
)

INVOICES = 12
PAYMENTS = INVOICES * 10
FIRST_CHUNK = 20
SECOND_CHUNK = 7
THIRD_CHUNK = 13


@pytest.fixture
def amili_sandbox_config() -> SandboxConfig:
    return rerun_sandbox_config(seed=6)


async def _paid(client: AmiliClient, org: str, invoice_ids: list[str]) -> dict[str, Decimal]:
    return {i: (await client.invoices.get(org, i)).paid_amount or Decimal(0) for i in invoice_ids}


async def test_a_rerun_with_another_chunk_size_or_an_edited_row_pays_nothing_twice(
    amili_sandbox: SandboxServer, tmp_path: Path
) -> None:
    org = amili_sandbox.default_org_id
    async with connect(amili_sandbox) as client:
        # Small payments; the last row repeats the first: both are paid, each once.
        file = await payment_file(
            client,
            org,
            tmp_path,
            invoices=INVOICES,
            payments=PAYMENTS,
            amount="5000.00",
            seed=20,
            repeat_first=True,
        )
        invoice_ids, rows, report, args = file.invoice_ids, file.rows, file.report, file.args
        env = cli_env(amili_sandbox)

        # Run 1, killed once a chunk is paid but not yet in the report.
        proc = await start_cli(*args(FIRST_CHUNK), env=env)
        try:
            reached = await wait_until(
                lambda: (
                    payment_batches(amili_sandbox, org)
                    > max(1, len(report_rows(report)) // FIRST_CHUNK)
                ),
                proc=proc,
            )
        finally:
            status = await kill(proc)
        assert reached, f"the submit ended (exit {status}) before it was killed"
        assert len(report_rows(report)) < PAYMENTS

        # Run 2, chunked in another way: every row paid once, whatever the first run did.
        second = await run_cli(*args(SECOND_CHUNK), env=env)
        assert second.code == 0, second.stderr
        assert f"{PAYMENTS} succeeded, 0 failed, 0 unknown" in second.stdout
        final = report_rows(report)
        assert [r["status"] for r in final] == ["succeeded"] * PAYMENTS
        done_before = [r["row"] for r in final if r["already_done"] == "yes"]
        assert done_before  # the first run's rows (reported or not) were not sent again
        assert f"{len(done_before)} rows had been created by an earlier run" in second.stderr
        assert await _paid(client, org, invoice_ids) == file.expected_paid()
        settlements = await client.settlements.list(org, page_size=1000).collect()
        assert len(settlements) == PAYMENTS
        batches_before = payment_batches(amili_sandbox, org)

        # Run 3, one row edited and chunked a third way: that row alone is paid.
        edited = [dict(row) for row in rows]
        edited[41]["amount"] = "12.34"
        write_rows(file.source, edited)
        third = await run_cli(*args(THIRD_CHUNK), env=env)
        assert third.code == 0, third.stderr
        final = report_rows(report)
        assert [r["row"] for r in final if r["already_done"] != "yes"] == ["42"]
        assert payment_batches(amili_sandbox, org) == batches_before + 1
        # The edited row is a new payment; its old version had been paid and stays paid.
        paid = file.expected_paid()
        paid[edited[41]["invoiceId"]] += Decimal("12.34")
        assert await _paid(client, org, invoice_ids) == paid
        settlements = await client.settlements.list(org, page_size=1000).collect()
        assert len(settlements) == PAYMENTS + 1


async def test_create_many_twice_with_shuffled_items_creates_nothing_twice(
    amili_sandbox: SandboxServer, tmp_path: Path
) -> None:
    org = amili_sandbox.default_org_id
    # No uniqueSourceInvoiceId: the server would accept the same invoice twice.
    invoices = [attrs.evolve(new_invoice(k), unique_source_invoice_id=None) for k in range(60)]
    before = sandbox_invoice_count(amili_sandbox)
    path = tmp_path / "invoices.ledger.jsonl"
    async with connect(amili_sandbox) as client:
        first = [
            r
            async for r in client.invoices.create_many(
                org, invoices, chunk_size=25, poll_interval=0.01, ledger=bulk.Ledger(path)
            )
        ]
        assert all(r.ok and not r.already_done for r in first)
        assert sandbox_invoice_count(amili_sandbox) == before + 60
        ids = {r.item.invoice_number: r.succeeded.invoice_id for r in first if r.succeeded}

        shuffled = invoices[:]
        random.Random(3).shuffle(shuffled)
        as_dicts = [  # the same invoices as wire dicts: one key for a dict and its model
            {k: v for k, v in models_wire(invoice).items() if v is not None} for invoice in shuffled
        ]
        again = [
            r
            async for r in client.invoices.create_many(
                org, as_dicts, chunk_size=9, poll_interval=0.01, ledger=bulk.Ledger(path)
            )
        ]
    assert sandbox_invoice_count(amili_sandbox) == before + 60  # nothing created twice
    assert all(r.ok and r.already_done for r in again)
    assert [r.item.invoice_number for r in again] == [i.invoice_number for i in shuffled]
    assert all(r.succeeded and r.succeeded.invoice_id == ids[r.item.invoice_number] for r in again)


def models_wire(invoice: models.NewInvoice) -> dict[str, object]:
    from amili_async import wire

    data: dict[str, object] = wire.to_wire(invoice)
    return data
