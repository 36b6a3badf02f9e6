"""Generated models + the converter: every documented example structures into the right model
and unstructures back to equal JSON; money, dates and unknown values behave."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import orjson
import pytest
import yaml

from amili_async import _serde, models
from amili_async._openenum import OpenEnum

from ..conftest import SPEC_PATH

EXAMPLE_MODELS = {
    "batches-get-all-batches-older.response-200.json": models.OlderBatchListResponse,
    "correction-create-corrections.request.json": models.CreateCorrectionsRequest,
    "example-workflow-token-response.json": models.TokenResponse,
    "webhooks-batch-completed-event.json": models.BatchCompletedEvent,
    "webhooks-case-event.json": models.CaseEvent,
    "webhooks-case-updated-event.json": models.CaseUpdatedEvent,
    "webhooks-settlement-created-event.json": models.SettlementCreatedEvent,
}


def round_trip(data: Any, cls: type[Any]) -> Any:
    """JSON value -> model -> wire JSON -> JSON value."""
    return orjson.loads(_serde.dumps(_serde.structure(data, cls)))


def test_every_docs_example_has_a_model(docs_dir: Path) -> None:
    files = {p.name for p in (docs_dir / "examples").glob("*.json")}
    assert files == set(EXAMPLE_MODELS)


@pytest.mark.parametrize("name", sorted(EXAMPLE_MODELS))
def test_docs_example_round_trips(docs_dir: Path, name: str) -> None:
    raw = (docs_dir / "examples" / name).read_bytes()
    data = orjson.loads(raw)
    model = _serde.decode(raw, EXAMPLE_MODELS[name])
    assert isinstance(model, EXAMPLE_MODELS[name])
    assert round_trip(data, EXAMPLE_MODELS[name]) == data


def seed_example(docs_dir: Path) -> dict[str, Any]:
    """The complete GetInvoiceById 200 example from the page copy the project started from."""
    text = (docs_dir / "000_4e79d02459dacddd.txt").read_text()
    start = text.index("{", text.index("200 - Example 1"))
    end = text.index("Modified at", start)
    result: dict[str, Any] = json.loads(text[start:end])
    return result


def test_seed_invoice_example(docs_dir: Path) -> None:
    data = seed_example(docs_dir)
    envelope = _serde.structure(data, models.InvoiceEnvelope)
    invoice = envelope.data
    assert invoice.invoice_number == "string"
    assert invoice.type is models.InvoiceType.PAYMENT_REMINDER
    assert invoice.status is models.InvoiceStatus.OPEN
    assert invoice.created_at == dt.datetime(2019, 8, 24, 14, 15, 22, 123000, tzinfo=dt.UTC)
    assert invoice.claims is not None
    assert invoice.claims[0].type is models.ClaimType.PRINCIPAL
    assert invoice.claims[0].remaining_amount == Decimal(0)
    assert invoice.debtors is not None
    debtor = invoice.debtors[0]
    assert debtor.date_of_birth == dt.date(2019, 8, 24)
    assert debtor.phone_numbers is not None
    assert debtor.phone_numbers[0].original_value == "string"
    assert round_trip(data, models.InvoiceEnvelope) == data


def spec_examples() -> list[tuple[str, str, Any]]:
    """(where, schema name, example value) for every media example in the spec."""
    spec = yaml.safe_load(SPEC_PATH.read_text())
    found = []

    def collect(where: str, content: dict[str, Any]) -> None:
        for media in content.values():
            ref = media.get("schema", {}).get("$ref", "")
            if not ref.startswith("#/components/schemas/"):
                continue
            for name, example in (media.get("examples") or {}).items():
                found.append((f"{where} {name}", ref.rsplit("/", 1)[1], example["value"]))

    for route, item in spec["paths"].items():
        for method, op in item.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            collect(f"{method} {route} request", op.get("requestBody", {}).get("content", {}))
            for status, response in op["responses"].items():
                collect(f"{method} {route} {status}", response.get("content", {}))
    return found


@pytest.mark.parametrize(("where", "schema", "example"), spec_examples())
def test_spec_example_round_trips(where: str, schema: str, example: Any) -> None:
    cls = getattr(models, schema)
    assert round_trip(example, cls) == example, where


def test_money_is_exact_decimal() -> None:
    claim = _serde.decode(b'{"originalAmount": 4500.10, "paidAmount": 1000.05}', models.Claim)
    assert claim.original_amount == Decimal("4500.10")
    assert claim.paid_amount == Decimal("1000.05")
    assert claim.original_amount - claim.paid_amount == Decimal("3500.05")
    # Back on the wire as the very same number, never a binary float approximation.
    wire = _serde.dumps(
        models.NewPayment(
            invoice_id="i",
            type=models.PaymentType.DIRECT_PAYMENT,
            amount=Decimal("4500.10"),
            currency="NOK",
        )
    )
    assert b'"amount":4500.10' in wire
    assert json.loads(wire, parse_float=Decimal)["amount"] == Decimal("4500.10")


def test_boolean_is_not_money() -> None:
    _serde.decode(b'{"originalAmount": 1.0}', models.Claim)  # a remembered 1.0 must not leak
    with pytest.raises(_serde.StructureError):
        _serde.decode(b'{"originalAmount": true}', models.Claim)


def test_non_finite_amount_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        _serde.dumps(models.NewCorrection(invoice_id="i", amount=Decimal("NaN"), currency="NOK"))


def test_datetimes_are_timezone_aware() -> None:
    batch = _serde.decode(
        b'{"batchId": "b", "status": "SUCCESS", "createdAt": "2025-03-09T14:30:00",'
        b' "finishedAt": "2025-03-09T16:30:05+02:00"}',
        models.Batch,
    )
    assert batch.created_at is not None
    assert batch.created_at.tzinfo is not None
    assert batch.finished_at == dt.datetime(2025, 3, 9, 14, 30, 5, tzinfo=dt.UTC)
    wire = orjson.loads(_serde.dumps(batch))
    assert wire["createdAt"] == "2025-03-09T14:30:00Z"
    assert wire["finishedAt"] == "2025-03-09T16:30:05+02:00"


def test_unknown_enum_value_is_kept_and_round_trips() -> None:
    data = {"id": "i", "status": "SENT_TO_BAILIFF", "type": "PAYMENT_REMINDER"}
    invoice = _serde.structure(data, models.Invoice)
    assert isinstance(invoice.status, models.InvoiceStatus)
    assert invoice.status == "SENT_TO_BAILIFF"
    assert not invoice.status.is_known
    assert invoice.type is models.InvoiceType.PAYMENT_REMINDER
    assert invoice.type.is_known
    assert round_trip(data, models.Invoice) == data


def test_unknown_fields_are_ignored() -> None:
    data = {"id": "i", "brandNewField": {"nested": [1, 2]}, "invoiceNumber": "7"}
    invoice = _serde.structure(data, models.Invoice)
    assert invoice.invoice_number == "7"


def test_missing_required_field_names_the_path() -> None:
    with pytest.raises(_serde.StructureError, match=r"\$\.data\[1\]") as caught:
        _serde.decode(
            b'{"data": [{"id": "a"}, {"invoiceNumber": "secret-123"}]}', models.InvoiceListResponse
        )
    assert "secret-123" not in str(caught.value)  # values (personal data) never in messages


def test_wrong_type_and_malformed_json() -> None:
    with pytest.raises(_serde.StructureError):
        _serde.decode(b'{"id": "a", "claims": {"not": "a list"}}', models.Invoice)
    with pytest.raises(_serde.StructureError, match="not valid JSON"):
        _serde.decode(b"<html>502 Bad Gateway</html>", models.Invoice)
    with pytest.raises(_serde.StructureError):
        _serde.decode(b"[1, 2]", models.Invoice)


def test_numbers_where_strings_are_documented_become_text() -> None:
    case = _serde.structure({"caseId": "c", "caseNumber": 5000001}, models.Case)
    assert case.case_number == "5000001"


def test_models_are_slotted_attrs_with_wire_metadata() -> None:
    import attrs

    for name in models.__all__ if hasattr(models, "__all__") else dir(models):
        cls = getattr(models, name)
        if isinstance(cls, type) and attrs.has(cls):
            assert "__slots__" in cls.__dict__, name
            for field in attrs.fields(cls):
                assert "wire" in field.metadata, (name, field.name)
        elif isinstance(cls, type) and issubclass(cls, OpenEnum) and cls is not OpenEnum:
            assert all(m.is_known for m in cls)


def test_generated_file_says_so() -> None:
    source = Path(models.__file__).read_text()
    assert source.startswith("# GENERATED FILE - DO NOT EDIT BY HAND.")


def test_python_values_in_dicts_are_accepted() -> None:
    """Dicts built in Python (or parsed with parse_float=Decimal) structure too."""
    when = dt.datetime(2024, 1, 15)
    item = _serde.structure(
        {"invoiceId": "i", "amount": Decimal("10.05"), "currency": "NOK", "date": when},
        models.NewCorrection,
    )
    assert item.amount == Decimal("10.05")
    assert item.date == when.replace(tzinfo=dt.UTC)
    debtor = _serde.structure({"dateOfBirth": dt.date(1970, 1, 1)}, models.Debtor)
    assert debtor.date_of_birth == dt.date(1970, 1, 1)


# --- personal data ---------------------------------------------------------------------------


def test_every_personal_data_field_of_the_spec_stays_out_of_reprs() -> None:
    spec = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
    marked = [
        (schema_name, wire)
        for schema_name, schema in spec["components"]["schemas"].items()
        for wire, prop in schema.get("properties", {}).items()
        if prop.get("x-amili-personal-data")
    ]
    assert ("Debtor", "identificationNumber") in marked
    for schema_name, wire in marked:
        cls = getattr(models, schema_name)
        (field,) = [f for f in attrs.fields(cls) if f.metadata["wire"] == wire]
        assert field.repr is False, (schema_name, wire)


def test_identity_numbers_and_names_never_reach_a_repr_but_stay_readable() -> None:
    national_id = "01017012345"
    debtor = models.Debtor(firstname="Kari", lastname="Nordmann", identification_number=national_id)
    invoice = models.NewInvoice(
        type=models.InvoiceType.NOTICE,
        invoice_number="INV-1",
        original_invoice_amount=Decimal("100.00"),
        currency="NOK",
        invoice_date=dt.datetime(2024, 5, 1, tzinfo=dt.UTC),
        due_date=dt.datetime(2024, 5, 15, tzinfo=dt.UTC),
        debtors=[debtor],
    )
    envelope = _serde.structure(
        {"data": {"id": "i1", "debtors": [{"identificationNumber": national_id}]}},
        models.InvoiceEnvelope,
    )
    for model in (debtor, invoice, envelope):
        assert national_id not in repr(model)
        assert "Nordmann" not in repr(model)
    assert debtor.identification_number == national_id
    assert envelope.data is not None
    assert envelope.data.debtors is not None
    assert envelope.data.debtors[0].identification_number == national_id
