"""The compiled request checks, readers and writers agree with the detailed code they speed up.

`_request_checks` compiles per class a checker (model -> acceptable?) and readers (dict ->
checked model); `wire` compiles a writer per request model. Each may only say yes to what the
detailed path accepts, and must build exactly what it builds; everything else goes the
detailed way, with its errors. Proven here on many variations of one realistic item.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import cattrs
import pytest

from amili_async import _json, _request_checks, _serde, models

NAIVE = dt.datetime(2024, 3, 1, 12, 0)
OSLO = dt.timezone(dt.timedelta(hours=1))


def item() -> dict[str, Any]:
    return {
        "type": "NOTICE",
        "invoiceNumber": "INV-1",
        "originalInvoiceAmount": Decimal("4500.10"),
        "currency": "NOK",
        "invoiceDate": dt.date(2024, 1, 15),
        "dueDate": "2024-02-15T00:00:00+01:00",
        "vat": True,
        "collectionNoticeDate": dt.datetime(2024, 3, 1, 8, tzinfo=OSLO),
        "debtors": [
            {
                "type": "PRIVATE",
                "firstname": "Kari",
                "dateOfBirth": dt.date(1980, 5, 17),
                "emails": [{"value": "kari@example.test"}],
                "phoneNumbers": [{"countryCode": "+47", "value": "+4791234567"}],
                "addresses": [{"street": "Storgata 1", "city": "Oslo", "countryCode": "NO"}],
            }
        ],
    }


def set_path(data: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(data)
    node: Any = out
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return out


def renamed(data: dict[str, Any], path: tuple[Any, ...], old: str, new: str) -> dict[str, Any]:
    out = copy.deepcopy(data)
    node: Any = out
    for part in path:
        node = node[part]
    node[new] = node.pop(old)
    return out


DEBTOR = ("debtors", 0)
VARIANTS: dict[str, Callable[[], dict[str, Any]]] = {
    "as built": item,
    "an int amount": lambda: set_path(item(), ("originalInvoiceAmount",), 4500),
    "a float amount": lambda: set_path(item(), ("originalInvoiceAmount",), 4500.1),
    "text money": lambda: set_path(item(), ("originalInvoiceAmount",), "4500.10"),
    "an infinite amount": lambda: set_path(item(), ("originalInvoiceAmount",), Decimal("inf")),
    "a bool amount": lambda: set_path(item(), ("originalInvoiceAmount",), True),
    "a naive date-time": lambda: set_path(item(), ("collectionNoticeDate",), NAIVE),
    "naive ISO text": lambda: set_path(item(), ("dueDate",), "2024-02-15T00:00:00"),
    "a date for a point in time": lambda: set_path(
        item(), ("collectionNoticeDate",), dt.date(2024, 3, 1)
    ),
    "a date-time for a date": lambda: set_path(
        item(), (*DEBTOR, "dateOfBirth"), dt.datetime(1980, 5, 17, tzinfo=dt.UTC)
    ),
    "date text": lambda: set_path(item(), (*DEBTOR, "dateOfBirth"), "1980-05-17"),
    "a number for text": lambda: set_path(item(), ("invoiceNumber",), 12),
    "text for a bool": lambda: set_path(item(), ("vat",), "yes"),
    "an unknown enum value": lambda: set_path(item(), ("type",), "SOMETHING_NEW"),
    "an enum member": lambda: set_path(item(), ("type",), models.InvoiceType.NOTICE),
    "a required field missing": lambda: set_path(item(), ("currency",), None),
    "an explicit null": lambda: set_path(item(), ("description",), None),
    "an unknown key": lambda: set_path(item(), ("somethingElse",), 1),
    "mixed names": lambda: renamed(
        renamed(item(), (), "invoiceNumber", "invoice_number"),
        DEBTOR,
        "dateOfBirth",
        "date_of_birth",
    ),
    "all attribute names": lambda: {
        "type": "NOTICE",
        "invoice_number": "INV-1",
        "original_invoice_amount": Decimal("1.00"),
        "currency": "NOK",
        "invoice_date": dt.date(2024, 1, 15),
        "due_date": dt.date(2024, 2, 15),
        "debtors": [{"date_of_birth": dt.date(1980, 5, 17), "phone_numbers": [{"value": "1"}]}],
    },
    "a field named twice": lambda: set_path(item(), ("invoice_number",), "INV-2"),
    "a list that is not one": lambda: set_path(item(), ("debtors",), {"a": 1}),
    "a null in a list": lambda: set_path(item(), ("debtors",), [None]),
    "a nested object that is not one": lambda: set_path(item(), (*DEBTOR, "emails"), ["x"]),
}


def detailed(data: dict[str, Any], decoded: bool) -> Any:
    """What `request_item` did before it was compiled: rename, look for problems, read."""
    renamed_data = _request_checks.wire_keys(data, models.NewInvoice)
    for where, reason, kind in _request_checks._dict_problems(
        renamed_data, models.NewInvoice, "$", decoded
    ):
        raise kind(f"{where}: {reason}")
    model = _serde.structure(renamed_data, models.NewInvoice)
    _request_checks._check_fields(model, "$")
    return model


def outcome(read: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "ok", read()
    except Exception as error:
        return type(error).__name__, str(error)


@pytest.mark.parametrize("decoded", [False, True])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_a_dict_reads_as_the_detailed_path_reads_it(variant: str, decoded: bool) -> None:
    data = VARIANTS[variant]()
    fast = outcome(lambda: _request_checks.request_item(data, models.NewInvoice, decoded=decoded))
    slow = outcome(lambda: detailed(data, decoded))
    assert fast[0] == slow[0]
    if fast[0] == "ok":
        assert fast[1] == slow[1]
        _request_checks._check_fields(fast[1], "$")  # and the model is one check accepts
    elif fast[0] != "StructureError":  # the structure message is the same in both, reworded
        assert fast[1] == slow[1]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_a_chunk_item_reads_and_encodes_as_the_model_and_its_writer_do(variant: str) -> None:
    # `create_many`'s reading builds each dict's wire data as it reads it: the same model, the
    # same errors, and the very bytes the model's writer gives.
    data = VARIANTS[variant]()
    fast = outcome(lambda: _request_checks.encoded_items(models.NewInvoice, 3, [data]))
    slow = outcome(lambda: _request_checks.request_item(data, models.NewInvoice, "$[3]"))
    assert fast[0] == slow[0]
    if fast[0] != "ok":
        assert fast[1] == slow[1]
        return
    ([model], [wire]) = fast[1]
    assert model == slow[1]
    assert bytes(wire) == _serde.dumps(slow[1])


def test_the_compiled_reader_takes_the_common_dicts_itself() -> None:
    """Not merely correct by always falling back: the usual shapes are read compiled."""
    for variant in ("as built", "an int amount", "an enum member", "all attribute names"):
        assert _request_checks._read_fast(VARIANTS[variant](), models.NewInvoice, False)
        read = _request_checks._read_fast(VARIANTS[variant](), models.NewInvoice, False, True)
        assert read is not None  # with its wire data: (model, data)
    assert _request_checks._read_fast(VARIANTS["a float amount"](), models.NewInvoice, True)
    for variant in ("a naive date-time", "a float amount", "an unknown key"):
        assert _request_checks._read_fast(VARIANTS[variant](), models.NewInvoice, False) is None


def model_variants() -> list[tuple[str, Any]]:
    good = _request_checks.request_item(item(), models.NewInvoice)
    variants: list[tuple[str, Any]] = [("as built", good)]
    for name, attribute, value in [
        ("a float amount", "original_invoice_amount", 1.5),
        ("a NaN amount", "original_invoice_amount", Decimal("nan")),
        ("text money", "original_invoice_amount", "1.50"),
        ("a naive date-time", "collection_notice_date", NAIVE),
        ("a date for a point in time", "collection_notice_date", dt.date(2024, 1, 1)),
        ("a number for text", "invoice_number", 12),
        ("a string for a bool", "vat", "yes"),
        ("a date-time as a date or date-time", "invoice_date", NAIVE),
        ("not a list", "debtors", {}),
        ("a dict for a model", "debtors", [{"name": "x"}]),
    ]:
        bad = copy.deepcopy(good)
        object.__setattr__(bad, attribute, value)
        variants.append((name, bad))
    nested = copy.deepcopy(good)
    assert nested.debtors is not None
    nested.debtors[0].date_of_birth = dt.datetime(1980, 1, 1, tzinfo=dt.UTC)
    variants.append(("a date-time for a nested date", nested))
    return variants


@pytest.mark.parametrize(("variant", "model"), model_variants())
def test_check_of_a_model_raises_what_the_detailed_check_raises(variant: str, model: Any) -> None:
    fast = outcome(lambda: _request_checks.check(model))
    slow = outcome(lambda: _request_checks._check_fields(model, "$"))
    assert fast == slow
    assert (fast[0] == "ok") == (variant == "as built")


def test_the_compiled_writer_writes_what_the_converters_hooks_write() -> None:
    reference = _serde._configure(cattrs.Converter(detailed_validation=False), detailed=False)
    invoices = [_request_checks.request_item(item(), models.NewInvoice)]
    invoices.append(
        models.NewInvoice(
            type=models.InvoiceType.NOTICE,
            invoice_number="INV-2",
            original_invoice_amount=Decimal("1"),
            currency="NOK",
            invoice_date=dt.datetime(2024, 1, 1, 12, 30, 15, 250000, tzinfo=dt.UTC),
            due_date=dt.date(2024, 2, 2),
        )
    )
    body = models.CreateInvoicesRequest(invoices=invoices)
    assert _serde.unstructure(body) == reference.unstructure(body)
    assert _serde.dumps(body) == _json.dumps(
        reference.unstructure(body), default=_serde._json_default
    )
    payment = models.NewPayment(
        invoice_id="i",
        type=models.PaymentType.DIRECT_PAYMENT,
        amount=Decimal("0.10"),
        currency="NOK",
    )
    assert _serde.unstructure(payment) == reference.unstructure(payment)
