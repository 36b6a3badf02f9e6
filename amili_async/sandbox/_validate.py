"""Request validation: schema errors (422 with per-field ``errors``) and query parsing (400).

Business problems (duplicates, amounts <= 0, unknown invoices...) are *not* checked here;
they end up in the batch's ``failed[]`` (see ``_batches``).
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from .. import models
from ._records import INVOICE_TYPES
from ._wire import ApiError, decimal_or_none, fmt_ms, parse_date, parse_datetime_ms

__all__ = [
    "DEBTOR_TYPES",
    "PAYMENT_TYPES",
    "Errors",
    "parse_json_object",
    "query_datetime",
    "query_enum",
    "validate_case_action",
    "validate_corrections",
    "validate_debt_collection_list",
    "validate_invoices",
    "validate_payments",
]

# Enum values from the generated models (the spec), like _records' tuples.
DEBTOR_TYPES = tuple(member.value for member in models.DebtorType)
PAYMENT_TYPES = tuple(member.value for member in models.PaymentType)
# Items per write request: inferred limit (docs/DESIGN.md), the same as the page size limit.
MAX_ITEMS = 1000
# ISO 4217 currency codes are three capital letters.
# A trillion NOK: above any real invoice, below where a typo becomes a plausible amount.
_MAX_AMOUNT = Decimal("1e12")


class Errors:
    """Collects ``{field path: [messages]}``."""

    def __init__(self) -> None:
        self.fields: dict[str, list[str]] = {}

    def add(self, path: str, message: str) -> None:
        """Note ``message`` for the field at ``path``."""
        self.fields.setdefault(path, []).append(message)

    def raise_if_any(self) -> None:
        """Raise the collected errors as one 422 ValidationProblemDetails, if any."""
        if self.fields:
            raise ApiError(
                422,
                "One or more validation errors occurred.",
                title="One or more validation errors occurred.",
                errors=self.fields,
            )


def parse_json_object(body: bytes, *, optional: bool = False) -> dict[str, Any] | None:
    """Parse a JSON object body (400 when it is not JSON, 422 when not an object)."""
    from ._wire import loads

    if not body.strip():
        if optional:
            return None
        raise ApiError(400, "A non-empty JSON request body is required.")
    try:
        data = loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"The request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        e = Errors()
        e.add("$", "The request body must be a JSON object.")
        e.raise_if_any()
    assert isinstance(data, dict)
    return data


# --------------------------------------------------------------------------- fields
def _required(e: Errors, obj: dict[str, Any], key: str, path: str) -> Any:
    value = obj.get(key)
    if value is None:
        e.add(path, f"The {key} field is required.")
    return value


def _string(e: Errors, obj: dict[str, Any], key: str, path: str, *, required: bool) -> str | None:
    value = _required(e, obj, key, path) if required else obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        e.add(path, "The value must be a string.")
        return None
    if required and not value.strip():
        # A sandbox-only rule (docs/DESIGN.md), worded apart from a missing field's.
        e.add(path, f"The {key} field must not be blank.")
        return None
    if len(value) > 500:
        e.add(path, "The value must be at most 500 characters.")
        return None
    return value


def _enum(
    e: Errors, obj: dict[str, Any], key: str, path: str, allowed: tuple[str, ...], *, required: bool
) -> str | None:
    value = _string(e, obj, key, path, required=required)
    if value is not None and value not in allowed:
        e.add(path, f"'{value}' is not one of: {', '.join(allowed)}.")
        return None
    return value


def _bool(e: Errors, obj: dict[str, Any], key: str, path: str) -> bool | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, bool):
        e.add(path, "The value must be a boolean.")
        return None
    return value


def _amount(e: Errors, obj: dict[str, Any], key: str, path: str) -> Decimal | None:
    value = _required(e, obj, key, path)
    if value is None:
        return None
    number = decimal_or_none(value)
    if number is None:
        e.add(path, "The value must be a number.")
        return None
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2 and number != number.quantize(Decimal("0.01")):
        e.add(path, "The amount must have at most 2 decimal places.")
        return None
    if abs(number) >= _MAX_AMOUNT:
        e.add(path, "The amount is too large.")
        return None
    return number.quantize(Decimal("0.01"))


def _currency(e: Errors, obj: dict[str, Any], key: str, path: str) -> str | None:
    # Any string: the spec (and the docs' own example, "currency": "string") has no pattern;
    # a currency that is not an ISO 4217 code fails its item in the batch instead.
    return _string(e, obj, key, path, required=True)


def _datetime(e: Errors, obj: dict[str, Any], key: str, path: str, *, required: bool) -> str | None:
    """A date or date-time -> the wire date-time (``...T00:00:00.000Z``)."""
    value = _string(e, obj, key, path, required=required)
    if value is None:
        return None
    try:
        return fmt_ms(parse_datetime_ms(value))
    except ValueError:
        e.add(path, "The value is not a valid ISO 8601 date-time.")
        return None


def _date(e: Errors, obj: dict[str, Any], key: str, path: str) -> str | None:
    value = _string(e, obj, key, path, required=False)
    if value is None:
        return None
    try:
        return parse_date(value)
    except ValueError:
        e.add(path, "The value is not a valid ISO 8601 date.")
        return None


def _uuid(e: Errors, obj: dict[str, Any], key: str, path: str) -> str | None:
    value = _string(e, obj, key, path, required=True)
    if value is None:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        e.add(path, "The value is not a valid UUID.")
        return None


def _object_list(e: Errors, obj: dict[str, Any], key: str, path: str) -> list[dict[str, Any]]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        e.add(path, "The value must be an array.")
        return []
    out = []
    for k, item in enumerate(value):
        if not isinstance(item, dict):
            e.add(f"{path}[{k}]", "The value must be an object.")
        else:
            out.append(item)
    return out


def _items(e: Errors, body: dict[str, Any], key: str) -> list[tuple[str, dict[str, Any]]]:
    value = body.get(key)
    if value is None:
        e.add(key, f"The {key} field is required.")
        return []
    if not isinstance(value, list):
        e.add(key, "The value must be an array.")
        return []
    if not 1 <= len(value) <= MAX_ITEMS:
        e.add(key, f"The array must have between 1 and {MAX_ITEMS} items.")
        return []
    out = []
    for k, item in enumerate(value):
        path = f"{key}[{k}]"
        if not isinstance(item, dict):
            e.add(path, "The value must be an object.")
        else:
            out.append((path, item))
    return out


# --------------------------------------------------------------------------- bodies
def _debtor(e: Errors, d: dict[str, Any], path: str) -> dict[str, Any]:
    s: dict[str, Any] = {}
    s["type"] = _enum(e, d, "type", f"{path}.type", DEBTOR_TYPES, required=False) or "PRIVATE"
    for key in (
        "firstname",
        "lastname",
        "name",
        "customerNumber",
        "identificationNumber",
        "organizationNumber",
    ):
        s[key] = _string(e, d, key, f"{path}.{key}", required=False)
    if s["name"] is None and (s["firstname"] or s["lastname"]):
        s["name"] = " ".join(p for p in (s["firstname"], s["lastname"]) if p)
    s["dateOfBirth"] = _date(e, d, "dateOfBirth", f"{path}.dateOfBirth")
    s["emails"] = [
        {"value": _string(e, x, "value", f"{path}.emails[{k}].value", required=True)}
        for k, x in enumerate(_object_list(e, d, "emails", f"{path}.emails"))
    ]
    s["phoneNumbers"] = [
        {
            key: _string(e, x, key, f"{path}.phoneNumbers[{k}].{key}", required=False)
            for key in ("countryCode", "originalValue", "value")
        }
        for k, x in enumerate(_object_list(e, d, "phoneNumbers", f"{path}.phoneNumbers"))
    ]
    s["addresses"] = [
        {
            key: _string(e, x, key, f"{path}.addresses[{k}].{key}", required=False)
            for key in ("street", "city", "zipCode", "countryCode")
        }
        for k, x in enumerate(_object_list(e, d, "addresses", f"{path}.addresses"))
    ]
    return s


def validate_invoices(body: dict[str, Any]) -> list[dict[str, Any]]:
    """``CreateInvoicesRequest`` -> normalised ``NewInvoice`` dicts (422 on schema errors)."""
    e = Errors()
    out = []
    for path, item in _items(e, body, "invoices"):
        out.append(
            {
                "type": _enum(e, item, "type", f"{path}.type", INVOICE_TYPES, required=True),
                "invoiceNumber": _string(
                    e, item, "invoiceNumber", f"{path}.invoiceNumber", required=True
                ),
                "vat": _bool(e, item, "vat", f"{path}.vat"),
                "fees": _bool(e, item, "fees", f"{path}.fees"),
                "originalInvoiceAmount": _amount(
                    e, item, "originalInvoiceAmount", f"{path}.originalInvoiceAmount"
                ),
                "currency": _currency(e, item, "currency", f"{path}.currency"),
                "invoiceDate": _datetime(
                    e, item, "invoiceDate", f"{path}.invoiceDate", required=True
                ),
                "dueDate": _datetime(e, item, "dueDate", f"{path}.dueDate", required=True),
                "collectionNoticeDate": _datetime(
                    e, item, "collectionNoticeDate", f"{path}.collectionNoticeDate", required=False
                ),
                "uniqueSourceInvoiceId": _string(
                    e,
                    item,
                    "uniqueSourceInvoiceId",
                    f"{path}.uniqueSourceInvoiceId",
                    required=False,
                ),
                "description": _string(
                    e, item, "description", f"{path}.description", required=False
                ),
                "ocrReferenceNumber": _string(
                    e, item, "ocrReferenceNumber", f"{path}.ocrReferenceNumber", required=False
                ),
                "debtors": [
                    _debtor(e, d, f"{path}.debtors[{k}]")
                    for k, d in enumerate(_object_list(e, item, "debtors", f"{path}.debtors"))
                ],
            }
        )
    e.raise_if_any()
    return out


def validate_payments(body: dict[str, Any]) -> list[dict[str, Any]]:
    """``CreatePaymentsRequest`` -> normalised payment dicts (422 on schema errors)."""
    e = Errors()
    out = []
    for path, item in _items(e, body, "payments"):
        out.append(
            {
                "invoiceId": _uuid(e, item, "invoiceId", f"{path}.invoiceId"),
                "type": _enum(e, item, "type", f"{path}.type", PAYMENT_TYPES, required=True),
                "amount": _amount(e, item, "amount", f"{path}.amount"),
                "currency": _currency(e, item, "currency", f"{path}.currency"),
                "paymentDate": _date(e, item, "paymentDate", f"{path}.paymentDate"),
                "reference": _string(e, item, "reference", f"{path}.reference", required=False),
            }
        )
    e.raise_if_any()
    return out


def validate_corrections(body: dict[str, Any]) -> list[dict[str, Any]]:
    """``CreateCorrectionsRequest`` -> normalised correction dicts (422 on schema errors)."""
    e = Errors()
    out = []
    for path, item in _items(e, body, "corrections"):
        out.append(
            {
                "invoiceId": _uuid(e, item, "invoiceId", f"{path}.invoiceId"),
                "amount": _amount(e, item, "amount", f"{path}.amount"),
                "currency": _currency(e, item, "currency", f"{path}.currency"),
                "date": _datetime(e, item, "date", f"{path}.date", required=False),
                "description": _string(
                    e, item, "description", f"{path}.description", required=False
                ),
            }
        )
    e.raise_if_any()
    return out


def validate_case_action(body: dict[str, Any] | None) -> str | None:
    """Optional ``CaseActionRequest`` -> its reason."""
    if body is None:
        return None
    e = Errors()
    reason = _string(e, body, "reason", "reason", required=False)
    e.raise_if_any()
    return reason


def validate_debt_collection_list(body: dict[str, Any]) -> list[str]:
    """A debt-collection-list request -> its case ids, canonical (422 on schema errors)."""
    e = Errors()
    value = body.get("caseIds")
    ids: list[str] = []
    if value is None:
        e.add("caseIds", "The caseIds field is required.")
    elif not isinstance(value, list) or not value:
        e.add("caseIds", "The value must be a non-empty array.")
    elif len(value) > MAX_ITEMS:
        e.add("caseIds", f"At most {MAX_ITEMS} case ids.")
    else:
        for k, v in enumerate(value):
            try:
                ids.append(str(uuid.UUID(v)) if isinstance(v, str) else "")
            except ValueError:
                ids.append("")
            if not ids[-1]:
                e.add(f"caseIds[{k}]", "The value is not a valid UUID.")
    e.raise_if_any()
    return ids


# --------------------------------------------------------------------------- query
def query_enum(values: list[str], name: str, allowed: tuple[str, ...]) -> frozenset[str] | None:
    """A (possibly repeated) enum query parameter -> the set of values, or None if absent."""
    if not values:
        return None
    bad = [v for v in values if v not in allowed]
    if bad:
        raise ApiError(
            400,
            f"Invalid {name}.",
            errors={name: [f"'{v}' is not one of: {', '.join(allowed)}." for v in bad]},
        )
    return frozenset(values)


def query_datetime(value: str | None, name: str) -> int | None:
    """A date or date-time query parameter -> epoch ms, or None if absent (400 if invalid,
    an empty value too: the spec's date-time refuses it)."""
    if value is None:
        return None
    try:
        return parse_datetime_ms(value)
    except ValueError:
        raise ApiError(
            400, f"Invalid {name}.", errors={name: ["Not an ISO 8601 date or date-time."]}
        ) from None
