"""Request models catch mistakes before the network; the public wire JSON API; codegen hygiene."""

from __future__ import annotations

import datetime as dt
import inspect
import pydoc
from decimal import Decimal
from typing import Any

import attrs
import orjson
import pytest
import yaml

import amili_async
from amili_async import AmiliError, StructureError, models, wire
from amili_async._openenum import OpenEnum
from amili_async.resources._base import as_models
from codegen.generate import SPEC, request_models

UTC = dt.UTC


def new_invoice(**changes: Any) -> models.NewInvoice:
    invoice = models.NewInvoice(
        type=models.InvoiceType.NOTICE,
        invoice_number="INV-1",
        original_invoice_amount=Decimal("4500.10"),
        currency="NOK",
        invoice_date=dt.date(2024, 1, 15),
        due_date=dt.datetime(2024, 2, 15, tzinfo=UTC),
    )
    return attrs.evolve(invoice, **changes)


def test_float_amount_is_refused_with_a_pointer_to_decimal() -> None:
    with pytest.raises(TypeError, match=r"\$\.originalInvoiceAmount: a float .*Decimal"):
        new_invoice(original_invoice_amount=0.1 + 0.2)  # refused as the model is built
    with pytest.raises(TypeError, match=r"\$\.amount: a float"):
        models.NewPayment(
            invoice_id="i", type=models.PaymentType.DIRECT_PAYMENT, amount=12.5, currency="NOK"
        )
    # A model changed after it was built is checked again before it is sent.
    invoice = new_invoice()
    invoice.original_invoice_amount = 0.1 + 0.2  # type: ignore[assignment]
    with pytest.raises(TypeError, match=r"\$\[0\]\.originalInvoiceAmount: a float"):
        as_models([invoice], models.NewInvoice)
    with pytest.raises(TypeError, match=r"\$\.originalInvoiceAmount: a float"):
        wire.to_json(invoice)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"original_invoice_amount": "12.50"}, r"originalInvoiceAmount: expected a Decimal"),
        ({"vat": "yes"}, r"vat: expected a boolean, got str"),
        ({"invoice_date": "2024-01-15"}, r"invoiceDate: expected a date or a datetime, got str"),
    ],
)
def test_wrong_python_types_in_request_models_are_refused(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        new_invoice(**changes)


def test_dates_accept_datetime_date_and_go_out_as_dates() -> None:
    data = orjson.loads(wire.to_json(new_invoice()))
    assert data["invoiceDate"] == "2024-01-15"
    assert data["dueDate"] == "2024-02-15T00:00:00Z"
    payment = models.NewPayment(
        invoice_id="i",
        type=models.PaymentType.DIRECT_PAYMENT,
        amount=Decimal("1"),
        currency="NOK",
        payment_date=dt.date(2024, 3, 1),
    )
    assert wire.to_wire(payment)["paymentDate"] == dt.date(2024, 3, 1).isoformat()


def test_a_date_where_a_point_in_time_is_meant_is_a_clear_type_error() -> None:
    with pytest.raises(TypeError, match=r"\$\.date: expected a date-time, got a date"):
        models.NewCorrection(
            invoice_id="i",
            amount=Decimal("-10"),
            currency="NOK",
            date=dt.date(2024, 1, 1),  # type: ignore[arg-type]
        )


def test_naive_datetimes_in_requests_are_refused_responses_stay_aware() -> None:
    with pytest.raises(ValueError, match=r"\$\.dueDate: a date-time without a timezone: which"):
        new_invoice(due_date=dt.datetime(2024, 2, 15))
    row = wire.to_wire(new_invoice())
    with pytest.raises(ValueError, match=r"\$\[0\]\.dueDate: a date-time without a timezone"):
        as_models([{**row, "dueDate": "2024-02-15T00:00:00"}], models.NewInvoice)
    batch = wire.from_json(
        b'{"batchId": "b", "status": "SUCCESS", "createdAt": "2025-03-09T14:30:00"}', models.Batch
    )
    assert batch.created_at == dt.datetime(2025, 3, 9, 14, 30, tzinfo=UTC)


def test_request_dicts_take_wire_or_attribute_names() -> None:
    by_attribute = {
        "type": "NOTICE",
        "invoice_number": "INV-1",
        "original_invoice_amount": "4500.10",
        "currency": "NOK",
        "invoice_date": "2024-01-15",
        "dueDate": "2024-02-15T00:00:00Z",
        "debtors": [{"date_of_birth": "1970-01-01", "firstname": "Kari"}],
    }
    invoice = wire.from_wire(by_attribute, models.NewInvoice)
    assert invoice == new_invoice(debtors=invoice.debtors)
    assert invoice.debtors is not None
    assert invoice.debtors[0].date_of_birth == dt.date(1970, 1, 1)
    assert wire.from_json(wire.to_json(invoice), models.NewInvoice) == invoice


def test_structure_error_is_an_amili_error_with_wire_paths_and_value_types() -> None:
    bad = {"type": "NOTICE", "invoiceNumber": "1", "currency": "NOK", "invoiceDate": ["x"],
           "dueDate": "2024-01-01", "originalInvoiceAmount": "1",
           "debtors": [{"dateOfBirth": "01.01.1970"}]}  # fmt: skip
    with pytest.raises(StructureError) as caught:
        wire.from_wire(bad, models.NewInvoice)
    error = caught.value
    assert isinstance(error, AmiliError)
    assert isinstance(error, ValueError)
    assert "StructureError" in amili_async.__all__
    message = str(error)
    assert "$.invoiceDate: expected an ISO 8601 date or date-time, got list" in message
    assert "$.debtors[0].dateOfBirth: not an ISO 8601 date: a str" in message
    assert "01.01.1970" not in message  # values (personal data) never in messages


def test_wire_json_round_trip_of_a_response_model() -> None:
    text = (
        b'{"id": "i", "originalInvoiceAmount": 4500.10, "status": "OPEN",'
        b' "invoiceDate": "2024-01-15T00:00:00Z"}'
    )
    invoice = wire.from_json(text, models.Invoice)
    assert invoice.original_invoice_amount == Decimal("4500.10")
    assert b'"originalInvoiceAmount":4500.1' in wire.to_json(invoice)  # exact, not 4500.1000001
    assert wire.from_wire(wire.to_wire(invoice), models.Invoice) == invoice


# --- codegen hygiene -------------------------------------------------------------------------


def test_models_all_lists_models_and_enums_only() -> None:
    assert models.__all__
    for name in models.__all__:
        value = getattr(models, name)
        assert isinstance(value, type), name
        assert attrs.has(value) or issubclass(value, OpenEnum), name
    for leaked in ("Any", "Decimal", "attrs", "OpenEnum", "dt", "Literal"):
        assert leaked not in models.__all__


def test_no_codegen_alias_in_public_annotations() -> None:
    for name in models.__all__:
        cls = getattr(models, name)
        if attrs.has(cls):
            assert "date_aliased" not in str(inspect.signature(cls)), name
    assert "dt.date | dt.datetime" in str(inspect.signature(models.NewInvoice))


def test_field_docs_show_in_help() -> None:
    text = pydoc.render_doc(models.NewInvoice, renderer=pydoc.plaintext)
    assert "invoice_number (``invoiceNumber``): The creditor's invoice number." in text
    assert "due_date (``dueDate``): Due date" in text


def test_a_wrong_primitive_in_a_response_is_named_with_its_wire_path() -> None:
    with pytest.raises(StructureError) as caught:
        wire.from_json(b'{"id": "i", "invoiceNumber": true, "paidAmount": "x"}', models.Invoice)
    message = str(caught.value)
    assert "$.invoiceNumber: expected a string, got bool" in message
    assert "$.paidAmount:" in message


def test_request_models_are_marked_from_the_spec_not_by_name() -> None:
    # What codegen derives from the spec's request bodies: sent, never read.
    spec = yaml.safe_load(SPEC.read_text())
    names, bodies = request_models(spec)
    assert {cls.__name__ for cls in models.REQUEST_MODELS} == set(names)
    assert {"CreateInvoicesRequest", "NewInvoice", "NewPayment", "NewCorrection"} <= set(names)
    assert "CreateInvoicesRequest" in bodies
    assert "NewInvoice" not in bodies
    # Read and written (legacy batch), or shared with a response (Debtor): never a request.
    assert "LegacyBatch" not in names
    assert "Debtor" not in names
    assert all(attrs.has(cls) for cls in models.REQUEST_MODELS)


def test_a_request_model_is_checked_by_wire_whatever_its_name() -> None:
    # CaseActionRequest's name says Request; Debtor's says nothing: the marker decides.
    assert models.CaseActionRequest in models.REQUEST_MODELS
    debtor = models.Debtor(date_of_birth=dt.datetime(2024, 1, 1))  # type: ignore[arg-type]
    assert wire.to_wire(debtor)["dateOfBirth"]  # a response model: written leniently
    invoice = new_invoice()
    invoice.due_date = dt.datetime(2024, 2, 15)  # naive, set after the model was built
    with pytest.raises(ValueError, match=r"\$\.dueDate: a date-time without a timezone"):
        wire.to_wire(invoice)
