"""Export rows: the Parquet fast path (staged JSON Lines read by Arrow in C) against the model
path it replaced, and the exactness rules both keep."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest

from amili_async import _serde, models
from amili_async.sandbox._seed import seed_invoices

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from amili_async.export import _parquet  # noqa: E402 - needs pyarrow

UTC = dt.UTC


def _staged(count: int) -> list[bytes]:
    """Staged lines as the export writes them: seeded invoices (each its own ids, amounts,
    dates, debtor) decoded by the SDK and written by `_serde.dumps`."""
    seeded = seed_invoices(count, seed=11)
    lines = []
    for i in range(count):
        invoice = _serde.decode(seeded.invoice_json(i).encode(), models.Invoice)
        lines.append(_serde.dumps(invoice) + b"\n")
    return lines


def _edge_rows() -> list[bytes]:
    """Models holding what the fast path must carry exactly: 4 decimals, zero, the largest
    amount, microseconds, no closing time, no debtors, an unknown enum value."""
    base = _serde.decode(seed_invoices(1, seed=5).invoice_json(0).encode(), models.Invoice)

    rows = [
        attrs.evolve(base, original_invoice_amount=Decimal("4500.10"), closed_at=None),
        attrs.evolve(base, original_invoice_amount=Decimal("0.0001"), debtors=[]),
        attrs.evolve(
            base,
            original_invoice_amount=Decimal("99999999999999.9999"),
            created_at=dt.datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC),
            status=models.InvoiceStatus("SOMETHING_NEW"),
        ),
    ]
    return [_serde.dumps(row) + b"\n" for row in rows]


def _table(tables: Any) -> Any:
    return pa.concat_tables(list(tables))


def test_the_fast_path_gives_the_model_paths_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_parquet, "ROWS_PER_GROUP", 100)  # several tables, a partial last one
    lines = _staged(250) + _edge_rows()
    fast = list(_parquet.arrow_tables_from_jsonl(lines, models.Invoice))
    slow = list(_parquet.arrow_tables_via_models(lines, models.Invoice))
    assert [t.num_rows for t in fast] == [t.num_rows for t in slow] == [100, 100, 53]
    for got, want in zip(fast, slow, strict=True):
        assert got.schema.equals(want.schema, check_metadata=True)
        assert got.schema.equals(_parquet.arrow_schema(models.Invoice))
        assert got.equals(want)
    # Every value, not only Arrow's notion of equality.
    assert _table(fast).to_pylist() == _table(slow).to_pylist()


def test_the_written_file_is_the_model_paths_file(tmp_path: Path) -> None:
    lines = _staged(120) + _edge_rows()
    schema = _parquet.arrow_schema(models.Invoice)
    fast, slow = tmp_path / "fast.parquet", tmp_path / "slow.parquet"
    with fast.open("wb") as stream:
        assert _parquet.write_parquet(lines, models.Invoice, stream) == 123
    with slow.open("wb") as stream:
        tables = _parquet.arrow_tables_via_models(lines, models.Invoice)
        assert _parquet.write_tables(tables, schema, stream) == 123
    got, want = pq.read_table(fast), pq.read_table(slow)
    assert got.schema.equals(want.schema)
    assert got.equals(want)
    assert pq.ParquetFile(fast).metadata.num_row_groups == 1
    row = got.slice(120, 3).to_pylist()
    assert [r["originalInvoiceAmount"] for r in row] == [
        Decimal("4500.1000"),
        Decimal("0.0001"),
        Decimal("99999999999999.9999"),
    ]
    assert row[0]["closedAt"] is None
    assert row[1]["debtors"] == []
    assert row[2]["status"] == "SOMETHING_NEW"
    assert row[2]["createdAt"] == dt.datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC)


def test_no_rows_is_one_empty_row_group(tmp_path: Path) -> None:
    out = tmp_path / "empty.parquet"
    with out.open("wb") as stream:
        assert _parquet.write_parquet([], models.Invoice, stream) == 0
    table = pq.read_table(out)
    assert table.num_rows == 0
    assert table.schema.equals(_parquet.arrow_schema(models.Invoice))


def _read(line: bytes) -> dict[str, Any]:
    (table,) = _parquet.arrow_tables_from_jsonl([line], models.Invoice)
    row: dict[str, Any] = table.to_pylist()[0]
    return row


def test_json_text_is_read_exactly() -> None:
    row = _read(
        b'{"id": "a", "originalInvoiceAmount": 4500.10, "paidAmount": 0.0001,'
        b' "currentAmount": 12, "createdAt": "2024-01-02T08:30:00.123+01:30",'
        b' "closedAt": "2024-01-02T07:00:00Z", "status": "NOT_YET_DOCUMENTED",'
        b' "someNewField": {"nested": [1, 2]},'
        b' "claims": [{"paidAmount": 4500.10, "futureField": 1}],'
        b' "debtors": [{"dateOfBirth": "1980-02-29", "emails": [{"value": "k@x.example"}]}]}'
    )
    assert row["originalInvoiceAmount"] == Decimal("4500.10")
    assert str(row["originalInvoiceAmount"]) == "4500.1000"  # scale 4, no float on the way
    assert row["paidAmount"] == Decimal("0.0001")
    assert row["currentAmount"] == Decimal(12)
    assert row["createdAt"] == dt.datetime(2024, 1, 2, 7, 0, 0, 123000, tzinfo=UTC)
    assert row["createdAt"].utcoffset() == dt.timedelta(0)
    assert row["closedAt"] == dt.datetime(2024, 1, 2, 7, tzinfo=UTC)
    assert row["status"] == "NOT_YET_DOCUMENTED"  # an unknown enum value kept as text
    assert "someNewField" not in row  # unknown fields ignored
    assert row["claims"][0]["paidAmount"] == Decimal("4500.10")
    assert row["claims"][0]["currency"] is None  # missing optional fields are null
    assert row["debtors"][0]["dateOfBirth"] == dt.date(1980, 2, 29)
    assert row["invoiceNumber"] is None
    assert row["organization"] is None


@pytest.mark.parametrize(
    "line",
    [
        b'{"id": "x", "originalInvoiceAmount": 1.00001}',  # a fifth decimal
        b'{"id": "x", "claims": [{"paidAmount": 0.00005}]}',  # nested, too
        b'{"id": "x", "originalInvoiceAmount": 100000000000000}',  # 15 integer digits
        b'{"id": "x", "debtors": [{"dateOfBirth": "1980-02-30"}]}',  # no such day
    ],
)
def test_a_value_the_column_cannot_hold_is_refused_not_rounded(line: bytes, tmp_path: Path) -> None:
    lines = [*_staged(2), line]
    refused = pytest.raises(_parquet.ParquetValueError, match=r"rows 1 to 3.*data loss")
    with refused as caught, (tmp_path / "x.parquet").open("wb") as stream:
        _parquet.write_parquet(lines, models.Invoice, stream)
    assert "1.00001" not in str(caught.value)
    assert "1980" not in str(caught.value)


def test_a_model_the_reader_cannot_take_goes_through_the_models() -> None:

    @attrs.frozen
    class Odd:
        name: str | None = None
        extra: Any = None

    line = b'{"name": "a", "extra": {"any": ["shape"]}}\n'
    assert not _parquet._json_readable(Odd)
    assert _parquet._json_readable(models.Invoice)
    (table,) = _parquet.arrow_tables_from_jsonl([line], Odd)
    assert table.to_pylist() == [{"name": "a", "extra": '{"any":["shape"]}'}]


def _listing_models() -> list[Any]:
    """One model of every exported listing, with nested lists, enums, money and dates."""
    batch = {
        "batchId": "b1", "status": "FINISHED", "type": "INVOICE", "organizationId": "o",
        "createdAt": "2024-01-02T07:00:00.5Z", "finishedAt": None,
        "succeeded": [{"index": 0, "invoiceId": "i"}], "failed": [{"index": 1, "code": "X"}],
    }  # fmt: skip
    settlement = {
        "settlementId": "s1", "amount": 12.5, "exchangeRate": 1.0, "settlementDate": "2024-03-01",
        "collectionType": "SOME_NEW_TYPE",
    }  # fmt: skip
    case = {
        "caseId": "c1", "status": "OPEN", "registeredAt": "2024-01-02T07:00:00.000001+02:00",
        "invoices": [{"invoiceId": "i", "originalAmount": 4500.10, "dueDate": None}],
        "debtors": [],
    }  # fmt: skip
    return [
        _serde.structure(batch, models.Batch),
        _serde.structure(settlement, models.Settlement),
        _serde.structure(case, models.Case),
    ]


def test_the_line_encoder_writes_the_bytes_of_serde_dumps() -> None:
    from amili_async.export._encode import encode_lines

    invoices = [_serde.decode(line, models.Invoice) for line in _staged(300) + _edge_rows()]
    invoices.append(
        attrs.evolve(
            invoices[0],
            created_at=dt.datetime(
                2024, 1, 2, 9, 0, 0, 1, tzinfo=dt.timezone(dt.timedelta(hours=2))
            ),
            due_date=dt.datetime(2024, 1, 2, tzinfo=UTC),
            organization=None,
            claims=None,
        )
    )
    assert encode_lines(invoices, models.Invoice) == b"".join(
        _serde.dumps(i) + b"\n" for i in invoices
    )
    for model in _listing_models():
        assert encode_lines([model, model], type(model)) == (_serde.dumps(model) + b"\n") * 2
    assert encode_lines([], models.Invoice) == b""


def test_the_line_encoder_refuses_what_dumps_refuses() -> None:
    from amili_async.export._encode import encode_lines

    (invoice,) = [_serde.decode(line, models.Invoice) for line in _staged(1)]
    broken = attrs.evolve(invoice, paid_amount=Decimal("NaN"))
    with pytest.raises(ValueError, match="finite"):
        _serde.dumps(broken)
    with pytest.raises(ValueError, match="finite"):
        encode_lines([broken], models.Invoice)


def _reference_flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """The CSV layout as the module docstring of `_cli/_rows` states it, walked generically
    (the writer before the compiled cells): the reference the compiled cells are held to."""
    from amili_async import wire

    row: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            row.update(_reference_flatten(value, f"{prefix}{key}."))
        elif isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
            row.update(_reference_flatten(value[0], f"{prefix}{key}.0."))
        elif isinstance(value, list):
            row[prefix + key] = wire.to_json(value).decode()
        else:
            row[prefix + key] = value
    return row


def _csv_rows() -> list[Any]:
    """Realistic invoices, and the shapes the layout has rules for: two debtors (the list as
    JSON), no debtors, no organisation, formula-like text, an exact amount with a trailing 0."""
    invoices = [_serde.decode(line, models.Invoice) for line in _staged(200) + _edge_rows()]
    first, second = invoices[0], invoices[1]
    assert first.debtors
    assert second.debtors
    debtor = attrs.evolve(first.debtors[0], name="=HYPERLINK(1)", firstname="-Kari")
    return [
        *invoices,
        attrs.evolve(first, debtors=[debtor, *second.debtors], invoice_number="+47"),
        attrs.evolve(second, debtors=[], organization=None, claims=None),
        attrs.evolve(second, debtors=[debtor], original_invoice_amount=Decimal("4500.10")),
    ]


@pytest.mark.parametrize("raw", [False, True])
def test_csv_cells_from_staged_lines_are_the_model_paths(raw: bool) -> None:
    import csv
    import io

    from amili_async import wire
    from amili_async._cli._rows import RowWriter, columns, neutralise

    invoices = _csv_rows()
    want = io.StringIO()
    reference = csv.DictWriter(want, fieldnames=columns(models.Invoice), extrasaction="ignore")
    reference.writeheader()
    for invoice in invoices:
        row = _reference_flatten(wire.to_wire(invoice))
        reference.writerow(row if raw else {k: neutralise(v) for k, v in row.items()})
    staged, built = io.StringIO(), io.StringIO()
    from_lines = RowWriter(staged, "csv", models.Invoice, header=True, raw=raw)
    from_models = RowWriter(built, "csv", models.Invoice, header=True, raw=raw)
    for invoice in invoices:
        from_lines.write_wire(_serde.parse_exact(_serde.dumps(invoice) + b"\n"))
        from_models.write(invoice)
    assert staged.getvalue() == built.getvalue() == want.getvalue()
    text = staged.getvalue()
    assert ",4500.10," in text  # exact decimals, never through a float
    assert ("'=HYPERLINK(1)" in text) is not raw
    assert ("'+47" in text) is not raw
    assert '"[{""type"":' in text  # two debtors: the whole list as JSON in `debtors`


@pytest.mark.parametrize(
    "stamp",
    [
        dt.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
        dt.datetime(2024, 1, 2, 3, 4, 5, 1),  # naive: UTC
        dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ],
)
def test_the_extracted_at_column_holds_the_stamp(stamp: dt.datetime, tmp_path: Path) -> None:
    out = tmp_path / "x.parquet"
    with out.open("wb") as stream:
        _parquet.write_parquet(_staged(3), models.Invoice, stream, extracted_at=stamp)
    column = pq.read_table(out).column(_parquet.EXTRACTED_AT)
    kind = pa.timestamp(_parquet.TIMESTAMP_UNIT, tz="UTC")
    assert column.type == kind
    assert column.to_pylist() == [stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)] * 3
    assert column.combine_chunks().equals(pa.array([pa.scalar(stamp, type=kind)] * 3, kind))


def test_writing_parquet_does_not_import_pandas(tmp_path: Path) -> None:
    """pyarrow imports pandas (when installed) for any Python value it converts: ~0.3 s of
    CPU per export process that the Parquet output never needs."""
    import subprocess
    import sys

    staged = tmp_path / "x.jsonl"
    staged.write_bytes(b"".join(_staged(3)))
    script = (
        "import datetime as dt, sys\n"
        "from pathlib import Path\n"
        "from amili_async import models\n"
        "from amili_async.export import _parquet\n"
        f"lines = Path({str(staged)!r}).read_bytes().splitlines(keepends=True)\n"
        f"with open({str(tmp_path / 'x.parquet')!r}, 'wb') as out:\n"
        "    stamp = dt.datetime.now(dt.UTC)\n"
        "    _parquet.write_parquet(lines, models.Invoice, out, extracted_at=stamp)\n"
        "assert _parquet.parquet_rows(Path(out.name)) == 3\n"
        "print('pandas' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False"
