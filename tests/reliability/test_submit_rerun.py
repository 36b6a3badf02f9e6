"""An interrupted `amili-async submit payments FILE`, run again, pays nothing twice.

What it proves: the CLI is SIGKILLed twice in the middle of submitting 240 payments (each time
while a chunk it has already paid is not yet in its report), and run again on the same file
each time. Because every chunk's idempotency key is derived from the file's content, the
re-runs replay the chunks already paid instead of paying them again: afterwards each
invoice's paid amount is exactly (Decimal, to the cent) the sum of its payments in the file,
the sandbox holds one payment batch per chunk, and the report says "succeeded" for every row.
The report of each interrupted run is a true partial report: every row it has is confirmed by
the batch it names (same idempotency key, same invoice, same position), and the final run
reports the same batch for it.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from amili_async import AmiliClient, models
from amili_async.sandbox import SandboxConfig, SandboxServer

from ._payments import payment_batches, payment_file, report_rows, rerun_sandbox_config
from .conftest import cli_env, connect, kill, run_cli, start_cli, wait_until

INVOICES = 24
PAYMENTS_PER_INVOICE = 10
PAYMENTS = INVOICES * PAYMENTS_PER_INVOICE
CHUNK = 20
CHUNKS = PAYMENTS // CHUNK


@pytest.fixture
def amili_sandbox_config() -> SandboxConfig:
    return rerun_sandbox_config(seed=5)


async def _payment_batches(client: AmiliClient, org: str) -> list[models.Batch]:
    return await client.batches.list(org, type="PAYMENT", page_size=1000).collect()


def _caught_in_between(sandbox: SandboxServer, org: str, report: Path, chunks: int) -> bool:
    """At least `chunks` chunks reported, and more chunks paid in the sandbox than reported."""
    reported = len(report_rows(report)) // CHUNK
    paid = payment_batches(sandbox, org)
    return reported >= chunks and paid > reported


async def _check_rows_are_true(
    client: AmiliClient, org: str, rows: list[dict[str, str]], payments: list[dict[str, str]]
) -> None:
    """Every row of a (partial) report is confirmed by the batch it names."""
    assert [int(r["row"]) for r in rows] == list(range(1, len(rows) + 1))
    batches: dict[str, models.Batch] = {}
    for row in rows:
        assert row["status"] == "succeeded", row
        batch = batches.get(row["batch_id"])
        if batch is None:
            batch = batches[row["batch_id"]] = await client.batches.get(org, row["batch_id"])
        assert batch.status == models.BatchStatus.SUCCESS
        assert batch.idempotency_key == row["idempotency_key"]
        offset = (int(row["row"]) - 1) % CHUNK
        (entry,) = [e for e in batch.succeeded or [] if e.index == offset]
        assert entry.invoice_id == row["invoice_id"] == payments[int(row["row"]) - 1]["invoiceId"]


async def test_rerunning_an_interrupted_submit_pays_nothing_twice(
    amili_sandbox: SandboxServer, tmp_path: Path
) -> None:
    org = amili_sandbox.default_org_id
    async with connect(amili_sandbox) as client:
        file = await payment_file(
            client, org, tmp_path, invoices=INVOICES, payments=PAYMENTS, amount="1000.00", seed=8
        )
        payments, report, args = file.rows, file.report, file.args
        env = cli_env(amili_sandbox)

        partial_reports: list[list[dict[str, str]]] = []
        for reported_chunks in (2, 6):  # kill once 2, then once 6 chunks are in the report
            proc = await start_cli(*args(CHUNK), env=env)
            try:
                # Killed only once a chunk is paid (its batch exists) but not yet reported.
                reached = await wait_until(
                    lambda n=reported_chunks: _caught_in_between(amili_sandbox, org, report, n),
                    proc=proc,
                )
            finally:
                status = await kill(proc)
            assert reached, f"the submit ended (exit {status}) before it was killed"
            assert status == -9
            rows = report_rows(report)
            paid_chunks = len(await _payment_batches(client, org))
            assert len(rows) < PAYMENTS
            # The kill caught a chunk paid but not reported: the re-run must not pay it again.
            assert paid_chunks > len(rows) // CHUNK, (paid_chunks, len(rows))
            await _check_rows_are_true(client, org, rows, payments)
            partial_reports.append(rows)

        run = await run_cli(*args(CHUNK), env=env)

        assert run.code == 0, run.stderr
        assert f"{PAYMENTS} succeeded, 0 failed, 0 unknown" in run.stdout
        final = report_rows(report)
        assert len(final) == PAYMENTS
        await _check_rows_are_true(client, org, final, payments)
        for partial in partial_reports:
            for row in partial:  # the re-run found the very batch the interrupted run made
                again = final[int(row["row"]) - 1]
                assert (again["batch_id"], again["idempotency_key"]) == (
                    row["batch_id"],
                    row["idempotency_key"],
                )
        assert len(await _payment_batches(client, org)) == CHUNKS  # one batch per chunk, ever

        expected = file.expected_paid()
        for invoice_id, paid in expected.items():
            invoice = await client.invoices.get(org, invoice_id)
            assert invoice.paid_amount == paid  # to the cent, not once more
            assert invoice.remaining_amount == Decimal("1000.00") - paid
        settlements = await client.settlements.list(org, page_size=1000).collect()
        assert len(settlements) == PAYMENTS
        assert sum((s.amount or Decimal(0) for s in settlements), Decimal(0)) == sum(
            expected.values()
        )
