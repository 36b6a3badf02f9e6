"""Reading CSV rows: the compiled nesting (`unflatten`) and the per-model coercion plan agree
with reading column by column, errors included."""

from __future__ import annotations

from typing import Any

import pytest

from amili_async import models
from amili_async._cli import _rows

ROWS: list[dict[str, str]] = [
    {"invoiceNumber": "1", "debtors.0.name": "Kari", "debtors.0.emails.0.value": "k@x.test"},
    {"invoiceNumber": "2", "debtors.1.name": "Ola"},  # a hole at index 0
    {"debtors.0.phoneNumbers.0.value": "1", "debtors.0.phoneNumbers.1.value": "2", "vat": "yes"},
    {"debtors": '[{"name": "Kari"}]', "fees": "0", "originalInvoiceAmount": " 12.50 "},
]
BAD: list[dict[str, str]] = [
    {"debtors": "x", "debtors.0.name": "Kari"},
    {"debtors.0.name": "Kari", "debtors.0": "x"},
    {"debtors.x.name": "Kari", "debtors.0.name": "Ola"},
    {"debtors.0.name": "Kari", "debtors.x.name": "Ola"},
    {"debtors.1000.name": "Kari"},
]


@pytest.mark.parametrize("row", ROWS)
def test_unflatten_builds_what_column_by_column_builds(row: dict[str, str]) -> None:
    first, again = _rows.unflatten(row), _rows.unflatten(row)  # compiled, then reused
    assert first == again == _rows._unflatten_slowly(row)
    assert first is not again  # a fresh structure per row: rows never share lists


def outcome(build: Any, row: dict[str, str]) -> Any:
    try:
        return build(row)
    except ValueError as error:
        return str(error)


@pytest.mark.parametrize("row", BAD)
def test_odd_rows_nest_or_fail_as_column_by_column(row: dict[str, str]) -> None:
    assert outcome(_rows.unflatten, row) == outcome(_rows._unflatten_slowly, row)


def test_a_value_and_a_nested_one_in_one_column_is_an_error() -> None:
    assert outcome(_rows.unflatten, BAD[0]) == (
        "column 'debtors.0.name' and column 'debtors' are both filled"
    )


def test_coercion_turns_only_what_the_model_types_want() -> None:
    data = _rows.unflatten(ROWS[2] | ROWS[3])
    out = _rows.coerce(data, models.NewInvoice)
    assert out["vat"] is True
    assert out["fees"] is False
    assert out["originalInvoiceAmount"] == "12.50"  # stripped; read exactly by the model
    assert out["debtors"] == [{"name": "Kari"}]  # a list given as JSON in its column
    assert _rows.coerce({"vat": "maybe"}, models.NewInvoice) == {"vat": "maybe"}  # left to refuse
    assert _rows.coerce({"value": "x"}, models.Email) == {"value": "x"}
