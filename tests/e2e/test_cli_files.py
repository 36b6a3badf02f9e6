"""`amili-async submit` reads the files people have: Excel's CSVs and JSON Lines (issue 25).

Excel writes a UTF-8 byte order mark ("CSV UTF-8"), `;` as the separator where the decimal
separator is a comma (Norway), and Windows-1252 for plain "CSV"; each is read (the encoding by
`--encoding`) and a file that is not what it is read as is refused with one line naming the
file, the byte offset and the flag. Every run is the real CLI against a live sandbox.
"""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from amili_async import AmiliClient
from amili_async._cli import _submit
from amili_async.sandbox import SandboxConfig, SandboxServer

from .conftest import assert_one_line_error, sandbox_invoice_count
from .test_cli import SEEDED, _row, base_env, cli, read_report, write_csv


@pytest.fixture
def amili_sandbox_config() -> SandboxConfig:
    return SandboxConfig(invoices=SEEDED, seed=11, batch_delay=0.01)


@pytest.fixture
def env(amili_sandbox: SandboxServer) -> dict[str, str]:
    return base_env(
        AMILI_BASE_URL=amili_sandbox.base_url,
        AMILI_CLIENT_ID=amili_sandbox.client_id,
        AMILI_CLIENT_SECRET=amili_sandbox.client_secret,
    )


def excel_csv(path: Path, rows: list[dict[str, str]], *, delimiter: str, encoding: str) -> Path:
    """`rows` as Excel saves them: its separator, its encoding (`utf-8-sig`: with a BOM)."""
    with path.open("w", newline="", encoding=encoding) as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


NORWEGIAN = "Ærlig Østby-Åsen"
"""A last name with the letters a Windows-1252 file stores in one byte each."""


@pytest.mark.parametrize(
    ("delimiter", "encoding", "flags"),
    [
        (",", "utf-8-sig", ()),  # "CSV UTF-8": a byte order mark before `type`
        (";", "utf-8-sig", ()),  # the Norwegian Excel default separator, sniffed
        ("\t", "utf-8", ()),  # "Unicode text"-like, tab separated
        (";", "cp1252", ("--encoding", "cp1252")),  # plain "CSV" on Windows
        (";", "latin-1", ("--encoding", "latin-1")),
        ("|", "utf-8", ("--delimiter", "|")),  # not sniffed: named
    ],
)
async def test_excel_csvs_are_read(
    amili_client: AmiliClient,
    env: dict[str, str],
    amili_sandbox: SandboxServer,
    tmp_path: Path,
    delimiter: str,
    encoding: str,
    flags: tuple[str, ...],
) -> None:
    org = amili_sandbox.default_org_id
    rows = [_row(n, **{"debtors.0.lastname": NORWEGIAN}) for n in (1, 2)]
    source = excel_csv(tmp_path / "excel.csv", rows, delimiter=delimiter, encoding=encoding)

    run = await cli("submit", "invoices", source, "--org", org, *flags, env=env)

    assert run.code == 0, run.stderr
    report = read_report(tmp_path / "excel.report.csv")
    assert [r["status"] for r in report] == ["succeeded", "succeeded"]
    invoice = await amili_client.invoices.get(org, report[0]["invoice_id"])
    assert invoice.debtors is not None
    assert invoice.debtors[0].lastname == NORWEGIAN
    assert sandbox_invoice_count(amili_sandbox) == SEEDED + 2


async def test_bytes_that_are_not_utf8_are_refused_naming_offset_and_flag(
    env: dict[str, str], amili_sandbox: SandboxServer, tmp_path: Path
) -> None:
    org = amili_sandbox.default_org_id
    rows = [_row(1), _row(2, **{"debtors.0.lastname": NORWEGIAN})]
    source = excel_csv(tmp_path / "ansi.csv", rows, delimiter=";", encoding="cp1252")
    offset = source.read_bytes().index(NORWEGIAN.encode("cp1252"))  # 'Æ' is 0xc6

    run = await cli("submit", "invoices", source, "--org", org, env=env)

    line = assert_one_line_error(run)
    assert line == (
        f"amili-async: error: ansi.csv: not UTF-8 text at byte offset {offset:,} (0xc6): "
        "pass --encoding cp1252 (Excel on Windows, also for Latin-1 files) or the file's "
        "encoding, or save it as CSV UTF-8"
    )
    assert sandbox_invoice_count(amili_sandbox) == SEEDED  # nothing was sent


