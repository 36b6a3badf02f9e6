"""`amili-async demo`: the main job end to end on the embedded sandbox, no credentials needed.

Starts the sandbox in-process with seeded invoices, submits a small CSV of new invoices (two of
them deliberately wrong, to show per-row failures), registers a payment, waits for the batches,
then exports every invoice of the organization to `demo-out/invoices.jsonl` and checks the
export against the sandbox's own count.
"""

from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal
from pathlib import Path

from .. import models
from .._client import AmiliClient
from ._export import ExportOptions, export
from ._submit import submit

DEMO_INVOICES = 20_000
"""Seeded invoices: a real bulk export (20 pages of 1,000) that still runs in seconds."""
EXPORT_PAGE_SIZE = 1000
"""The API's inferred maximum page size: fewest round trips for a bulk export."""
REFUSED_ON_PURPOSE = {
    19: "it repeats row 1's uniqueSourceInvoiceId",
    20: "it is due before it was issued",
}
"""The CSV's rows that are wrong on purpose (see `_write_new_invoices`), and why."""


def _write_new_invoices(path: Path) -> int:
    """A CSV of new invoices in the wire shape; row 19 duplicates row 1, row 20 is invalid."""
    today = dt.date.today()
    rows = []
    for i in range(18):
        rows.append(
            {
                "type": "NOTICE",
                "invoiceNumber": f"DEMO-{i + 1:04d}",
                "originalInvoiceAmount": f"{1000 + i * 137.35:.2f}",
                "currency": "NOK",
                "invoiceDate": f"{today - dt.timedelta(days=45)}T00:00:00Z",
                "dueDate": f"{today - dt.timedelta(days=15)}T00:00:00Z",
                "uniqueSourceInvoiceId": f"demo-erp-{i + 1:04d}",
                "description": "Consulting services",
                "debtors.0.type": "PRIVATE",
                "debtors.0.firstname": "Kari",
                "debtors.0.lastname": f"Nordmann {i + 1}",
                "debtors.0.addresses.0.street": "Storgata 1",
                "debtors.0.addresses.0.city": "Oslo",
                "debtors.0.addresses.0.zipCode": "0155",
                "debtors.0.addresses.0.countryCode": "NO",
            }
        )
    rows.append({**rows[0], "invoiceNumber": "DEMO-0019"})  # same uniqueSourceInvoiceId
    rows.append(  # due before it was issued
        {
            **rows[1],
            "invoiceNumber": "DEMO-0020",
            "uniqueSourceInvoiceId": "demo-erp-0020",
            "dueDate": f"{today - dt.timedelta(days=60)}T00:00:00Z",
        }
    )
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def _money(amount: Decimal | None) -> str:
    return "?" if amount is None else f"{amount:,.2f}"


async def run_demo(out_dir: Path, *, invoices: int = DEMO_INVOICES) -> None:
    from ..sandbox import SandboxConfig, SandboxServer

    out_dir.mkdir(parents=True, exist_ok=True)
    async with SandboxServer(SandboxConfig(invoices=invoices)) as server:
        org = server.default_org_id
        print(f"1. sandbox running at {server.base_url} with {invoices:,} seeded invoices")
        async with AmiliClient(
            client_id=server.client_id,
            client_secret=server.client_secret,
            base_url=server.base_url,
            token_url=server.token_url,
        ) as client:
            source = out_dir / "new-invoices.csv"
            rows = _write_new_invoices(source)
            print(f"2. submitting {rows} new invoices from {source}")
            result = await submit(
                client, "invoices", org, source, report=out_dir / "new-invoices.report.csv"
            )
            print(
                f"   {result.ok} created, {result.failed} refused; per-row report: {result.report}"
            )
            print(
                f"   rows {' and '.join(map(str, REFUSED_ON_PURPOSE))} are wrong on purpose, to "
                "show how refused rows are reported (the others are still created):"
            )
            with result.report.open(newline="", encoding="utf-8") as stream:
                refused = {
                    int(row["row"]): row["reason"]
                    for row in csv.DictReader(stream)
                    if row["status"] != "succeeded"
                }
            for number, reason in refused.items():
                why = REFUSED_ON_PURPOSE.get(number, "NOT EXPECTED")
                print(f"   row {number} ({why}): {reason}")
            if refused.keys() != REFUSED_ON_PURPOSE.keys():
                raise SystemExit(1)

            created = client.invoices.list(org, unique_source_invoice_id="demo-erp-0001")
            invoice = (await created.collect(limit=1))[0]
            payment = models.NewPayment(
                invoice_id=invoice.id,
                type=models.PaymentType.DIRECT_PAYMENT,
                amount=Decimal("250.10"),
                currency="NOK",
            )
            reference = await client.payments.create(org, [payment])
            batch = await client.batches.wait(org, reference.batch_id)
            paid = await client.invoices.get(org, invoice.id)
            print(
                f"3. payment of NOK 250.10 on {paid.invoice_number}: batch {batch.status}, "
                f"remaining {_money(invoice.remaining_amount)} -> {_money(paid.remaining_amount)}"
            )

            out = out_dir / "invoices.jsonl"
            print(f"4. exporting every invoice of organization {org} to {out}")
            summary = await export(
                client,
                ExportOptions("invoices", org, out, page_size=EXPORT_PAGE_SIZE, force=True),
            )
            rate = summary.count / summary.seconds if summary.seconds else 0.0
            expected = invoices + result.ok
            check = "matches" if summary.count == expected else f"DOES NOT MATCH {expected:,}"
            print(
                f"   exported {summary.count:,} invoices in {summary.seconds:.1f} s "
                f"({rate:,.0f}/s); count {check} the sandbox's"
            )
            if summary.count != expected:
                raise SystemExit(1)
    print(f"done: outputs in {out_dir}/")
