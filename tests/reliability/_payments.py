"""The set-up both re-run tests share: invoices created through the SDK, a CSV of payments on
them, the `submit payments` command line, and reading the report being written."""

from __future__ import annotations

import csv
import io
import random
from decimal import Decimal
from pathlib import Path

import attrs

from amili_async import AmiliClient
from amili_async.sandbox import SandboxConfig, SandboxServer

from .conftest import new_invoice


def rerun_sandbox_config(seed: int) -> SandboxConfig:
    """A small sandbox whose batches stay QUEUED a moment, so a chunk is paid well before its
    rows are reported (what a kill must catch)."""
    return SandboxConfig(invoices=10, seed=seed, batch_delay=0.05)


@attrs.frozen
class PaymentFile:
    """Invoices created for the test and a CSV of payments on them, with its report path."""

    org: str
    invoice_ids: list[str]
    rows: list[dict[str, str]]
    source: Path
    report: Path

    def args(self, chunk: int) -> tuple[str | Path, ...]:
        """`amili-async submit payments` of this file, `chunk` rows per batch."""
        return ("submit", "payments", self.source, "--org", self.org, "--chunk-size", str(chunk),
                "--concurrency", "2", "--no-progress")  # fmt: skip

    def expected_paid(self, rows: list[dict[str, str]] | None = None) -> dict[str, Decimal]:
        """Each invoice's paid amount once every row of `rows` (the file's) is paid once."""
        expected = dict.fromkeys(self.invoice_ids, Decimal(0))
        for row in self.rows if rows is None else rows:
            expected[row["invoiceId"]] += Decimal(row["amount"])
        return expected


async def payment_file(
    client: AmiliClient,
    org: str,
    tmp_path: Path,
    *,
    invoices: int,
    payments: int,
    amount: str,
    seed: int,
    repeat_first: bool = False,
) -> PaymentFile:
    """Create `invoices` invoices of `amount` each, then write `payments` payments on them
    (round robin, 0.01 to 99.99 each: less than an invoice in total, so a payment made twice
    shows in the paid amount instead of being refused); `repeat_first` makes the last row a
    copy of the first (two identical rows: both are to be paid, each once)."""
    drafts = [new_invoice(k, amount=amount) for k in range(invoices)]
    created = [r async for r in client.invoices.create_many(org, drafts, poll_interval=0.01)]
    invoice_ids = [r.succeeded.invoice_id for r in created if r.succeeded]
    assert len(invoice_ids) == invoices
    rng = random.Random(seed)
    rows = [
        {
            "invoiceId": invoice_ids[k % invoices],
            "type": "DIRECT_PAYMENT",
            "amount": str(Decimal(rng.randint(1, 9999)) / 100),
            "currency": "NOK",
            "reference": f"pay-{k:04d}",
        }
        for k in range(payments - repeat_first)
    ]
    if repeat_first:
        rows.append(dict(rows[0]))
    source = tmp_path / "payments.csv"
    write_rows(source, rows)
    return PaymentFile(org, invoice_ids, rows, source, tmp_path / "payments.report.csv")


def write_rows(path: Path, rows: list[dict[str, str]]) -> None:
    """`rows` as a CSV file with a header."""
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def report_rows(path: Path) -> list[dict[str, str]]:
    """The complete lines of a report (being) written."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return list(csv.DictReader(io.StringIO(text[: text.rfind("\n") + 1])))


def payment_batches(sandbox: SandboxServer, org: str) -> int:
    """How many payment batches the sandbox holds for `org` (QUEUED or done)."""
    return sum(
        b.type == "PAYMENT" and b.org_id == org for b in sandbox.state.batches_by_id.values()
    )
