"""Typed reading (msgspec mirrors, `_serde.read`): amounts exact from the JSON text, and every
document read exactly as the dict path (`parse_exact` + the compiled structure functions)
reads it, or refused where it refuses it."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from amili_async import _json, _response, _serde, models
from amili_async._structure_compiler import mirror_of

from .test_fastpath_property import MODELS, PROPERTY, canonical, objects

INVOICE = b'{"data": {"id": "i", "originalInvoiceAmount": 4500.10, "currentAmount": "4500.10"%s}}'


def _amounts(envelope: models.InvoiceEnvelope) -> list[str]:
    invoice = envelope.data
    return [str(invoice.original_invoice_amount), str(invoice.current_amount)]


def test_amounts_are_exact_from_the_json_text() -> None:
    document = _serde.read(INVOICE % b"", models.InvoiceEnvelope)
    assert type(document) is mirror_of(models.InvoiceEnvelope)  # read in C
    assert _amounts(_serde.decode(INVOICE % b"", models.InvoiceEnvelope)) == ["4500.10"] * 2


def test_amounts_are_exact_on_the_dict_path_too() -> None:
    # A case number sent as a number: the mirror refuses it, the dict path keeps it as text.
    body = INVOICE % b', "collectionCaseNumber": 5000001'
    assert isinstance(_serde.read(body, models.InvoiceEnvelope), dict)
    envelope = _serde.decode(body, models.InvoiceEnvelope)
    assert _amounts(envelope) == ["4500.10"] * 2
    assert envelope.data.collection_case_number == "5000001"


def test_an_amount_beyond_a_double_is_exact() -> None:
    body = b'{"data": {"id": "i", "originalInvoiceAmount": 12164510040883199.00}}'
    amount = _serde.decode(body, models.InvoiceEnvelope).data.original_invoice_amount
    assert str(amount) == "12164510040883199.00"


@pytest.mark.parametrize("text", [b'"NaN"', b'"Infinity"', b'"-inf"', b'"twelve"', b"true"])
def test_an_amount_that_is_no_finite_number_is_refused(text: bytes) -> None:
    body = b'{"data": {"id": "i", "currentAmount": %s}}' % text
    with pytest.raises(_serde.StructureError, match=r"\$\.data\.currentAmount"):
        _serde.decode(body, models.InvoiceEnvelope)


def test_a_body_that_is_not_json_names_the_byte() -> None:
    with pytest.raises(_serde.StructureError, match=r"not valid JSON \(at byte 0\)"):
        _serde.decode(b"<html>", models.InvoiceEnvelope)


def test_a_listing_page_reads_its_token_and_builds_exact_amounts() -> None:
    body = b'{"data": [{"id": "i", "paidAmount": 0.10}], "summary": {"nextPageToken": "t"}}'
    response = _response.Response(200, {}, body, "GET", "/x", None, 0.0, 1)
    page = _response.decode_page(response, models.InvoiceListResponse)
    assert page.next_page_token == "t"
    built = _response.structure(response, page.document, models.InvoiceListResponse)
    assert [str(item.paid_amount) for item in built.data or []] == ["0.10"]


def outcome(read: Any) -> Any:
    try:
        return canonical(read())
    except _serde.StructureError:
        return "failed"


def check(cls: type, data: Any) -> None:
    try:
        body = _json.dumps(data)
    except (TypeError, ValueError, UnicodeError):  # a lone surrogate: not writable as JSON
        assume(False)
    typed = outcome(lambda: _serde.decode(body, cls))
    plain = outcome(lambda: _serde.structure(_serde.parse_exact(body), cls, source=body))
    assert typed == plain


@pytest.mark.parametrize("cls", MODELS, ids=lambda cls: cls.__name__)
@PROPERTY
@given(data=st.data())
def test_typed_reading_reads_documents_as_the_dict_path(cls: type, data: Any) -> None:
    check(cls, data.draw(objects(cls, junk=False)))


@pytest.mark.parametrize("cls", MODELS, ids=lambda cls: cls.__name__)
@PROPERTY
@given(data=st.data())
def test_typed_reading_fails_where_the_dict_path_fails(cls: type, data: Any) -> None:
    check(cls, data.draw(objects(cls, junk=True)))


def test_models_the_mirror_cannot_read_exactly_use_the_dict_path() -> None:
    # NewInvoice's dates are `date | datetime`: msgspec reads no such union, the dict path does.
    assert mirror_of(models.NewInvoice) is None
    assert isinstance(_serde.read(b'{"invoiceDate": "2024-01-15"}', models.NewInvoice), dict)
