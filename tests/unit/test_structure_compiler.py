"""The compiled structure functions: the fast path gives what cattrs' own would, on every path."""

from __future__ import annotations

import datetime as dt
import inspect
import traceback
from decimal import Decimal
from typing import Any

import attrs
import cattrs
import orjson
import pytest

from amili_async import _serde, _structure_compiler, models
from amili_async._structure_compiler import compile_structure_fn

INVOICE: dict[str, Any] = {
    "id": "inv-1",
    "organization": {"id": "org-1", "organizationNumber": "912345688", "name": "Nordlys AS"},
    "status": "OPEN",
    "createdAt": "2024-03-05T12:34:56.789Z",
    "invoiceDate": "2024-03-01T00:00:00",
    "originalInvoiceAmount": 4500.1,
    "currentAmount": 0,
    "remainingAmount": "4500.10",
    "claims": [{"type": "PRINCIPAL", "originalAmount": 4500.1, "paidAmount": 0.0}],
    "debtors": [{"type": "PRIVATE", "dateOfBirth": "1980-02-29", "emails": [{"value": "a@b"}]}],
}


def fresh_keys(value: Any) -> Any:
    """`value` rebuilt with key strings that are not orjson's cached objects."""
    if isinstance(value, dict):
        return {"".join(list(k)): fresh_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [fresh_keys(v) for v in value]
    return value


@pytest.mark.parametrize(
    "data",
    [orjson.loads(orjson.dumps(INVOICE)), fresh_keys(INVOICE)],
    ids=["orjson-keys", "other-key-objects"],
)
def test_an_invoice_with_optional_keys_missing_reads_like_the_detailed_converter(
    data: dict[str, Any],
) -> None:
    _structure_compiler.MEMO.clear()
    invoice = _serde.structure(data, models.Invoice)
    assert invoice == _serde._explainer.structure(data, models.Invoice)
    assert invoice.closed_at is None  # key absent
    assert invoice.currency is None
    assert invoice.created_at == dt.datetime(2024, 3, 5, 12, 34, 56, 789000, tzinfo=dt.UTC)
    assert invoice.invoice_date == dt.datetime(2024, 3, 1, tzinfo=dt.UTC)  # naive: UTC
    assert str(invoice.original_invoice_amount) == "4500.1"
    assert str(invoice.remaining_amount) == "4500.10"  # a string amount keeps its digits
    assert type(invoice.current_amount) is Decimal
    assert invoice.current_amount == 0
    assert invoice.claims is not None
    assert invoice.claims[0].original_amount == Decimal("4500.1")
    assert invoice.debtors is not None
    assert invoice.debtors[0].date_of_birth == dt.date(1980, 2, 29)


def test_a_remembered_one_is_not_a_hit_for_true() -> None:
    _serde.structure({"id": "a", "paidAmount": 1.0}, models.Invoice)
    assert 1.0 in _structure_compiler.MEMO
    with pytest.raises(_serde.StructureError, match=r"\$\.paidAmount: expected a number, got bool"):
        _serde.structure({"id": "a", "paidAmount": True}, models.Invoice)


@pytest.mark.parametrize(
    "data",
    [
        {"id": "a", "claims": {"type": "PRINCIPAL"}},  # an object where a list belongs
        {"id": "a", "organization": ["org-1"]},  # a list where an object belongs
        {"id": "a", "claims": [{"originalAmount": [1]}]},  # an unhashable amount
        {"id": "a", "createdAt": 20240305},  # a number where a date-time belongs
        {"invoiceNumber": "no id"},  # a required key missing
    ],
)
def test_every_mismatch_is_a_structure_error(data: dict[str, Any]) -> None:
    with pytest.raises(_serde.StructureError, match="data does not match Invoice"):
        _serde.structure(data, models.Invoice)


@attrs.define(kw_only=True)
class Node:
    """A recursive model: its own class is called, not inlined forever."""

    name: str = attrs.field(metadata={"wire": "name"})
    children: list[Node] | None = attrs.field(default=None, metadata={"wire": "children"})
    parent: Node | None = attrs.field(default=None, metadata={"wire": "parent"})


def test_a_recursive_model_compiles_and_reads_every_level() -> None:
    conv = cattrs.Converter()
    conv.register_structure_hook_factory(
        attrs.has, lambda cls: compile_structure_fn(cls, conv, _serde._SCALAR_HOOKS)
    )
    data = {"name": "a", "children": [{"name": "b", "children": [{"name": "c"}]}]}
    tree = conv.structure({**data, "parent": {"name": "root"}}, Node)
    assert tree.parent == Node(name="root")
    assert tree.children == [Node(name="b", children=[Node(name="c")])]


# --- the money memo: one key per JSON value, whatever came first --------------------------------


@pytest.mark.parametrize(
    "values",
    [(1, 1.0), (1.0, 1), (0.0, -0.0), (-0.0, 0.0), (0, 0.0), ("1.0", 1.0), (2.5, "2.5", 2.5)],
    ids=repr,
)
def test_an_amount_reads_as_the_detailed_converter_reads_it_whatever_came_before(
    values: tuple[Any, ...],
) -> None:
    """`1 == 1.0` (and `0.0 == -0.0`) are one dict key, yet Decimal("1") and Decimal("1.0") are
    not the same amount's text: a memo keyed by value alone answered whichever came first."""
    _structure_compiler.MEMO.clear()
    for value in values:
        data = {"id": "a", "paidAmount": value, "claims": [{"paidAmount": value}]}
        fast = _serde.structure(data, models.Invoice)
        detailed = _serde._explainer.structure(data, models.Invoice)
        assert fast.claims is not None
        assert detailed.claims is not None
        assert str(fast.paid_amount) == str(detailed.paid_amount), value
        assert str(fast.claims[0].paid_amount) == str(detailed.claims[0].paid_amount), value


# --- generated source in linecache: tracebacks and inspect.getsource ----------------------------


def compiled_invoice_structure() -> Any:
    conv = cattrs.Converter()
    return compile_structure_fn(models.Invoice, conv, _serde._SCALAR_HOOKS)


def test_inspect_finds_the_source_of_a_compiled_function() -> None:
    function = compiled_invoice_structure()
    source = inspect.getsource(function)
    assert source.startswith("def structure(o, _,")
    assert "expect_object(o)" in source
    assert inspect.getsourcefile(function) == function.__code__.co_filename
    assert "Invoice" in function.__code__.co_filename


def test_a_traceback_through_a_compiled_function_shows_its_lines() -> None:
    function = compiled_invoice_structure()
    with pytest.raises(TypeError) as caught:
        function({"id": "a", "claims": {"type": "PRINCIPAL"}}, models.Invoice)
    text = "".join(traceback.format_exception(caught.value))
    frame = next(
        entry
        for entry in traceback.extract_tb(caught.value.__traceback__)
        if entry.filename == function.__code__.co_filename
    )
    assert frame.line is not None
    assert "not_a_list(" in frame.line
    assert frame.line in text


def test_compiling_a_class_twice_keeps_both_sources() -> None:
    first, second = compiled_invoice_structure(), compiled_invoice_structure()
    assert first.__code__.co_filename != second.__code__.co_filename
    assert inspect.getsource(first) == inspect.getsource(second)
