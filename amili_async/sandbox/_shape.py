"""Strict JSON-type check of a request body against a generated model, for the bodies the
sandbox stores as sent (the legacy batch): the models are generated from the spec, so a body
the spec refuses (a string where it says integer, an array where it says object) is refused
here with 422, while every field stays optional as in the spec."""

from __future__ import annotations

import datetime as dt
import functools
import re
import types
import typing
from decimal import Decimal
from typing import Any

from .._fields import model_fields, node
from .._openenum import OpenEnum
from ._validate import Errors

__all__ = ["NULLABLE", "UUIDS", "validate_shape"]

_NONE = type(None)
# (schema, field) pairs the spec gives format uuid in the legacy batch model (a str in the
# models); tests/sandbox/test_legacy.py checks this table against the spec too.
UUIDS = frozenset(
    {
        ("CaseDebtor", "debtorId"),
        ("LegacyCase", "caseId"),
        ("LegacyCase", "creditorId"),
        ("LegacyCase", "organizationId"),
        ("LegacyCaseInvoice", "batchId"),
        ("LegacyCaseInvoice", "caseId"),
        ("LegacyCaseInvoice", "invoiceId"),
        ("LegacySettlement", "settlementId"),
    }
)
# The hyphenated RFC 4122 form, what the uuid format of JSON Schema takes.
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# RFC 3339 full-date and date-time, the spec's date and date-time formats.
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")
# (schema, field) pairs the spec lets be null in the legacy batch model; every other field
# refuses an explicit null (the models make every field optional, not nullable).
# tests/sandbox/test_legacy.py checks this table against the spec.
NULLABLE = frozenset(
    {
        ("CaseDebtor", "firstName"),
        ("CaseDebtor", "lastName"),
        ("LegacyCase", "closedAt"),
        ("LegacyCase", "closuredate"),
        ("LegacyCase", "subStatus"),
        ("LegacyCaseInvoice", "batchId"),
        ("LegacyCreditor", "lastsettlementid"),
        ("LegacyCreditor", "parentidnumber"),
    }
)
# JSON types that each annotation accepts (bool is not a number in JSON Schema).
_SCALARS: dict[Any, tuple[type, ...]] = {
    str: (str,),
    int: (int,),
    bool: (bool,),
    float: (int, float, Decimal),
    Decimal: (int, float, Decimal),
    dt.datetime: (str,),
    dt.date: (str,),
}


@functools.cache
def _fields(cls: type) -> tuple[tuple[str, Any], ...]:
    """(wire name, resolved type) of each field of a model."""
    return tuple((f.metadata.get("wire", f.name), f.type) for f in model_fields(cls))


def validate_shape(body: dict[str, Any], cls: type) -> None:
    """422 (ValidationProblemDetails) listing every field of ``body`` whose JSON type is not
    the one ``cls`` declares; unknown fields pass, as the spec does not forbid them."""
    e = Errors()
    _check_object(e, body, cls, "")
    e.raise_if_any()


def _check_object(e: Errors, value: dict[str, Any], cls: type, path: str) -> None:
    for wire, tp in _fields(cls):
        if wire not in value:
            continue
        where = f"{path}.{wire}" if path else wire
        if value[wire] is None and (cls.__name__, wire) not in NULLABLE:
            e.add(where, "The value must not be null.")
        elif (cls.__name__, wire) in UUIDS and isinstance(value[wire], str):
            if not _UUID.fullmatch(value[wire]):
                e.add(where, "The value is not a UUID.")
        else:
            _check(e, value[wire], tp, where)


def _check(e: Errors, value: Any, tp: Any, path: str) -> None:
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        options = typing.get_args(tp)
        if value is None and _NONE in options:
            return
        found = Errors()
        for option in options:
            if option is _NONE:
                continue
            attempt = Errors()
            _check(attempt, value, option, path)
            if not attempt.fields:
                return
            found = attempt
        e.fields.update(found.fields)
    elif tp is Any:
        return
    elif node(tp)[0] == "list":
        if type(value) is not list:
            e.add(path, "The value must be an array.")
            return
        item = node(tp)[1]
        for k, v in enumerate(value):
            _check(e, v, item, f"{path}[{k}]")
    elif node(tp)[0] == "model":
        if type(value) is not dict:
            e.add(path, "The value must be an object.")
            return
        _check_object(e, value, tp, path)
    elif isinstance(tp, type) and issubclass(tp, OpenEnum):
        if type(value) is not str:
            e.add(path, "The value must be a string.")
        elif value not in {member.value for member in tp}:
            e.add(path, f"'{value}' is not one of the spec's {tp.__name__} values.")
    else:
        accepted = _SCALARS.get(tp)
        if accepted is not None and type(value) not in accepted:
            e.add(path, f"The value must be of type {accepted[0].__name__}.")
        elif tp in (dt.date, dt.datetime) and not _is_date(value, tp is dt.date):
            e.add(path, f"The value is not an RFC 3339 {'date' if tp is dt.date else 'date-time'}.")


def _is_date(text: str, date_only: bool) -> bool:
    if not (_DATE if date_only else _DATE_TIME).fullmatch(text):
        return False
    try:
        if date_only:
            dt.date.fromisoformat(text)
        else:
            dt.datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True