async def test_a_bad_encoding_or_separator_flag_exits_2(tmp_path: Path) -> None:
    source = excel_csv(tmp_path / "x.csv", [_row(1)], delimiter=",", encoding="utf-8")
    env = base_env(AMILI_BASE_URL="http://127.0.0.1:9/collection/v1")  # never reached
    bad_encoding = await cli("submit", "invoices", source, "--org", "o", "--encoding", "ebcdic-x",
                             env=env)  # fmt: skip
    bad_delimiter = await cli("submit", "invoices", source, "--org", "o", "--delimiter", "ab",
                              env=env)  # fmt: skip
    assert bad_encoding.code == bad_delimiter.code == 2
    assert "--encoding: unknown encoding 'ebcdic-x'" in bad_encoding.stderr
    assert "--delimiter: not a separator: 'ab'" in bad_delimiter.stderr


async def test_jsonl_lists_every_bad_line_like_csv(
    env: dict[str, str], amili_sandbox: SandboxServer, tmp_path: Path
) -> None:
    org = amili_sandbox.default_org_id
    good = orjson.dumps(
        {k: v for k, v in _row(1).items() if "." not in k and k not in ("vat", "fees")}
        | {"debtors": [{"type": "PRIVATE", "firstname": "Ola", "lastname": "Nordmann"}]}
    ).decode()
    lines = [
        good,
        "{not json",
        "",  # blank lines are not rows
        good.replace('"1250.50"', '"twelve"'),
        "[1, 2]",
        good,
    ]
    source = tmp_path / "rows.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")

    run = await cli("submit", "invoices", source, "--org", org, env=env)

    assert run.code == 1, run
    assert run.stderr.strip().splitlines() == [
        "rows.jsonl row 2 (line 2): not a JSON object",
        "rows.jsonl row 3, column originalInvoiceAmount = 'twelve': "
        "not a decimal number: a str that does not parse as one",
        "rows.jsonl row 4 (line 5): not a JSON object",
        "amili-async: error: rows.jsonl: 3 invalid rows of 5 (listed above); nothing was sent",
    ]
    assert sandbox_invoice_count(amili_sandbox) == SEEDED


async def test_submit_reads_each_row_once_and_sends_what_it_checked(
    amili_client: AmiliClient,
    amili_sandbox: SandboxServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # More rows than a chunk: the file is read once and each row coerced (and checked) once;
    # what is sent is what validation checked, kept on disk meanwhile (memory flat).
    org = amili_sandbox.default_org_id
    rows = [_row(n, invoiceNumber=f"ONCE-{n}") for n in range(1, 8)]
    source = write_csv(tmp_path / "rows.csv", rows)
    reads: list[Path] = []
    coerced: list[dict[str, Any]] = []
    read_records, coerce = _submit.read_records, _submit.coerce

    def counted_reads(path: Path, **options: Any) -> Any:
        reads.append(path)
        return read_records(path, **options)

    def counted_coerce(row: dict[str, Any], cls: type[Any]) -> Any:
        coerced.append(row)
        return coerce(row, cls)

    monkeypatch.setattr(_submit, "read_records", counted_reads)
    monkeypatch.setattr(_submit, "coerce", counted_coerce)
    summary = await _submit.submit(
        amili_client, "invoices", org, source, chunk_size=3, progress=False
    )

    assert (summary.ok, summary.failed, summary.unknown) == (7, 0, 0)
    assert reads == [source]
    assert [row["invoiceNumber"] for row in coerced] == [f"ONCE-{n}" for n in range(1, 8)]
    report = read_report(tmp_path / "rows.report.csv")
    invoice = await amili_client.invoices.get(org, report[6]["invoice_id"])
    assert (invoice.invoice_number, invoice.original_invoice_amount) == (
        "ONCE-7",
        Decimal("1250.50"),
    )
    assert sandbox_invoice_count(amili_sandbox) == SEEDED + 7
